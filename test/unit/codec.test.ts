// The PatchFrame codec: msgpackr round trips, the direct-to-ring writer's bytes, views into the ring,
// and rejection of malformed frames; then PatchFrames from 3 real producer threads.

import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CODEC_OPTIONS,
  decodeFrame,
  decodeRingFrame,
  encodedSize,
  encodeFrame,
  encodeFrameInto,
  encodeSkipInto,
  packr,
  type PatchFrame,
} from '../../src/protocol/codec.js';
import { SharedRing } from '../../src/protocol/ring.js';
import { patchStream } from '../fixtures/ring-producer.mjs';

const SEED = 0xc0dec;
const FIXTURE = new URL('../fixtures/ring-producer.mjs', import.meta.url);
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

beforeAll(() => {
  if (!existsSync(new URL('../../dist/protocol/codec.js', import.meta.url))) {
    throw new Error('dist/protocol/codec.js is missing: run `npx tsc -p tsconfig.json` first');
  }
});

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

const meta = (f: PatchFrame): string =>
  JSON.stringify([f.type, f.seq, f.epoch, f.index, f.hr.width, f.hr.height, f.hr.channels, f.lr.width, f.lr.height, f.lr.channels]);

/** Same frame: every field, pixels compared bytewise. */
const sameFrame = (a: PatchFrame, b: PatchFrame): boolean =>
  meta(a) === meta(b) && bytesEqual(a.hr.data, b.hr.data) && bytesEqual(a.lr.data, b.lr.data);

function assertSameFrame(a: PatchFrame, b: PatchFrame, where: string): void {
  if (!sameFrame(a, b)) throw new Error(`${where}: frames differ: ${meta(a)} vs ${meta(b)}`);
}

const plane = (w: number, h: number, c: number): PatchFrame['hr'] => ({
  width: w,
  height: h,
  channels: c,
  data: new Uint8Array(w * h * c).map((_, i) => i),
});
const frame = (): PatchFrame => ({ type: 'patch', seq: 5, epoch: 1, index: 9, hr: plane(4, 4, 3), lr: plane(2, 2, 3) });

describe('codec', () => {
  it('uses one frozen, explicit msgpackr configuration', () => {
    expect(Object.isFrozen(CODEC_OPTIONS)).toBe(true);
    expect(CODEC_OPTIONS).toMatchObject({
      useRecords: false,
      structuredClone: false,
      moreTypes: false,
      bundleStrings: false,
      copyBuffers: false,
    });
  });

  it('round-trips seeded frames; encodeFrameInto writes exactly the bytes msgpackr packs', () => {
    const stream = patchStream(0, SEED);
    const ring = SharedRing.create(1 << 16);
    for (let i = 0; i < 500; i++) {
      const f = stream.next() as PatchFrame;
      const packed = encodeFrame(f);
      expect(packed.length).toBe(encodedSize(f));
      assertSameFrame(decodeFrame(packed), f, `frame ${i} via pack`);
      expect(encodeFrameInto(ring, f, 0)).toBe(packed.length);
      const view = ring.tryRead()!;
      if (!bytesEqual(view, packed)) throw new Error(`frame ${i}: encodeFrameInto bytes differ from packr.pack`);
      ring.release();
    }
  });

  it('decodes pixels as views into the ring, 8-aligned, that die at release()', () => {
    const ring = SharedRing.create(1024);
    const f = frame();
    encodeFrameInto(ring, f);
    const got = decodeFrame(ring.tryRead()!);
    assertSameFrame(got, f, 'first');
    expect(Object.keys(got.hr)).toEqual(['width', 'height', 'channels', 'data']); // alignment pad dropped
    for (const p of [got.hr, got.lr]) {
      expect(p.data.buffer).toBe(ring.buffer); // no copy: msgpackr bin values are views of the source
      expect(p.data.byteOffset % 8).toBe(0);
    }
    const kept = got.hr.data.slice(); // what the trainer does before release()
    ring.release();
    // Producers may now reuse that memory: overwrite it with other frames until we wrap onto it.
    const other = { ...frame(), hr: { ...plane(4, 4, 3), data: new Uint8Array(48).fill(0xee) } };
    for (let i = 0; i < 8; i++) {
      encodeFrameInto(ring, other, 0);
      ring.tryRead();
      ring.release();
    }
    expect(bytesEqual(got.hr.data, kept)).toBe(false);
    expect(got.hr.data[0]).toBe(0xee);
    expect(kept).toEqual(f.hr.data);
  });

  it('decodes from a Buffer or a plain Uint8Array alike', () => {
    const packed = encodeFrame(frame());
    assertSameFrame(decodeFrame(Buffer.from(packed)), frame(), 'Buffer');
    assertSameFrame(decodeFrame(new Uint8Array(packed)), frame(), 'Uint8Array');
  });

  it('checks frames on the producer side with RangeErrors naming the field', () => {
    expect(() => encodeFrame({ ...frame(), seq: -1 })).toThrow(/seq must be a non-negative safe integer, received -1/);
    expect(() => encodeFrame({ ...frame(), hr: { ...plane(4, 4, 3), width: 5 } })).toThrow(/hr\.data must be/);
    expect(() => encodeFrameInto(SharedRing.create(1024), { ...frame(), lr: { ...plane(1, 1, 1), channels: 1.5 } })).toThrow(RangeError);
    const ring = SharedRing.create(4096);
    expect(() => encodeFrameInto(ring, { ...frame(), hr: plane(30, 30, 3) })).toThrow(
      expect.objectContaining({ code: 'SRGAN_ERR_FRAME_TOO_LARGE' }),
    );
  });

  const ok = (): Record<string, unknown> => {
    const f = frame();
    return { type: 'patch', seq: f.seq, epoch: f.epoch, index: f.index, hr: { ...f.hr }, lr: { ...f.lr } };
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const with_ = (patch: (o: Record<string, any>) => void): Uint8Array => {
    const o = ok();
    patch(o);
    return packr.pack(o);
  };
  const good = encodeFrame(frame()).slice();
  const malformed: Array<[string, Uint8Array, RegExp]> = [
    ['empty input', new Uint8Array(0), /not a single msgpack value/],
    ['truncated', good.subarray(0, good.length - 1), /not a single msgpack value/],
    ['trailing bytes', Uint8Array.of(...good, 0), /not a single msgpack value/],
    ['an array', packr.pack([1, 2]), /top level must be a map, got array/],
    ['a string', packr.pack('patch'), /top level must be a map, got "patch"/],
    ['msgpack nil', Uint8Array.of(0xc0), /top level must be a map, got null/],
    ['reserved byte 0xc1', Uint8Array.of(0xc1), /type must be 'patch'/],
    [
      'wrong type',
      with_((o) => {
        o.type = 'metrics';
      }),
      /type must be 'patch', got "metrics"/,
    ],
    [
      'missing seq',
      with_((o) => {
        delete o.seq;
      }),
      /seq must be a non-negative integer, got undefined/,
    ],
    [
      'negative epoch',
      with_((o) => {
        o.epoch = -3;
      }),
      /epoch must be a non-negative integer, got -3/,
    ],
    [
      'fractional index',
      with_((o) => {
        o.index = 1.5;
      }),
      /index must be a non-negative integer, got 1\.5/,
    ],
    [
      'NaN seq',
      with_((o) => {
        o.seq = NaN;
      }),
      /seq must be .* got NaN/,
    ],
    [
      'unsafe seq',
      with_((o) => {
        o.seq = 2 ** 60;
      }),
      /seq must be .* got 1152921504606847000/,
    ],
    [
      'string seq',
      with_((o) => {
        o.seq = '5';
      }),
      /seq must be .* got "5"/,
    ],
    [
      'missing hr',
      with_((o) => {
        delete o.hr;
      }),
      /hr must be a map, got undefined/,
    ],
    [
      'lr as binary',
      with_((o) => {
        o.lr = new Uint8Array(4);
      }),
      /lr must be a map, got binary\(4\)/,
    ],
    [
      'negative width',
      with_((o) => {
        o.lr.width = -2;
      }),
      /lr\.width must be a non-negative integer, got -2/,
    ],
    [
      'data as array',
      with_((o) => {
        o.hr.data = [1, 2, 3];
      }),
      /hr\.data must be binary, got array/,
    ],
    [
      'short data',
      with_((o) => {
        o.hr.data = new Uint8Array(5);
      }),
      /hr\.data has 5 bytes, expected 4x4x3 = 48/,
    ],
  ];
  it.each(malformed)('rejects %s with SRGAN_ERR_BAD_FRAME', (_name, bytes, message) => {
    let err: unknown;
    try {
      decodeFrame(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: 'SrganError', code: 'SRGAN_ERR_BAD_FRAME' });
    expect((err as Error).message).toMatch(message);
  });

  it('keeps the msgpackr error as the cause of a parse failure', () => {
    try {
      decodeFrame(good.subarray(0, 10));
    } catch (err) {
      expect((err as Error).cause).toBeInstanceOf(Error);
      return;
    }
    throw new Error('expected a throw');
  });
});

describe('the canonical fast path', () => {
  it('decodes canonical frames like msgpackr does, and other layouts through msgpackr', () => {
    const px = (w: number, v: number) => ({ width: w, height: w, channels: 3, data: new Uint8Array(w * w * 3).fill(v) });
    for (const seq of [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32 + 5]) {
      const frame: PatchFrame = { type: 'patch', seq, epoch: seq % 7, index: seq % 300, hr: px(96, 1), lr: px(48, 2) };
      const bytes = encodeFrame(frame);
      const generic = packr.unpack(bytes) as Record<string, unknown>;
      const fast = decodeFrame(bytes);
      expect(meta(fast)).toBe(JSON.stringify(['patch', generic.seq, generic.epoch, generic.index, 96, 96, 3, 48, 48, 3]));
      expect(bytesEqual(fast.hr.data, frame.hr.data) && bytesEqual(fast.lr.data, frame.lr.data)).toBe(true);
    }
    // Keys in another order: not the canonical layout, still a valid frame.
    const shuffled = packr.pack({
      lr: { width: 1, height: 1, channels: 3, data: new Uint8Array(3) },
      seq: 4,
      type: 'patch',
      index: 2,
      epoch: 1,
      hr: { data: new Uint8Array(12), channels: 3, width: 2, height: 2 },
    });
    expect(meta(decodeFrame(shuffled))).toBe(JSON.stringify(['patch', 4, 1, 2, 2, 2, 3, 1, 1, 3]));
    // A canonical frame cut short, or with a plane's size not matching its bytes, is refused with the same errors.
    const good = encodeFrame({ type: 'patch', seq: 1, epoch: 0, index: 0, hr: px(4, 1), lr: px(2, 1) });
    expect(() => decodeFrame(good.subarray(0, good.length - 1))).toThrow(/bad patch frame/);
  });
});

describe('skip frames', () => {
  it('round-trip through a ring beside patch frames, and are checked on both sides', () => {
    const ring = SharedRing.create(1 << 16);
    const px = (w: number) => ({ width: w, height: w, channels: 3, data: new Uint8Array(w * w * 3).fill(7) });
    encodeSkipInto(ring, { type: 'skip', seq: 24, count: 8, index: 3 });
    encodeFrameInto(ring, { type: 'patch', seq: 32, epoch: 1, index: 4, hr: px(8), lr: px(4) });
    expect(decodeRingFrame(ring.tryRead()!)).toEqual({ type: 'skip', seq: 24, count: 8, index: 3 });
    const patch = decodeRingFrame(ring.tryRead()!);
    expect(patch.type === 'patch' && patch.seq === 32 && patch.hr.data[0] === 7).toBe(true);
    ring.release();
    expect(() => encodeSkipInto(ring, { type: 'skip', seq: -1, count: 8, index: 0 })).toThrow(/seq must be a non-negative/);
    expect(() => decodeRingFrame(packr.pack({ type: 'skip', seq: 1, count: 'x', index: 0 }))).toThrow(
      /count must be a non-negative integer/,
    );
    expect(() => decodeRingFrame(packr.pack({ type: 'nope' }))).toThrow(/type must be 'patch'/);
  });
});

describe('codec across worker threads', () => {
  it('3 producers encode PatchFrames into a 16 KiB ring; the consumer decodes each in order', async () => {
    const COUNT = 2_000;
    const ring = SharedRing.create(16_384);
    const done = [0, 1, 2].map((id) => {
      const worker = new Worker(FIXTURE, { workerData: { sab: ring.buffer, mode: 'patch', id, seed: SEED, count: COUNT } });
      workers.push(worker);
      return new Promise<{ type: string; sent: number; message?: string }>((resolve, reject) => {
        worker.on('message', (m: { type: string; sent: number }) => {
          if (m.type !== 'ready') resolve(m);
        });
        worker.on('error', reject);
      });
    });
    // The sender isn't on the wire, so match each frame against every producer's next expected frame:
    // per-producer order holds iff every frame matches some head. (Two identical heads would be
    // interchangeable, so picking the first is still sound.)
    const expected = [0, 1, 2].map((id) => patchStream(id, SEED));
    const heads = expected.map((s) => s.next() as PatchFrame);
    const counts = [0, 0, 0];
    for (let got = 0; got < 3 * COUNT; got++) {
      const view = ring.tryRead() ?? (ring.release(), await ring.readAsync(10_000));
      if (view === null) throw new Error(`starved after ${got} frames`);
      const f = decodeFrame(view);
      const id = heads.findIndex((h, i) => counts[i] < COUNT && sameFrame(h, f));
      if (id < 0) throw new Error(`frame ${got} (${meta(f)}) matches no producer's next frame`);
      counts[id]++;
      heads[id] = expected[id].next() as PatchFrame;
      ring.release();
    }
    expect(counts).toEqual([COUNT, COUNT, COUNT]);
    expect((await Promise.all(done)).map((m) => m.type)).toEqual(['done', 'done', 'done']);
    expect(ring.stats().wraps).toBeGreaterThan(100);
  });
});
