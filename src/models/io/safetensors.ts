// The safetensors file format (docs/export.md), written and read here; no tfjs. A file is an 8-byte
// little-endian header length N, N bytes of JSON header `{name: {dtype, shape, data_offsets: [begin,
// end]}, "__metadata__": {string: string}}`, then the tensors' raw little-endian bytes, offsets relative
// to the end of the header. The format is small enough that a dependency would be larger than it.
//
// We write F32 only, tensors in the order given, packed. We read F32, F16 and BF16 (published models
// come in all three) into Float32Arrays, and refuse anything that does not add up: a header longer than
// the file or than HEADER_MAX, offsets that overlap, leave gaps, or run past the end, shapes that do
// not match the byte counts, other dtypes.

import fs from 'node:fs';
import os from 'node:os';

import { SrganError } from '../../util/errors.js';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: NamedTensor[];
  metadata: Record<string, string>;
}

/** What a file's header says: its tensors' names, shapes and types (no data), and its metadata. */
export interface SafetensorsHeader {
  tensors: { name: string; shape: number[]; dtype: 'F32' | 'F16' | 'BF16' }[];
  metadata: Record<string, string>;
}

/** Largest header we read (100 MB, the reference implementation's limit). */
const HEADER_MAX = 100_000_000;
const BYTES = { F32: 4, F16: 2, BF16: 2 } as const;
/** Float32Array bytes are the host's order; the file's are little-endian. */
const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The file's bytes: header (padded with spaces to a multiple of 8, as the reference writer does) and data. */
export function encodeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors metadata "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new RangeError(`safetensors: duplicate or reserved tensor name "${t.name}"`);
    const count = t.shape.reduce((a, d) => a * d, 1);
    if (count !== t.data.length) throw new RangeError(`safetensors: "${t.name}" has shape [${t.shape}] but ${t.data.length} values`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + head.length + offset);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let at = 8 + head.length;
  for (const t of tensors) {
    if (LITTLE_ENDIAN) {
      Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
      at += t.data.byteLength;
    } else {
      for (let i = 0; i < t.data.length; i++, at += 4) out.writeFloatLE(t.data[i], at);
    }
  }
  return out;
}

/** Writes `file` whole or not at all (a temporary file renamed over it). */
export function writeSafetensors(file: string, tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, encodeSafetensors(tensors, metadata));
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Reads a safetensors file; SrganError SRGAN_ERR_CHECKPOINT naming the file and what is wrong. */
export function readSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new SrganError('SRGAN_ERR_CHECKPOINT', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return decodeSafetensors(bytes, file);
}

/** Reads only the header of a safetensors file (checked against the file's size), not its data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new SrganError('SRGAN_ERR_CHECKPOINT', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 8));
    fs.readSync(fd, head, 0, head.length, 0);
    const n = headerLength(head, size, file);
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    const { entries, metadata } = parseHeader(json, size - 8 - n, file);
    return { tensors: entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.dtype })), metadata };
  } finally {
    fs.closeSync(fd);
  }
}

export function decodeSafetensors(bytes: Buffer, where = 'safetensors'): SafetensorsFile {
  const n = headerLength(bytes, bytes.length, where);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, where);
  const tensors = entries.map((e) => ({
    name: e.name,
    shape: e.shape,
    data: toFloat32(bytes, dataStart + e.begin, e.end - e.begin, e.dtype),
  }));
  return { tensors, metadata };
}

const unusable = (where: string, what: string): SrganError =>
  new SrganError('SRGAN_ERR_CHECKPOINT', `${where}: not a usable safetensors file: ${what}`);

/** The header length from the first 8 bytes of a file of `size` bytes. */
function headerLength(first8: Buffer, size: number, where: string): number {
  if (size < 8 || first8.length < 8) throw unusable(where, `${size} bytes, shorter than the 8-byte header length`);
  const n = first8.readBigUInt64LE(0);
  if (n > BigInt(Math.min(HEADER_MAX, size - 8)))
    throw unusable(where, `its header length (${n}) runs past the end of the file (${size} bytes)`);
  return Number(n);
}

type Entry = { name: string; dtype: keyof typeof BYTES; shape: number[]; begin: number; end: number };

/** Parses and checks a header whose data part has `dataLength` bytes. */
function parseHeader(json: Buffer, dataLength: number, where: string): { entries: Entry[]; metadata: Record<string, string> } {
  const fail = (what: string): SrganError => unusable(where, what);
  let header: unknown;
  try {
    header = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw fail(`its header is not JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('its header is not a JSON object');
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw fail('__metadata__ must map names to strings');
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw fail(`tensor "${name}" has no description`);
    if (typeof e.dtype !== 'string' || !(e.dtype in BYTES)) {
      throw fail(`tensor "${name}" is ${JSON.stringify(e.dtype)}; only F32, F16 and BF16 can be read`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor "${name}" has a bad shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0]) {
      throw fail(`tensor "${name}" has bad data_offsets`);
    }
    const dtype = e.dtype as keyof typeof BYTES;
    const count = (shape as number[]).reduce((a, d) => a * d, 1);
    if ((off[1] as number) - (off[0] as number) !== count * BYTES[dtype]) {
      throw fail(
        `tensor "${name}" has shape [${String(shape)}] (${count} ${dtype} values) but ${(off[1] as number) - (off[0] as number)} bytes`,
      );
    }
    if ((off[1] as number) > dataLength) throw fail(`tensor "${name}" runs past the end of the file`);
    entries.push({ name, dtype, shape: shape as number[], begin: off[0] as number, end: off[1] as number });
  }
  // The tensors must tile the data exactly: no overlaps, no gaps (the format's own rule).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin);
  let at = 0;
  for (const e of sorted) {
    if (e.begin !== at) throw fail(`tensor "${e.name}" starts at ${e.begin}, expected ${at} (overlapping or a gap)`);
    at = e.end;
  }
  if (at !== dataLength) throw fail(`the tensors cover ${at} of the ${dataLength} data bytes`);
  return { entries, metadata };
}

function toFloat32(bytes: Buffer, start: number, length: number, dtype: keyof typeof BYTES): Float32Array {
  return floatsFromLE(bytes.subarray(start, start + length), dtype);
}

/** Little-endian floats of `dtype` (also a .pth storage's F64) as a Float32Array. */
export function floatsFromLE(raw: Uint8Array, dtype: 'F32' | 'F16' | 'BF16' | 'F64'): Float32Array {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = dtype === 'F64' ? 8 : dtype === 'F32' ? 4 : 2;
  const out = new Float32Array(b.length / size);
  if (dtype === 'F32' && LITTLE_ENDIAN) {
    b.copy(Buffer.from(out.buffer));
    return out;
  }
  for (let i = 0; i < out.length; i++) {
    const p = i * size;
    if (dtype === 'F32') out[i] = b.readFloatLE(p);
    else if (dtype === 'F64') out[i] = b.readDoubleLE(p);
    else if (dtype === 'F16') out[i] = halfToFloat(b.readUInt16LE(p));
    else out[i] = bf16ToFloat(b.readUInt16LE(p));
  }
  return out;
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 is the top half of a float32. */
function bf16ToFloat(h: number): number {
  scratch.setUint32(0, h << 16);
  return scratch.getFloat32(0);
}

/** IEEE 754 half precision to a number, subnormals, infinities and NaN included. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
