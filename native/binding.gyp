# The optional "wasm + native oneDNN kernels" rung (DESIGN.md, compute backend ladder). Built by
# scripts/build-native.mjs only when Debian's libdnnl-dev (oneDNN 2.x headers and libdnnl.so) is present.
#
# Two products in build/Release/ (src/core_api.h explains the split):
#   srgan_dnnl.node     the N-API front; links no oneDNN, dlopens the core after setting OMP_WAIT_POLICY
#   srgan_dnnl_core.so  the oneDNN convolutions behind a C ABI; links libdnnl (and so libgomp)
{
  "targets": [
    {
      "target_name": "srgan_dnnl",
      "sources": ["src/addon.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "srgan_dnnl_core",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["src/core.cc", "src/conv_plans.cc"],
      # dnnl.hpp reports errors as C++ exceptions (dnnl::error); core.cc turns them into messages.
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra"],
      # libgomp: omp_set_num_threads for Debian's OpenMP build of oneDNN (already one of libdnnl's own deps).
      "libraries": ["-ldnnl", "-lgomp"]
    }
  ]
}
