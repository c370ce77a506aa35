// The tensor names our generators have in PyTorch state dicts, and which generator a state dict
// describes (docs/export.md). Names and shapes only, no tfjs: the daemon's main thread reads an --init
// file's header with it before any trainer starts (models/io/state-dict.ts moves the values).

import type { GeneratorConfig } from '../../config/presets.js';
import { SrganError } from '../../util/errors.js';

/** A state dict's header: its tensors' names and shapes, and the file's metadata. */
export interface StateDictHeader {
  tensors: readonly { name: string; shape: readonly number[] }[];
  metadata: Record<string, string>;
}

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

/**
 * The generator a state dict describes: ESRGAN-named tensors give an rrdbnet (features, growth and
 * blocks from the shapes, scale from the number of upconv layers); our own exports say theirs in the
 * metadata. Throws SrganError SRGAN_ERR_CHECKPOINT naming what does not fit.
 */
export function describeStateDict(file: StateDictHeader, where: string): { config: GeneratorConfig; scale: 2 | 4 } {
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
