#!/usr/bin/env node
// Builds the optional oneDNN addon (native/ → native/build/Release/srgan_dnnl.node) with node-gyp, when
// Debian's libdnnl-dev is installed. Runs as the package's "install" script and as `npm run build:native`.
//
// Contract: prints exactly one line saying what it did, and ALWAYS exits 0 — an optional rung must never
// break `npm install` / `npm ci` (docs/backends.md, the ladder). The full compiler output of a
// failed build goes to native/build-native.log.
//
//   SRGAN_SKIP_NATIVE=1   skip the build (e.g. to test the wasm + JS rung on a machine with oneDNN)

import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const addon = join(nativeDir, 'build', 'Release', 'srgan_dnnl.node');
const logFile = join(nativeDir, 'build-native.log');
const HEADERS = ['/usr/include/oneapi/dnnl/dnnl.hpp', '/usr/include/dnnl.hpp'];
const say = (what) => console.log(`srgan native: ${what}`);

/** node-gyp: the one npm hands to scripts, else the one bundled with the npm next to this node. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((p) => p && existsSync(p));
}

/**
 * node-gyp needs Node's headers. npm passes its `nodedir` config (here /usr, so the build is offline);
 * run by hand, fall back to the headers of a distro-installed node beside this executable.
 */
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? prefix : undefined;
}

function main() {
  if (process.env.SRGAN_SKIP_NATIVE === '1') return say('skipped (SRGAN_SKIP_NATIVE=1); training uses the wasm + JS kernels');
  if (process.platform !== 'linux') return say(`skipped (${process.platform}: the addon is built on Linux only)`);
  if (!HEADERS.some((h) => existsSync(h))) {
    return say('skipped (oneDNN not found: no /usr/include/dnnl.hpp; `apt-get install libdnnl-dev` enables the fast CPU rung)');
  }
  const nodeGyp = findNodeGyp();
  if (nodeGyp === undefined) return say('skipped (node-gyp not found; it ships with npm)');
  const nodeDir = findNodeDir();
  const args = [nodeGyp, 'rebuild', '--jobs', '2', ...(nodeDir ? [`--nodedir=${nodeDir}`] : [])];
  const started = Date.now();
  // A stale addon must not survive a failed rebuild: src/models/backend/native/addon.ts would load it and trust it.
  rmSync(join(nativeDir, 'build'), { recursive: true, force: true });
  const build = spawnSync(process.execPath, args, { cwd: nativeDir, encoding: 'utf8', timeout: 10 * 60_000 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const log = `$ node ${args.join(' ')}\n${build.stdout ?? ''}\n${build.stderr ?? ''}\n${build.error ?? ''}\n`;
  if (build.status !== 0 || !existsSync(addon)) {
    writeFileSync(logFile, log);
    rmSync(join(nativeDir, 'build'), { recursive: true, force: true });
    const why = build.error ? String(build.error.message) : `node-gyp exit ${build.status}`;
    return say(`build failed (${why}; log in ${relative(root, logFile)}); training uses the wasm + JS kernels`);
  }
  // Load it in a child process: a dlopen failure (missing libdnnl.so.2, ABI mismatch) shows here, not in training.
  const probe = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(addon)}).version())`], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (probe.status !== 0) {
    writeFileSync(logFile, `${log}\n$ load probe\n${probe.stdout}\n${probe.stderr}\n`);
    return say(`built, but it does not load (log in ${relative(root, logFile)}); training uses the wasm + JS kernels`);
  }
  rmSync(logFile, { force: true });
  say(`built ${relative(root, addon)} in ${seconds} s: ${probe.stdout.trim()}`);
}

try {
  main();
} catch (err) {
  say(`skipped after an unexpected error (${err instanceof Error ? err.message : String(err)})`);
}
process.exitCode = 0;
