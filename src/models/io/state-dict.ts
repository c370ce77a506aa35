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
import type { NamedTensor, SafetensorsFile } from './safetensors.js';

const tfTensor = (data: Float32Array, shape: readonly number[]): tf.Tensor => tf.tensor(data, [...shape], 'float32');

/** The `arch` metadata value per generator kind (ESRGAN's is the name spandrel gives that network). */
export const STATE_DICT_ARCH: Readonly<Record<GeneratorConfig['kind'], string>> = Object.freeze({
  rrdbnet: 'ESRGAN',
  compact: 'SRVGGNetCompact',
  espcn: 'srgan-espcn',
  final: 'srgan-final',
});

/** The exported name of our variable `variable` in a generator of `kind`. */
export function stateDictName(kind: GeneratorConfig['kind'], variable: string): string {
  const m = /^(.*)\.(w|b|alpha)$/.exec(variable);
  if (!m) throw new RangeError(`state dict: variable "${variable}" is not a weight (.w), a bias (.b) or a slope (.alpha)`);
  const [, layer, wb] = m;
  // A PReLU's slopes are its `weight` in PyTorch.
  const suffix = wb === 'b' ? 'bias' : 'weight';
  if (kind === 'rrdbnet') {
    const r = /^rrdb(\d+)\.rdb([123])\.conv([1-5])$/.exec(layer);
    if (r) return `RRDB_trunk.${Number(r[1]) - 1}.RDB${r[2]}.conv${r[3]}.${suffix}`;
    if (!/^(conv_first|trunk_conv|upconv[12]|HRconv|conv_last)$/.test(layer)) {
      throw new RangeError(`state dict: "${variable}" is not a layer of ESRGAN's RRDBNet`);
    }
  }
  return `${layer}.${suffix}`;
}

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
 * The generator a state dict describes: ESRGAN-named tensors give an rrdbnet (features, growth and
 * blocks from the shapes, scale from the number of upconv layers); our own exports say theirs in the
 * metadata. Throws SrganError SRGAN_ERR_CHECKPOINT naming what does not fit.
 */
export function describeStateDict(file: SafetensorsFile, where: string): { config: GeneratorConfig; scale: 2 | 4 } {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const fail = (what: string): SrganError => new SrganError('SRGAN_ERR_CHECKPOINT', `${where}: ${what}`);
  if (byName.has('conv_first.weight') && byName.has('RRDB_trunk.0.RDB1.conv1.weight')) {
    const nf = byName.get('conv_first.weight')!.shape[0];
    const gc = byName.get('RRDB_trunk.0.RDB1.conv1.weight')!.shape[0];
    let blocks = 0;
    while (byName.has(`RRDB_trunk.${blocks}.RDB1.conv1.weight`)) blocks++;
    const ups = ['upconv1.weight', 'upconv2.weight', 'upconv3.weight'].filter((n) => byName.has(n)).length;
    if (ups !== 1 && ups !== 2)
      throw fail(`an ESRGAN state dict with ${ups} upconv layers (scale ${2 ** ups}); only ×2 and ×4 are supported`);
    return { config: { kind: 'rrdbnet', channels: nf, growth: gc, blocks }, scale: ups === 1 ? 2 : 4 };
  }
  const first = byName.get('body.0.weight');
  if (first && first.shape.length === 4 && byName.get('body.1.weight')?.shape.length === 1) {
    // SRVGGNetCompact: convs at even indices, PReLU slopes at odd ones, the last conv to 3·s².
    let convs = 0;
    while (byName.has(`body.${2 * convs}.weight`)) convs++;
    const last = byName.get(`body.${2 * (convs - 1)}.weight`)!;
    const s = Math.sqrt(last.shape[0] / 3);
    if (convs < 3) throw fail(`a Compact state dict with ${convs} convs; it needs at least 3`);
    if (s !== 2 && s !== 4)
      throw fail(`a Compact state dict whose last conv has ${last.shape[0]} outputs (scale ${s}); only ×2 and ×4 are supported`);
    return { config: { kind: 'compact', channels: first.shape[0], convs: convs - 2 }, scale: s };
  }
  const meta = file.metadata;
  const kinds = Object.entries(STATE_DICT_ARCH).filter(([, arch]) => arch === meta.arch);
  if (kinds.length === 1 && kinds[0][0] !== 'rrdbnet' && kinds[0][0] !== 'compact') {
    let config: unknown;
    try {
      config = JSON.parse(meta.config ?? '');
    } catch {
      throw fail(`its metadata says arch ${meta.arch} but its "config" is not JSON`);
    }
    const scale = Number(meta.scale);
    if (scale !== 2 && scale !== 4) throw fail(`its metadata scale must be 2 or 4, got ${JSON.stringify(meta.scale)}`);
    if ((config as { kind?: unknown } | null)?.kind !== kinds[0][0]) throw fail(`its metadata config is not a ${kinds[0][0]} generator`);
    return { config: config as GeneratorConfig, scale };
  }
  const names = file.tensors.slice(0, 4).map((t) => t.name);
  throw fail(
    `not a generator srgan can load: expected ESRGAN's tensor names (conv_first, RRDB_trunk.0.RDB1.conv1, …), ` +
      `SRVGGNetCompact's (body.0, body.1, …) or an srgan export (metadata arch srgan-espcn or srgan-final); ` +
      `it has ${names.join(', ')}${file.tensors.length > 4 ? ', …' : ''}${meta.arch ? ` (metadata arch ${meta.arch})` : ''}`,
  );
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
