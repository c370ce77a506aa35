// SharedRing: single-thread semantics, then real worker threads (3 producers, this thread consuming)
// on a 4 KiB ring that wraps thousands of times. Workers run dist/ (build first).

import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RingWord, SharedRing } from '../../src/protocol/ring.js';
import { mulberry32 } from '../../src/util/prng.js';
import { HEADER_BYTES, fnv1a, rawStream } from '../fixtures/ring-producer.mjs';

const FIXTURE = new URL('../fixtures/ring-producer.mjs', import.meta.url);
const SEED = 0x5eed;

interface Final {
  type: 'done' | 'error';
  id: number;
  code?: string;
  message?: string;
  sent: number;
}
interface Producer {
  worker: Worker;
  ready: Promise<number[]>;
  final: Promise<Final>;
  finishedAt: () => number;
}

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

function spawn(data: Record<string, unknown>): Producer {
  const worker = new Worker(FIXTURE, { workerData: data });
  workers.push(worker);
  let finishedAt = NaN;
  let onReady!: (p: number[]) => void;
  const ready = new Promise<number[]>((res) => {
    onReady = res;
  });
  const final = new Promise<Final>((resolve, reject) => {
    worker.on('message', (m: ({ type: 'ready'; prng: number[] } | Final) & { prng?: number[] }) => {
      if (m.type === 'ready') onReady(m.prng);
      else {
        finishedAt = performance.now();
        resolve(m);
      }
    });
    worker.on('error', reject);
  });
  return { worker, ready, final, finishedAt: () => finishedAt };
}

/** Moves an empty ring's free-running positions, to cross 2^32 early. */
function setPositions(ring: SharedRing, pos: number): void {
  const h = new Int32Array(ring.buffer, 0, 32);
  expect(Atomics.load(h, RingWord.WRITE_POS)).toBe(Atomics.load(h, RingWord.READ_POS));
  Atomics.store(h, RingWord.WRITE_POS, pos | 0);
  Atomics.store(h, RingWord.READ_POS, pos | 0);
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Byte equality without a matcher per element (fast enough for thousands of frames). */
const same = (a: Uint8Array | null, b: Uint8Array | undefined): boolean =>
  a !== null && b !== undefined && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), b) === 0;

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).name;
  }
  return undefined;
};

beforeAll(() => {
  if (!existsSync(new URL('../../dist/protocol/ring.js', import.meta.url))) {
    throw new Error('dist/protocol/ring.js is missing: run `npx tsc -p tsconfig.json` first');
  }
});

describe('SharedRing, one thread', () => {
  it('validates capacity and attach arguments, naming the field', () => {
    for (const bad of [0, 32, 1000, 4096.5, NaN, 2 ** 31]) {
      expect(() => SharedRing.create(bad)).toThrow(/capacityBytes.*received/);
    }
    expect(() => SharedRing.attach(new ArrayBuffer(256) as unknown as SharedArrayBuffer)).toThrow(TypeError);
    expect(() => SharedRing.attach(new SharedArrayBuffer(256))).toThrow(/not the buffer of a SharedRing/);
    const ring = SharedRing.create(4096);
    expect(SharedRing.attach(ring.buffer).capacity).toBe(4096);
    expect(() => ring.write(new Uint8Array(1), -1)).toThrow(/timeoutMs/);
    expect(() => ring.writeWith(-1, () => {})).toThrow(/length/);
  });

  it('round-trips seeded frames across the 2^32 position wrap, with batched release', () => {
    const ring = SharedRing.create(4096);
    setPositions(ring, 2 ** 32 - 3000);
    const consumer = SharedRing.attach(ring.buffer);
    const rand = mulberry32(SEED);
    const sent: Uint8Array[] = [];
    let seq = 0;
    for (let round = 0; round < 2000; round++) {
      // Write until full (timeout 0 = never block), then read a random prefix in one batch.
      for (;;) {
        const bytes = new Uint8Array(Math.floor(rand() * 600)).map(() => rand() * 256);
        if (bytes.length >= 4) new DataView(bytes.buffer).setUint32(0, seq);
        try {
          ring.write(bytes, 0);
        } catch (err) {
          expect((err as { code: string }).code).toBe('SRGAN_ERR_RING_TIMEOUT');
          break;
        }
        sent.push(bytes);
        seq++;
      }
      const n = 1 + Math.floor(rand() * sent.length);
      const views = [];
      for (let i = 0; i < n; i++) views.push(consumer.tryRead()!);
      views.forEach((v, i) => {
        // Still intact, since nothing was released yet; payloads start 8-aligned.
        if (!same(v, sent[i]) || v.byteOffset % 8 !== 0) throw new Error(`round ${round} frame ${i} differs`);
      });
      consumer.release();
      sent.splice(0, n);
    }
    while (sent.length > 0) {
      expect(same(consumer.tryRead(), sent.shift())).toBe(true);
      consumer.release();
    }
    expect(consumer.tryRead()).toBeNull();
    const s = ring.stats();
    expect(s.framesWritten).toBe(seq);
    expect(s.framesRead).toBe(seq);
    expect(s.bytesUsed).toBe(0);
    expect(s.wraps).toBeGreaterThan(500);
  });

  it('rejects frames over capacity/2 and still fits the largest one after a wrap', () => {
    const ring = SharedRing.create(4096);
    expect(ring.maxFrameBytes).toBe(2040);
    expect(codeOf(() => ring.write(new Uint8Array(2041)))).toBe('SRGAN_ERR_FRAME_TOO_LARGE');
    expect(codeOf(() => ring.writeWith(1 << 20, () => {}))).toBe('SRGAN_ERR_FRAME_TOO_LARGE');
    ring.write(new Uint8Array(1500));
    ring.write(new Uint8Array(1000)); // records of 1512 + 1008 bytes: 1576 left before the end
    ring.tryRead();
    ring.tryRead();
    ring.release();
    const big = new Uint8Array(2040).fill(7);
    ring.write(big, 0);
    expect(ring.tryRead()).toEqual(big);
    ring.write(new Uint8Array(0), 0);
    expect(ring.tryRead()!.length).toBe(0);
    expect(ring.stats().wraps).toBe(1);
  });

  it('publishes nothing when fill throws, and releases the write lock', () => {
    const ring = SharedRing.create(256);
    expect(() =>
      ring.writeWith(16, () => {
        throw new Error('encoder failed');
      }),
    ).toThrow('encoder failed');
    expect(ring.tryRead()).toBeNull();
    ring.write(Uint8Array.of(1, 2, 3), 0);
    expect(ring.tryRead()).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('times out a write on a full ring, and a read on an empty one without blocking the event loop', async () => {
    const ring = SharedRing.create(256);
    while (codeOf(() => ring.write(new Uint8Array(50), 0)) === undefined);
    const t0 = performance.now();
    expect(codeOf(() => ring.write(new Uint8Array(50), 120))).toBe('SRGAN_ERR_RING_TIMEOUT');
    // Not before its timeout; after it by however long a loaded machine takes, but not by seconds.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(110);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(ring.stats().producerWaits).toBe(1);

    const empty = SharedRing.create(256);
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 10);
    const t1 = performance.now();
    await expect(empty.readAsync(400)).resolves.toBeNull();
    clearInterval(timer);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(390);
    // Timers ran while it waited (a blocking wait would let none run before the await returns).
    expect(ticks).toBeGreaterThanOrEqual(2);
    expect(empty.stats().consumerWaits).toBe(1);
  });

  it('after close: writes fail, the consumer drains what was written, then gets RING_CLOSED', async () => {
    const ring = SharedRing.create(256);
    ring.write(Uint8Array.of(1));
    ring.write(Uint8Array.of(2));
    SharedRing.attach(ring.buffer).close();
    ring.close(); // idempotent
    expect(ring.closed).toBe(true);
    expect(codeOf(() => ring.write(Uint8Array.of(3)))).toBe('SRGAN_ERR_RING_CLOSED');
    expect(ring.tryRead()).toEqual(Uint8Array.of(1));
    await expect(ring.readAsync(0)).resolves.toEqual(Uint8Array.of(2));
    ring.release();
    expect(codeOf(() => ring.tryRead())).toBe('SRGAN_ERR_RING_CLOSED');
    await expect(ring.readAsync(1_000)).rejects.toMatchObject({ code: 'SRGAN_ERR_RING_CLOSED' });
  });
});

describe('SharedRing across worker threads', () => {
  it('the fixture draws the same seeded stream as the test thread', async () => {
    const p = spawn({ sab: SharedRing.create(64).buffer, mode: 'fill', size: 0, timeoutMs: 0, seed: SEED });
    const r = mulberry32(SEED);
    expect(await p.ready).toEqual([r(), r(), r()]);
  });

  it('3 producers, 1 consumer, 4 KiB ring: per-producer order and content survive thousands of laps', async () => {
    const COUNT = 15_000; // about 2,300 laps of the ring
    const ring = SharedRing.create(4096);
    setPositions(ring, 2 ** 32 - 100_000); // cross 2^32 mid-run
    // Wait on the empty ring before anyone writes: a consumer wait, for sure.
    await expect(ring.readAsync(20)).resolves.toBeNull();
    const producers = [0, 1, 2].map((id) => spawn({ sab: ring.buffer, mode: 'stress', id, seed: SEED, count: COUNT, timeoutMs: 20_000 }));
    // Don't read until the ring is full and producers queue on the lock: both kinds of producer wait.
    await until(() => ring.stats().producerWaits > 0 && ring.stats().lockContended > 0, 'a full ring');

    const expected = [0, 1, 2].map((id) => rawStream(id, SEED, ring.maxFrameBytes));
    const nextSeq = [0, 0, 0];
    const rand = mulberry32(SEED + 1);
    let batch = 0;
    for (let got = 0; got < 3 * COUNT; got++) {
      let frame = ring.tryRead();
      if (frame === null) {
        ring.release(); // never wait while holding unreleased frames: producers could be waiting for them
        batch = 0;
        frame = await ring.readAsync(10_000);
        if (frame === null) throw new Error(`consumer starved after ${got} frames`);
      }
      expect(frame.length).toBeGreaterThanOrEqual(HEADER_BYTES);
      const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      const id = dv.getUint32(0, true);
      const seq = dv.getUint32(4, true);
      if (id > 2 || seq !== nextSeq[id]) throw new Error(`frame ${got}: producer ${id} seq ${seq}, expected ${nextSeq[id]}`);
      if (dv.getUint32(8, true) !== fnv1a(frame.subarray(HEADER_BYTES))) throw new Error(`frame ${got}: bad checksum`);
      if (!same(frame, expected[id].next().bytes)) {
        throw new Error(`frame ${got}: producer ${id} seq ${seq} content differs`);
      }
      nextSeq[id]++;
      // Release in random batches of 1..8 frames.
      if (++batch >= 1 + Math.floor(rand() * 8)) {
        ring.release();
        batch = 0;
      }
    }
    ring.release();
    const finals = await Promise.all(producers.map((p) => p.final));
    expect(finals.map((f) => [f.type, f.sent])).toEqual([
      ['done', COUNT],
      ['done', COUNT],
      ['done', COUNT],
    ]);
    expect(ring.tryRead()).toBeNull();
    const s = ring.stats();
    expect(s.framesWritten).toBe(3 * COUNT);
    expect(s.framesRead).toBe(3 * COUNT);
    expect(s.framesAvailable).toBe(0);
    expect(s.bytesUsed).toBe(0);
    expect(s.wraps).toBeGreaterThan(1_000);
    expect(s.consumerWaits).toBeGreaterThan(0);
  });

  it('close wakes a producer blocked on full and one blocked on the lock; the consumer drains', async () => {
    const ring = SharedRing.create(1024);
    const producers = [1, 2].map((id) => spawn({ sab: ring.buffer, mode: 'fill', id, size: 100, timeoutMs: 30_000 }));
    await until(() => ring.stats().producerWaits > 0 && ring.stats().lockContended > 0, 'both producers blocked');
    const written = ring.stats().framesWritten;
    const closedAt = performance.now();
    ring.close();
    const finals = await Promise.all(producers.map((p) => p.final));
    for (const [i, f] of finals.entries()) {
      expect(f).toMatchObject({ type: 'error', code: 'SRGAN_ERR_RING_CLOSED' });
      // Woken by the close, not by their 30 s timeout (which could also end in RING_CLOSED).
      expect(producers[i].finishedAt() - closedAt).toBeLessThan(15_000);
    }
    expect(finals[0].sent + finals[1].sent).toBe(written);
    let drained = 0;
    while (
      codeOf(() => {
        if (ring.tryRead() === null) throw new Error('null before closed');
      }) === undefined
    )
      drained++;
    expect(drained).toBe(written);
  });

  it('close from another thread wakes a consumer awaiting an empty ring', async () => {
    const ring = SharedRing.create(1024);
    const closer = spawn({ sab: ring.buffer, mode: 'close', delayMs: 100 });
    const t0 = performance.now();
    await expect(ring.readAsync(30_000)).rejects.toMatchObject({ code: 'SRGAN_ERR_RING_CLOSED' });
    const woke = performance.now();
    await closer.final;
    expect(woke - t0).toBeGreaterThanOrEqual(90);
    expect(woke - t0).toBeLessThan(15_000); // 100 ms delay + worker start-up, however slow; not the 30 s timeout
  });

  it('close from the consumer thread itself wakes its own readAsync promptly', async () => {
    const ring = SharedRing.create(1024);
    const pending = ring.readAsync(30_000);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    ring.close();
    await expect(pending).rejects.toMatchObject({ code: 'SRGAN_ERR_RING_CLOSED' });
    expect(performance.now() - t0).toBeLessThan(15_000); // woken by the close, not the 30 s timeout
  });
});
