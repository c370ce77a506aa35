// PyTorch .pth/.pt files, read without running them (docs/export.md, ".pth files"). Since PyTorch 1.6,
// torch.save writes a zip: ARCHIVE/data.pkl (a pickle of the object) and ARCHIVE/data/KEY (one raw,
// little-endian storage per tensor). A pickle is a program that may call any Python function it
// names; here the file is parsed by pickleparser with a resolver that knows only what a state dict
// needs (an OrderedDict, tensors and their storages) and refuses every other name, so a model file
// can only give us tensors, whatever it asks for. Zip entries are read with fflate.

import fs from 'node:fs';

import { unzipSync } from 'fflate';
import { Parser } from 'pickleparser';

import { SrganError } from '../../util/errors.js';
import { floatsFromLE, type NamedTensor, type SafetensorsFile } from './safetensors.js';

/** A storage class the pickle names (torch.FloatStorage, …), with its element type. */
type StorageType = (() => never) & { dtype: 'F32' | 'F16' | 'BF16' | 'F64' };

const STORAGE_BYTES = { F32: 4, F16: 2, BF16: 2, F64: 8 } as const;
const STORAGES: Record<string, StorageType['dtype']> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
};

/** A tensor as the pickle rebuilds it. */
class PthTensor {
  constructor(
    readonly shape: number[],
    readonly data: Float32Array,
  ) {}
}

/**
 * The tensors of a .pth state dict, by name, with no metadata. A Real-ESRGAN/BasicSR checkpoint
 * ({params_ema: …} or {params: …}) gives its EMA (else its params) weights. SrganError
 * SRGAN_ERR_CHECKPOINT naming the file and the problem: not a zip, an old (pre-1.6) file, a pickle
 * naming anything but tensors and containers, tensors whose storage does not add up.
 */
export function readPth(file: string): SafetensorsFile {
  const fail = (what: string): SrganError => new SrganError('SRGAN_ERR_CHECKPOINT', `${file}: ${what}`);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new SrganError('SRGAN_ERR_CHECKPOINT', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) {
    throw fail(
      'an old-format PyTorch file (torch.save before 1.6, a bare pickle); load and save it again with a newer PyTorch, or convert it to .safetensors',
    );
  }
  if (bytes.readUInt32LE(0) !== 0x04034b50) throw fail('not a PyTorch .pth file (not a zip archive)');
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (err) {
    throw fail(`its zip archive cannot be read (${(err as Error).message})`);
  }
  const pkl = Object.keys(entries).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl === undefined) throw fail('not a PyTorch .pth file (no ARCHIVE/data.pkl in it)');
  const archive = pkl.slice(0, -'data.pkl'.length);
  const order = entries[`${archive}byteorder`];
  if (order !== undefined && Buffer.from(order).toString() !== 'little')
    throw fail('its tensors are big-endian; only little-endian files are read');

  const storage = (key: string, dtype: StorageType['dtype'], numel: number): Float32Array => {
    const raw = entries[`${archive}data/${key}`];
    if (raw === undefined) throw fail(`storage ${key} is missing from the archive`);
    if (raw.length !== numel * STORAGE_BYTES[dtype]) throw fail(`storage ${key} has ${raw.length} bytes, not ${numel} ${dtype} values`);
    return floatsFromLE(raw, dtype);
  };
  const allowed = (module: string, name: string): ((...args: never[]) => unknown) => {
    const qualified = `${module}.${name}`;
    if (qualified === 'collections.OrderedDict') return () => new Map();
    if (qualified === 'torch._utils._rebuild_tensor_v2') return rebuildTensor;
    if (qualified === 'torch._utils._rebuild_parameter') return (data: unknown) => data;
    if (module === 'torch' && name in STORAGES) return Object.assign(() => fail(`${qualified} called`), { dtype: STORAGES[name] });
    throw fail(
      `its pickle asks for ${qualified}, which a state dict does not need; refused (only tensors in dicts are read: a .pth may run any code it names)`,
    );
  };
  const rebuildTensor = (source: { data: Float32Array }, offset: number, size: number[], stride: number[]): PthTensor => {
    if (!(source?.data instanceof Float32Array) || !Array.isArray(size) || !Array.isArray(stride) || size.length !== stride.length) {
      throw fail('a tensor in it is not a plain tensor');
    }
    const count = size.reduce((a, d) => a * d, 1);
    const out = new Float32Array(count);
    // Any strides (views of a storage), read in row-major order.
    const idx = new Array<number>(size.length).fill(0);
    for (let i = 0; i < count; i++) {
      let at = offset;
      for (let d = 0; d < size.length; d++) at += idx[d] * stride[d];
      if (at < 0 || at >= source.data.length) throw fail('a tensor in it reaches outside its storage');
      out[i] = source.data[at];
      for (let d = size.length - 1; d >= 0; d--) {
        if (++idx[d] < size[d]) break;
        idx[d] = 0;
      }
    }
    return new PthTensor([...size], out);
  };

  let root: unknown;
  try {
    root = new Parser({
      nameResolver: { resolve: allowed },
      persistentResolver: {
        resolve: (pid: unknown) => {
          // ('storage', storage type, key, location, element count)
          const p = pid as [string, StorageType, string, string, number];
          if (!Array.isArray(p) || p[0] !== 'storage' || typeof p[1]?.dtype !== 'string' || typeof p[2] !== 'string') {
            throw fail('a persistent reference in its pickle is not a tensor storage');
          }
          return { data: storage(p[2], p[1].dtype, Number(p[4])) };
        },
      },
      unpicklingTypeOfDictionary: 'Map',
    }).parse<unknown>(entries[pkl]);
  } catch (err) {
    if (err instanceof SrganError) throw err;
    throw fail(`its pickle cannot be read (${(err as Error).message})`);
  }

  let dict = root;
  for (const key of ['params_ema', 'params', 'state_dict']) {
    if (dict instanceof Map && dict.get(key) instanceof Map) {
      dict = dict.get(key);
      break;
    }
  }
  if (!(dict instanceof Map)) throw fail('holds no dict of tensors (a state dict)');
  const tensors: NamedTensor[] = [];
  for (const [name, value] of dict as Map<unknown, unknown>) {
    if (typeof name === 'string' && value instanceof PthTensor) tensors.push({ name, shape: value.shape, data: value.data });
  }
  if (tensors.length === 0) throw fail('holds no tensors');
  return { tensors, metadata: {} };
}
