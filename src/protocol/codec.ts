// The hot-path codec: PatchFrame <-> msgpack bytes, with one fixed msgpackr configuration shared by
// every producer (loader threads) and the consumer (trainer). No records, no structures learned on
// the fly, no extensions: a frame decodes the same in any thread, whatever it decoded before.
//
// encodeFrameInto writes the msgpack bytes straight into ring memory with its own small writer for
// this one shape, so pixel bytes are copied once (source -> ring) instead of twice (source ->
// msgpackr's scratch -> ring). It emits exactly the bytes `packr.pack` emits for the canonical frame
// (codec.test.ts checks byte equality). Decoding reads that canonical layout directly (msgpackr's unpack
// costs 10-30 us a frame, see readCanonical) and hands anything else to msgpackr. The writer follows
// msgpackr 2.x's choices: objects as map16, keys as fixstr, unsigned ints in the smallest uint form
// up to uint32, larger ones as float64, bin8/16/32 by length.
//
// Each plane carries a small `_` pad so its pixels start 8-aligned in the ring (see layout()). The
// decoder ignores it. On Node 20, 96x96x3 + 24x24x3 patch: pack + copy ~15-23 us, encodeFrameInto
// with unaligned pixels ~24 us, aligned ~9 us; the trainer's copy out of the ring gains the same way.

import { Packr } from 'msgpackr';
import { SrganError } from '../util/errors.js';
import type { SharedRing } from './ring.js';

/** uint8 pixels, HWC order, `data.length === width * height * channels`. */
export interface ImagePlane {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** One training pair on the loader -> trainer ring. `seq` is its place in the run's data sequence. */
export interface PatchFrame {
  type: 'patch';
  seq: number;
  epoch: number;
  index: number;
  hr: ImagePlane;
  lr: ImagePlane;
}

/**
 * Stands in for `count` patches, from `seq` on, that will never come (their image failed to load),
 * so a consumer that takes patches in sequence order does not wait for them.
 */
export interface SkipFrame {
  type: 'skip';
  seq: number;
  count: number;
  index: number;
}

/** Anything a loader writes into the ring. */
export type RingFrame = PatchFrame | SkipFrame;

/** The msgpackr options every thread uses; frozen, and spelled out so no default drifts under us. */
export const CODEC_OPTIONS = Object.freeze({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
  variableMapSize: false,
  copyBuffers: false, // decoded `bin` values are views into the source bytes: see decodeFrame
  useFloat32: 0,
  int64AsType: 'number',
} as const);

/** The shared Packr: under CODEC_OPTIONS it learns nothing between calls (only reuses scratch memory). */
export const packr = new Packr({ ...CODEC_OPTIONS });

const MAP16 = 0xde;
const BIN8 = 0xc4,
  BIN16 = 0xc5,
  BIN32 = 0xc6;
const UINT8 = 0xcc,
  UINT16 = 0xcd,
  UINT32 = 0xce,
  FLOAT64 = 0xcb;

// The fixstr encodings of the keys and of 'patch', made once.
const str = (s: string): Uint8Array => Uint8Array.of(0xa0 | s.length, ...Buffer.from(s, 'latin1'));
const K = {
  type: str('type'),
  patch: str('patch'),
  seq: str('seq'),
  epoch: str('epoch'),
  index: str('index'),
  hr: str('hr'),
  lr: str('lr'),
  width: str('width'),
  height: str('height'),
  channels: str('channels'),
  data: str('data'),
  pad: str('_'),
};

function uintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n <= 0xffffffff ? 5 : 9;
}

function binHeaderSize(len: number): number {
  return len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
}

// Zeroed pad values, one per length 0..7 (bin8, so decoding them is a view, not a string).
const PADS: readonly Uint8Array[] = Object.freeze(Array.from({ length: 8 }, (_, k) => new Uint8Array(k)));

/** Byte offsets that depend on the frame's ints and lengths; `pad*` align that plane's data to 8. */
interface Layout {
  size: number;
  padHr: number;
  padLr: number;
}

// Walks the encoding the writer below emits, in the same order. A plane is the map
// {width, height, channels, _: bin8(pad), data: bin(pixels)}; the pad puts the pixels at a multiple
// of 8 from the start of the frame. The ring starts every frame 8-aligned, so the pixels sit
// 8-aligned in shared memory, where V8 copies in and out of a SharedArrayBuffer word by word; when
// source and destination alignments differ it falls back to bytes (about 5x slower, measured).
function layout(frame: PatchFrame): Layout {
  let pos =
    3 +
    K.type.length +
    K.patch.length +
    K.seq.length +
    uintSize(frame.seq) +
    K.epoch.length +
    uintSize(frame.epoch) +
    K.index.length +
    uintSize(frame.index);
  const plane = (p: ImagePlane): number => {
    pos += 3 + K.width.length + uintSize(p.width) + K.height.length + uintSize(p.height) + K.channels.length + uintSize(p.channels);
    const fixed = K.pad.length + 2 + K.data.length + binHeaderSize(p.data.length);
    const pad = -(pos + fixed) & 7;
    pos += fixed + pad + p.data.length;
    return pad;
  };
  pos += K.hr.length;
  const padHr = plane(frame.hr);
  pos += K.lr.length;
  const padLr = plane(frame.lr);
  return { size: pos, padHr, padLr };
}

/** Exact msgpack size of `frame`, as encodeFrame / encodeFrameInto write it. */
export function encodedSize(frame: PatchFrame): number {
  return layout(frame).size;
}

// Producer-side sanity: a bad frame is our own bug, caught before it reaches shared memory.
function checkUint(field: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${field} must be a non-negative safe integer, received ${String(v)}`);
  }
}

function checkPlane(name: string, p: ImagePlane): void {
  checkUint(`${name}.width`, p.width);
  checkUint(`${name}.height`, p.height);
  checkUint(`${name}.channels`, p.channels);
  if (!(p.data instanceof Uint8Array) || p.data.length !== p.width * p.height * p.channels) {
    throw new RangeError(
      `${name}.data must be a Uint8Array of width*height*channels = ` +
        `${p.width * p.height * p.channels} bytes, received ${String(p.data?.length)}`,
    );
  }
}

function checkFrame(frame: PatchFrame): void {
  checkUint('seq', frame.seq);
  checkUint('epoch', frame.epoch);
  checkUint('index', frame.index);
  checkPlane('hr', frame.hr);
  checkPlane('lr', frame.lr);
}

const plane = (p: ImagePlane, pad: number): Record<string, unknown> => ({
  width: p.width,
  height: p.height,
  channels: p.channels,
  _: PADS[pad],
  data: p.data,
});

/**
 * msgpack bytes of `frame` via msgpackr, for anything that isn't the ring (files, tests). The result
 * is a view into msgpackr's scratch slab, which later packs don't overwrite but do keep alive.
 */
export function encodeFrame(frame: PatchFrame): Uint8Array {
  checkFrame(frame);
  const { padHr, padLr } = layout(frame);
  // Canonical key order, no stray fields: the same bytes as encodeFrameInto.
  return packr.pack({
    type: 'patch',
    seq: frame.seq,
    epoch: frame.epoch,
    index: frame.index,
    hr: plane(frame.hr, padHr),
    lr: plane(frame.lr, padLr),
  });
}

/** Writes msgpack values into one frame's reserved ring bytes. */
class FrameWriter {
  pos = 0;
  readonly #d: Uint8Array;
  readonly #v: DataView;
  constructor(dst: Uint8Array) {
    this.#d = dst;
    this.#v = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  }
  bytes(b: Uint8Array): void {
    this.#d.set(b, this.pos);
    this.pos += b.length;
  }
  map16(n: number): void {
    this.#d[this.pos] = MAP16;
    this.#v.setUint16(this.pos + 1, n);
    this.pos += 3;
  }
  uint(n: number): void {
    const d = this.#d,
      v = this.#v,
      p = this.pos;
    if (n < 0x80) {
      d[p] = n;
      this.pos += 1;
    } else if (n < 0x100) {
      d[p] = UINT8;
      d[p + 1] = n;
      this.pos += 2;
    } else if (n < 0x10000) {
      d[p] = UINT16;
      v.setUint16(p + 1, n);
      this.pos += 3;
    } else if (n <= 0xffffffff) {
      d[p] = UINT32;
      v.setUint32(p + 1, n);
      this.pos += 5;
    } else {
      d[p] = FLOAT64;
      v.setFloat64(p + 1, n);
      this.pos += 9;
    }
  }
  bin(data: Uint8Array): void {
    const d = this.#d,
      v = this.#v,
      p = this.pos,
      n = data.length;
    if (n < 0x100) {
      d[p] = BIN8;
      d[p + 1] = n;
      this.pos += 2;
    } else if (n < 0x10000) {
      d[p] = BIN16;
      v.setUint16(p + 1, n);
      this.pos += 3;
    } else {
      d[p] = BIN32;
      v.setUint32(p + 1, n);
      this.pos += 5;
    }
    this.bytes(data);
  }
  plane(p: ImagePlane, pad: number): void {
    this.map16(5);
    this.bytes(K.width);
    this.uint(p.width);
    this.bytes(K.height);
    this.uint(p.height);
    this.bytes(K.channels);
    this.uint(p.channels);
    this.bytes(K.pad);
    this.#d[this.pos] = BIN8;
    this.#d[this.pos + 1] = pad;
    this.#d.fill(0, this.pos + 2, this.pos + 2 + pad);
    this.pos += 2 + pad;
    this.bytes(K.data);
    this.bin(p.data); // the one copy of the pixels, 8-aligned
  }
}

/**
 * Encode `frame` directly into a reserved frame of `ring`: pixels are copied once, 8-aligned, and
 * msgpackr's scratch buffer is not used. Blocks like ring.writeWith for at most `timeoutMs`
 * (default forever) and throws its errors (SRGAN_ERR_RING_TIMEOUT / _CLOSED / _FRAME_TOO_LARGE).
 * Returns the frame's byte length. Pixel sources that are themselves 8-aligned copy fastest.
 */
export function encodeFrameInto(ring: SharedRing, frame: PatchFrame, timeoutMs = Infinity): number {
  checkFrame(frame);
  const { size, padHr, padLr } = layout(frame);
  ring.writeWith(
    size,
    (dst) => {
      const w = new FrameWriter(dst);
      w.map16(6);
      w.bytes(K.type);
      w.bytes(K.patch);
      w.bytes(K.seq);
      w.uint(frame.seq);
      w.bytes(K.epoch);
      w.uint(frame.epoch);
      w.bytes(K.index);
      w.uint(frame.index);
      w.bytes(K.hr);
      w.plane(frame.hr, padHr);
      w.bytes(K.lr);
      w.plane(frame.lr, padLr);
      if (w.pos !== size) throw new Error(`codec bug: wrote ${w.pos} bytes, reserved ${size}`);
    },
    timeoutMs,
  );
  return size;
}

/** Writes a SkipFrame into `ring` (tiny, rare: through msgpackr). Throws like ring.write. */
export function encodeSkipInto(ring: SharedRing, frame: SkipFrame, timeoutMs = Infinity): void {
  checkUint('seq', frame.seq);
  checkUint('count', frame.count);
  checkUint('index', frame.index);
  ring.write(packr.pack({ type: 'skip', seq: frame.seq, count: frame.count, index: frame.index }), timeoutMs);
}

// ---- decoding (the consumer; bytes from shared memory are checked, not trusted) -----------------

function bad(what: string, cause?: unknown): SrganError {
  return new SrganError('SRGAN_ERR_BAD_FRAME', `bad patch frame: ${what}`, cause === undefined ? undefined : { cause });
}

/** A short, safe description of a decoded value for error messages (never throws). */
function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `binary(${v.length})`;
  return Array.isArray(v) ? 'array' : typeof v;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function uintField(obj: Record<string, unknown>, path: string, key: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`${path}${key} must be a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

function decodePlane(v: unknown, name: string): ImagePlane {
  if (!isObject(v)) throw bad(`${name} must be a map, got ${describe(v)}`);
  const width = uintField(v, `${name}.`, 'width');
  const height = uintField(v, `${name}.`, 'height');
  const channels = uintField(v, `${name}.`, 'channels');
  const data = v['data'];
  if (!(data instanceof Uint8Array)) throw bad(`${name}.data must be binary, got ${describe(data)}`);
  if (data.length !== width * height * channels) {
    throw bad(`${name}.data has ${data.length} bytes, expected ${width}x${height}x${channels} = ${width * height * channels}`);
  }
  return { width, height, channels, data };
}

// ---- the fast path: the canonical layout, read without msgpackr ------------------------------------
//
// msgpackr's unpack costs ~11 us per frame from ordinary memory and ~27 us from shared memory (it sets
// up a DataView and decoder state per call), more than every other per-frame cost of the ring put
// together. Frames written by encodeFrameInto have one fixed layout, so we read that layout directly,
// checking every byte we rely on; anything else (another key order, float64 ints, garbage) returns null
// and goes through msgpackr and its full validation, so both paths accept and reject the same frames.

function readUint(b: Uint8Array, p: number): [number, number] | null {
  const t = b[p];
  if (t < 0x80) return [t, p + 1];
  if (t === UINT8) return [b[p + 1], p + 2];
  if (t === UINT16) return [(b[p + 1] << 8) | b[p + 2], p + 3];
  if (t === UINT32) return [((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0, p + 5];
  return null;
}

function readBin(b: Uint8Array, p: number): [Uint8Array, number] | null {
  const t = b[p];
  let len: number, start: number;
  if (t === BIN8) [len, start] = [b[p + 1], p + 2];
  else if (t === BIN16) [len, start] = [(b[p + 1] << 8) | b[p + 2], p + 3];
  else if (t === BIN32) [len, start] = [((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0, p + 5];
  else return null;
  if (start + len > b.length) return null;
  return [b.subarray(start, start + len), start + len];
}

function readKey(b: Uint8Array, p: number, key: Uint8Array): number {
  if (p + key.length > b.length) return -1;
  for (let i = 0; i < key.length; i++) if (b[p + i] !== key[i]) return -1;
  return p + key.length;
}

function readPlane(b: Uint8Array, p: number): [ImagePlane, number] | null {
  if (b[p] !== MAP16 || b[p + 1] !== 0 || b[p + 2] !== 5) return null;
  p += 3;
  const fields: number[] = [];
  for (const key of [K.width, K.height, K.channels]) {
    p = readKey(b, p, key);
    if (p < 0) return null;
    const u = readUint(b, p);
    if (!u) return null;
    fields.push(u[0]);
    p = u[1];
  }
  p = readKey(b, p, K.pad);
  if (p < 0) return null;
  const pad = readBin(b, p);
  if (!pad) return null;
  p = readKey(b, pad[1], K.data);
  if (p < 0) return null;
  const data = readBin(b, p);
  if (!data) return null;
  const [width, height, channels] = fields as [number, number, number];
  if (data[0].length !== width * height * channels) return null;
  return [{ width, height, channels, data: data[0] }, data[1]];
}

/** The canonical frame encodeFrameInto writes, read directly; null if `b` is anything else. */
function readCanonical(b: Uint8Array): PatchFrame | null {
  if (b.length < 3 || b[0] !== MAP16 || b[1] !== 0 || b[2] !== 6) return null;
  let p = readKey(b, 3, K.type);
  if (p < 0 || (p = readKey(b, p, K.patch)) < 0) return null;
  const ints: number[] = [];
  for (const key of [K.seq, K.epoch, K.index]) {
    p = readKey(b, p, key);
    if (p < 0) return null;
    const u = readUint(b, p);
    if (!u) return null;
    ints.push(u[0]);
    p = u[1];
  }
  if ((p = readKey(b, p, K.hr)) < 0) return null;
  const hr = readPlane(b, p);
  if (!hr || (p = readKey(b, hr[1], K.lr)) < 0) return null;
  const lr = readPlane(b, p);
  if (!lr || lr[1] !== b.length) return null;
  const [seq, epoch, index] = ints as [number, number, number];
  return { type: 'patch', seq, epoch, index, hr: hr[0], lr: lr[0] };
}

/**
 * Decode and validate one frame; throws SRGAN_ERR_BAD_FRAME naming the first problem. `hr.data`
 * and `lr.data` are views into `bytes` (no copy): for a view from ring.tryRead they die at
 * ring.release(), so copy the pixels into batch memory before releasing.
 */
export function decodeFrame(bytes: Uint8Array): PatchFrame {
  const fast = readCanonical(bytes);
  if (fast) return fast;
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (err) {
    throw bad(`not a single msgpack value (${(err as Error).message})`, err);
  }
  if (!isObject(v)) throw bad(`top level must be a map, got ${describe(v)}`);
  if (v['type'] !== 'patch') throw bad(`type must be 'patch', got ${describe(v['type'])}`);
  return {
    type: 'patch',
    seq: uintField(v, '', 'seq'),
    epoch: uintField(v, '', 'epoch'),
    index: uintField(v, '', 'index'),
    hr: decodePlane(v['hr'], 'hr'),
    lr: decodePlane(v['lr'], 'lr'),
  };
}

/** Decodes a patch or a skip frame (see decodeFrame); throws SRGAN_ERR_BAD_FRAME naming the problem. */
export function decodeRingFrame(bytes: Uint8Array): RingFrame {
  // A skip frame is a few dozen bytes; anything larger is a patch (or garbage, which decodeFrame names).
  if (bytes.length < 64) {
    let v: unknown;
    try {
      v = packr.unpack(bytes);
    } catch (err) {
      throw bad(`not a single msgpack value (${(err as Error).message})`, err);
    }
    if (isObject(v) && v['type'] === 'skip') {
      return { type: 'skip', seq: uintField(v, '', 'seq'), count: uintField(v, '', 'count'), index: uintField(v, '', 'index') };
    }
  }
  return decodeFrame(bytes);
}
