// The GPU probe: the webgpu rung's step times on a real card (docs/backends.md, "GPU probe").
//
//   npm run bench -- gpu-probe [probe options]        run it here, from this checkout (build first)
//   npm run bench -- gpu-probe --pack DIR [--node gz|none]
//                                                     write a self-contained bundle to DIR for a machine
//                                                     with a GPU and no network; run it there with
//                                                     `sh DIR/run.sh [probe options]`
//
// Probe options are bench/lib/gpu-probe-main.mjs's (--models, --seconds, --chunk, --patch, --peak-tflops,
// --deadline, --quick). A software adapter (SwiftShader) is taken only with SRGAN_WEBGPU_SOFTWARE=1.
//
// The bundle holds: probe.mjs (the probe, our dist/ and tfjs in one esbuild bundle), the webgpu package's
// loader with Dawn's linux-x64 dawn.node (gzip), this machine's node binary (gzip; --node none leaves it
// out, and run.sh then needs a Node.js ≥ 20 on PATH), the Vulkan loader and glvnd's dispatch library
// (used only where the system lacks them), and run.sh. It must stay under 64 MiB with the working tree.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const at = args.indexOf('--pack');

if (at < 0) {
  // Here, from this checkout.
  const r = spawnSync(process.execPath, [path.join(here, 'lib', 'gpu-probe-main.mjs'), ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const out = path.resolve(args[at + 1] ?? '');
if (!args[at + 1] || args[at + 1].startsWith('--')) {
  console.error('usage: npm run bench -- gpu-probe --pack DIR [--node gz|none]');
  process.exit(2);
}
const nodeMode = args.includes('--node') ? args[args.indexOf('--node') + 1] : 'gz';
if (!['gz', 'none'].includes(nodeMode)) {
  console.error(`--node must be gz or none, got ${JSON.stringify(nodeMode)}`);
  process.exit(2);
}
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`the bundle is for linux-x64 machines; this one is ${process.platform}-${process.arch}`);
  process.exit(2);
}

const LIBS = ['libvulkan.so.1', 'libGLdispatch.so.0'];
const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'webgpu'), { recursive: true });
fs.mkdirSync(path.join(out, 'lib'), { recursive: true });

const esbuild = await import('esbuild');
const built = await esbuild.build({
  entryPoints: [path.join(here, 'lib', 'gpu-probe-main.mjs')],
  outfile: path.join(out, 'probe.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  // Loaded at run time from beside probe.mjs (webgpu), or never on the webgpu rung (the other rungs'
  // native parts: run.sh's machine has no npm to give them).
  external: ['webgpu', 'onnxruntime-node', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'better-sqlite3', '*.node'],
  // The CommonJS parts of tfjs call require(): an ES module bundle needs one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'error',
  metafile: true,
});
const inputs = Object.keys(built.metafile.inputs).length;

const webgpuDir = path.dirname(require.resolve('webgpu/package.json'));
for (const f of ['index.js', 'package.json']) fs.copyFileSync(path.join(webgpuDir, f), path.join(out, 'webgpu', f));
gzipTo(path.join(webgpuDir, 'dist', 'linux-x64', 'dawn.node'), path.join(out, 'webgpu', 'dawn.node.gz'));
if (nodeMode === 'gz') gzipTo(process.execPath, path.join(out, 'node.gz'));
for (const lib of LIBS) {
  const dir = LIB_DIRS.find((d) => fs.existsSync(path.join(d, lib)));
  if (!dir) {
    console.error(`${lib} not found (apt-get install libvulkan1 libglvnd0): the bundle would not run where the system lacks it`);
    process.exit(2);
  }
  fs.copyFileSync(fs.realpathSync(path.join(dir, lib)), path.join(out, 'lib', lib));
}
fs.copyFileSync(path.join(here, 'lib', 'gpu-probe-run.sh'), path.join(out, 'run.sh'));
fs.chmodSync(path.join(out, 'run.sh'), 0o755);

const files = walk(out).map((f) => [path.relative(out, f), fs.statSync(f).size]);
const total = files.reduce((s, [, n]) => s + n, 0);
for (const [f, n] of files) console.log(`${mib(n).padStart(9)}  ${f}`);
console.log(`${mib(total).padStart(9)}  total (${inputs} modules bundled into probe.mjs)`);
console.log(`run it: sh ${path.relative(root, out) || out}/run.sh [--models ...] [--peak-tflops X]`);
console.log(JSON.stringify({ bench: 'gpu-probe-pack', dir: out, bytes: total, node: nodeMode, files: Object.fromEntries(files) }));
if (total > 60 * 2 ** 20) {
  console.error(`the bundle is ${mib(total)}: over the 60 MiB that leaves room for the working tree in 64 MiB`);
  process.exit(1);
}

function gzipTo(from, to) {
  fs.writeFileSync(to, zlib.gzipSync(fs.readFileSync(from), { level: 6 }));
}

function walk(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

function mib(n) {
  return `${(n / 2 ** 20).toFixed(2)} MiB`;
}
