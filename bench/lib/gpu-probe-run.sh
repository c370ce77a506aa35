#!/bin/sh
# The GPU probe bundle's entry (written by `npm run bench -- gpu-probe --pack DIR`; docs/backends.md,
# "GPU probe"). Needs nothing but a shell, gzip (or python3) and a Vulkan driver for the GPU:
#
#   sh DIR/run.sh [--models espcn,seed_g,seed_d,seed_step] [--peak-tflops X] [--quick] ...
#
# Unpacks into a temporary folder, adds the bundled Vulkan loader only where the system has none, points
# the loader at NVIDIA's ICD where it sits outside the standard folders, and runs probe.mjs with the
# bundled node (or a Node.js >= 20 on PATH when the bundle has none).
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/srgan-gpu-probe.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM

gunzip_to() {
  if command -v gzip >/dev/null 2>&1; then
    gzip -dc "$1" >"$2"
  else
    python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

if [ -f "$here/node.gz" ]; then
  gunzip_to "$here/node.gz" "$work/node" && chmod +x "$work/node" || exit 2
  node="$work/node"
elif command -v node >/dev/null 2>&1 && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  node=$(command -v node)
else
  echo "gpu-probe: this bundle has no node binary and no Node.js >= 20 is on PATH (pack with --node gz)" >&2
  exit 2
fi

app="$work/app"
mkdir -p "$app/node_modules/webgpu/dist/linux-x64"
cp "$here/probe.mjs" "$app/"
cp "$here/webgpu/index.js" "$here/webgpu/package.json" "$app/node_modules/webgpu/"
gunzip_to "$here/webgpu/dawn.node.gz" "$app/node_modules/webgpu/dist/linux-x64/dawn.node" || exit 2

for lib in libvulkan.so.1 libGLdispatch.so.0; do
  if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
    mkdir -p "$work/lib"
    cp "$here/lib/$lib" "$work/lib/"
    echo "gpu-probe: the system has no $lib; using the bundled one"
  fi
done
if [ -d "$work/lib" ]; then
  LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi

if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json >/dev/null 2>&1; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then
      VK_DRIVER_FILES="$f"
      export VK_DRIVER_FILES
      echo "gpu-probe: using NVIDIA's Vulkan driver at $f"
      break
    fi
  done
fi

"$node" "$app/probe.mjs" "$@"
