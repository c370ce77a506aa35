// Our generators as PyTorch state dicts (docs/export.md): the tensor names and layouts that other
// tools expect, so an exported .safetensors loads where upscalers are used (chaiNNer, ComfyUI and
// the other tools built on spandrel detect the architecture from the names).
//
//  rrdbnet   ESRGAN's own naming (the reference RRDBNet): conv_first, RRDB_trunk.{i}.RDB{1..3}.conv{1..5}
//            (i from 0), trunk_conv, upconv{1,2}, HRconv, conv_last; readers infer the scale from the
//            number of upconv layers. Our variables carry the same names (rrdb{i+1}.rdb{j}.conv{k}).
//  compact   Real-ESRGAN's SRVGGNetCompact naming: body.{k}.weight/.bias for the convs (k even),
//            body.{k}.weight [F] for the PReLU slopes (k odd). Readers infer the scale from the last
//            conv's 3·s² outputs. PyTorch's pixel shuffle reads channel c·s² + i·s + j where ours
//            (tf.depthToSpace) reads (i·s + j)·3 + c, so the last conv's outputs are permuted.
//  espcn,    our own names (conv1 … / head, rrdb{i}.dil{j}.conv{k} …), with the architecture, scale and
//  final     config in the metadata; no other tool knows these networks.
//
// Every conv weight goes from our HWIO [kh, kw, in, out] to PyTorch's OIHW [out, in, kh, kw]; biases
// are [out] in both.

import * as tf from '@tensorflow/tfjs-core';

import type { GeneratorConfig } from '../../config/presets.js';
import { SrganError } from '../../util/errors.js';
import type { Generator } from '../archs/network.js';
import type { NamedTensor } from './safetensors.js';
import { stateDictName } from './state-dict-names.js';

export { describeStateDict, STATE_DICT_ARCH, stateDictName } from './state-dict-names.js';

const tfTensor = (data: Float32Array, shape: readonly number[]): tf.Tensor => tf.tensor(data, [...shape], 'float32');

/** HWIO → OIHW. */
export function hwioToOihw(data: Float32Array, [kh, kw, cin, cout]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o];
      }
    }
  }
  return out;
}

/** OIHW → HWIO, the inverse of hwioToOihw. */
export function oihwToHwio(data: Float32Array, [cout, cin, kh, kw]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * cin + i) * cout + o] = data[((o * cin + i) * kh + y) * kw + x];
      }
    }
  }
  return out;
}

/**
 * For the conv whose outputs feed a pixel shuffle by s in a network PyTorch runs: perm[k] is our
 * output channel that PyTorch's channel k must hold (PyTorch c·s² + i·s + j = ours (i·s + j)·3 + c).
 * Null for other variables.
 */
function shufflePermutation(config: GeneratorConfig, scale: number, variable: string): number[] | null {
  if (config.kind !== 'compact' || !variable.startsWith(`body.${2 * config.convs + 2}.`)) return null;
  const perm: number[] = [];
  for (let c = 0; c < 3; c++) for (let i = 0; i < scale; i++) for (let j = 0; j < scale; j++) perm.push((i * scale + j) * 3 + c);
  return perm;
}

/** `data` (a conv weight in OIHW, or a bias) with its output channels (the first axis) reordered: out[k] = data[perm[k]]. */
function permuteOutputs(data: Float32Array, perm: readonly number[]): Float32Array {
  const per = data.length / perm.length;
  const out = new Float32Array(data.length);
  perm.forEach((from, k) => out.set(data.subarray(from * per, (from + 1) * per), k * per));
  return out;
}

/** The inverse of permuteOutputs: out[perm[k]] = data[k]. */
function unpermuteOutputs(data: Float32Array, perm: readonly number[]): Float32Array {
  const per = data.length / perm.length;
  const out = new Float32Array(data.length);
  perm.forEach((to, k) => out.set(data.subarray(k * per, (k + 1) * per), to * per));
  return out;
}

/** `gen`'s weights as a PyTorch state dict, in its variables' order. */
export function generatorStateDict(gen: Generator, config: GeneratorConfig): NamedTensor[] {
  return Object.entries(gen.variables).map(([variable, v]: [string, tf.Variable]) => {
    const data = v.dataSync() as Float32Array;
    const name = stateDictName(config.kind, variable);
    const perm = shufflePermutation(config, gen.scale, variable);
    const permuted = (d: Float32Array): Float32Array => (perm ? permuteOutputs(d, perm) : d);
    if (v.shape.length === 4) {
      const [kh, kw, cin, cout] = v.shape;
      return { name, shape: [cout, cin, kh, kw], data: permuted(hwioToOihw(data, v.shape)) };
    }
    return { name, shape: [...v.shape], data: permuted(Float32Array.from(data)) };
  });
}

/**
 * Loads a state dict into `gen` (a generator of `kind`), all or nothing: every variable must have its
 * tensor with its shape, and every tensor a variable. Throws SrganError SRGAN_ERR_CHECKPOINT naming the
 * first tensors that differ.
 */
export function loadStateDict(gen: Generator, config: GeneratorConfig, tensors: readonly NamedTensor[], where: string): void {
  const kind = config.kind;
  const fail = (what: string): SrganError => new SrganError('SRGAN_ERR_CHECKPOINT', `${where}: ${what}`);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const plan: { v: tf.Variable; data: Float32Array }[] = [];
  const missing: string[] = [];
  const used = new Set<string>();
  for (const [variable, v] of Object.entries(gen.variables)) {
    const name = stateDictName(kind, variable);
    const t = byName.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    used.add(name);
    const want = v.shape.length === 4 ? [v.shape[3], v.shape[2], v.shape[0], v.shape[1]] : [...v.shape];
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw fail(`tensor ${name} has shape [${t.shape}], the generator needs [${want}]`);
    }
    // Undo the export's permutation of a shuffle's inputs.
    const perm = shufflePermutation(config, gen.scale, variable);
    const data = perm ? unpermuteOutputs(t.data, perm) : t.data;
    plan.push({ v, data: v.shape.length === 4 ? oihwToHwio(data, t.shape) : data });
  }
  const extra = tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (missing.length > 0 || extra.length > 0) {
    const list = (xs: string[]) => xs.slice(0, 3).join(', ') + (xs.length > 3 ? `, … (${xs.length} in all)` : '');
    throw fail(
      [missing.length ? `missing ${list(missing)}` : '', extra.length ? `not part of a ${kind} generator: ${list(extra)}` : '']
        .filter(Boolean)
        .join('; '),
    );
  }
  for (const p of plan) {
    const t = tfTensor(p.data, p.v.shape);
    p.v.assign(t);
    t.dispose();
  }
}
