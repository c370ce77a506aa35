// Moving one training batch of patches from a loader thread to the trainer thread, side by side in
// one run: our msgpack ring in shared memory, postMessage with a structured clone, postMessage with a
// transferred buffer, and a plain memcpy of the same bytes (the floor).
//
//   npm run bench -- ring [--batch 16] [--patch 256] [--rounds 40] [--ring-mib 8]
//
// Each method moves `batch` HR patches (patch²×3) plus their LR halves, and the receiver touches the
// bytes (copies them into its batch buffer), as the trainer does. Prints MB/s per method and ratios.

import { Worker } from 'node:worker_threads';
import { SharedRing } from '../dist/protocol/ring.js';
import { decodeFrame } from '../dist/protocol/codec.js';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const BATCH = opt('batch', 16);
const P = opt('patch', 256);
const ROUNDS = opt('rounds', 40);
const RING_MIB = opt('ring-mib', 8);
const HR = P * P * 3;
const LR = (P / 2) * (P / 2) * 3;
const BYTES = BATCH * (HR + LR);

const producer = `
import { parentPort, workerData } from 'node:worker_threads';
import { SharedRing } from ${JSON.stringify(new URL('../dist/protocol/ring.js', import.meta.url).href)};
import { encodeFrameInto } from ${JSON.stringify(new URL('../dist/protocol/codec.js', import.meta.url).href)};
const { mode, batch, P, rounds, sab } = workerData;
const hr = new Uint8Array(P * P * 3).map((_, i) => i * 7);
const lr = new Uint8Array((P / 2) * (P / 2) * 3).map((_, i) => i * 5);
const ring = sab ? SharedRing.attach(sab) : null;
parentPort.postMessage('ready');
await new Promise((resolve) => parentPort.once('message', resolve));
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < batch; i++) {
    const frame = { type: 'patch', seq: r * batch + i, epoch: 0, index: i,
      hr: { width: P, height: P, channels: 3, data: hr }, lr: { width: P / 2, height: P / 2, channels: 3, data: lr } };
    if (mode === 'ring') encodeFrameInto(ring, frame, 10000);
    else if (mode === 'clone') parentPort.postMessage(frame);
    else { const h = hr.slice(); const l = lr.slice(); frame.hr.data = h; frame.lr.data = l; parentPort.postMessage(frame, [h.buffer, l.buffer]); }
  }
}
if (mode !== 'ring') parentPort.postMessage(null);
`;
const producerUrl = new URL(`data:text/javascript,${encodeURIComponent(producer)}`);

async function run(mode) {
  const hrDst = new Uint8Array(BATCH * HR);
  const lrDst = new Uint8Array(BATCH * LR);
  let got = 0;
  const total = ROUNDS * BATCH;
  // Worker start-up is not what is measured: the clock starts once the producer is ready.
  const start = async (w) => {
    await new Promise((resolve) => w.once('message', resolve));
    w.postMessage('go');
    return performance.now();
  };
  if (mode === 'ring') {
    // The daemon's ring size (8 MiB), its pages touched once first: a running daemon reuses the same
    // ring memory for days, so first-touch page faults (~2-5 us per 4 KiB page) are not its cost.
    const ring = SharedRing.create(RING_MIB << 20);
    new Uint8Array(ring.buffer, 4096).fill(0); // past the header
    const w = new Worker(producerUrl, { workerData: { mode, batch: BATCH, P, rounds: ROUNDS, sab: ring.buffer } });
    const t0 = await start(w);
    while (got < total) {
      const bytes = await ring.readAsync(10000);
      const f = decodeFrame(bytes);
      const k = got % BATCH;
      hrDst.set(f.hr.data, k * HR);
      lrDst.set(f.lr.data, k * LR);
      ring.release();
      got++;
    }
    const ms = performance.now() - t0;
    await w.terminate();
    return ms;
  } else {
    const w = new Worker(producerUrl, { workerData: { mode, batch: BATCH, P, rounds: ROUNDS, sab: null } });
    const t0 = await start(w);
    await new Promise((resolve) =>
      w.on('message', (f) => {
        if (f === null) return resolve();
        const k = got % BATCH;
        hrDst.set(f.hr.data, k * HR);
        lrDst.set(f.lr.data, k * LR);
        got++;
      }),
    );
    const ms = performance.now() - t0;
    await w.terminate();
    return ms;
  }
}

function memcpy() {
  const src = new Uint8Array(BYTES).map((_, i) => i);
  const dst = new Uint8Array(BYTES);
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) dst.set(src);
  return performance.now() - t0;
}

const modes = ['ring', 'clone', 'transfer'];
const times = { ring: [], clone: [], transfer: [], memcpy: [] };
for (let rep = 0; rep < 3; rep++) {
  for (const m of modes) times[m].push(await run(m));
  times.memcpy.push(memcpy());
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const mbps = (ms) => (BYTES * ROUNDS) / 1e6 / (ms / 1000);
console.log(`batch ${BATCH} × (${P}² + ${P / 2}²) × 3 = ${(BYTES / 1e6).toFixed(2)} MB, ${ROUNDS} batches, median of 3 interleaved runs`);
const rows = ['memcpy', ...modes].map((m) => ({ method: m, ms: median(times[m]), mbps: mbps(median(times[m])) }));
const ring = rows.find((r) => r.method === 'ring');
for (const r of rows)
  console.log(`${r.method.padEnd(9)} ${r.mbps.toFixed(0).padStart(7)} MB/s   ${(ring.ms / r.ms).toFixed(2)}× the ring's speed`);
console.log(
  JSON.stringify({ bench: 'ring', bytesPerBatch: BYTES, rows: rows.map((r) => ({ method: r.method, mbPerSec: Math.round(r.mbps) })) }),
);
