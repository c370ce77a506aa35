// Our generators as PyTorch state dicts (docs/export.md): the tensor names and layouts that other
// tools expect, so an exported .safetensors loads where upscalers are used (chaiNNer, ComfyUI and
// the other tools built on spandrel detect the architecture from the names).
//
//  rrdbnet   ESRGAN's own naming (the reference RRDBNet): conv_first, RRDB_trunk.{i}.RDB{1..3}.conv{1..5}
//            (i from 0), trunk_conv, upconv{1,2}, HRconv, conv_last; readers infer the scale from the
//            number of upconv layers. Our variables carry the same names (rrdb{i+1}.rdb{j}.conv{k}).
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
  espcn: 'srgan-espcn',
  final: 'srgan-final',
});

/** The exported name of our variable `variable` in a generator of `kind`. */
export function stateDictName(kind: GeneratorConfig['kind'], variable: string): string {
  const m = /^(.*)\.(w|b)$/.exec(variable);
  if (!m) throw new RangeError(`state dict: variable "${variable}" is neither a weight (.w) nor a bias (.b)`);
  const [, layer, wb] = m;
  const suffix = wb === 'w' ? 'weight' : 'bias';
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

/** `gen`'s weights as a PyTorch state dict, in its variables' order. */
export function generatorStateDict(gen: Generator, config: GeneratorConfig): NamedTensor[] {
  return Object.entries(gen.variables).map(([variable, v]: [string, tf.Variable]) => {
    const data = v.dataSync() as Float32Array;
    const name = stateDictName(config.kind, variable);
    if (v.shape.length === 4) {
      const [kh, kw, cin, cout] = v.shape;
      return { name, shape: [cout, cin, kh, kw], data: hwioToOihw(data, v.shape) };
    }
    return { name, shape: [...v.shape], data: Float32Array.from(data) };
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
  const meta = file.metadata;
  const kinds = Object.entries(STATE_DICT_ARCH).filter(([, arch]) => arch === meta.arch);
  if (kinds.length === 1 && kinds[0][0] !== 'rrdbnet') {
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
    `not a generator srgan can load: expected ESRGAN's tensor names (conv_first, RRDB_trunk.0.RDB1.conv1, …) or an srgan export (metadata arch ${Object.values(
      STATE_DICT_ARCH,
    )
      .filter((a) => a !== 'ESRGAN')
      .join(
        ' or ',
      )}); it has ${names.join(', ')}${file.tensors.length > 4 ? ', …' : ''}${meta.arch ? ` (metadata arch ${meta.arch})` : ''}`,
  );
}

/**
 * Loads a state dict into `gen` (a generator of `kind`), all or nothing: every variable must have its
 * tensor with its shape, and every tensor a variable. Throws SrganError SRGAN_ERR_CHECKPOINT naming the
 * first tensors that differ.
 */
export function loadStateDict(gen: Generator, kind: GeneratorConfig['kind'], tensors: readonly NamedTensor[], where: string): void {
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
    plan.push({ v, data: v.shape.length === 4 ? oihwToHwio(t.data, t.shape) : t.data });
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
