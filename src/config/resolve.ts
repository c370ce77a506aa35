// The effective run config: a preset with overrides merged over it, validated field by field before the
// first step. Errors name the field and the value received, and suggest the closest known field.

import { SrganError } from '../util/errors.js';
import { DISCRIMINATOR_DEFAULTS, GENERATOR_DEFAULTS, PRESETS, type RunConfig } from './presets.js';
import { BACKEND_NAMES } from './backend-names.js';
import { DOWNSCALE_FILTERS, MAX_BLUR } from './lr-synthesis.js';

type Check = (v: unknown) => string | null;

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `an integer in ${min}..${max}`;
const num =
  (min: number, max = Infinity): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? null : `a number in ${min}..${max}`;
const oneOf =
  (...values: unknown[]): Check =>
  (v) =>
    values.includes(v) ? null : `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
const nullable =
  (c: Check): Check =>
  (v) =>
    v === null ? null : c(v);
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'a non-empty string');

/** One downscale filter name, or a mix {filter: weight ≥ 0} with at least one positive weight. */
const lrFilterSetting: Check = (v) => {
  const expected = `one of ${DOWNSCALE_FILTERS.map((f) => JSON.stringify(f)).join(', ')}, or a mix {filter: weight}, e.g. {"bicubic-aa": 2, "area": 1}`;
  if (typeof v === 'string') return DOWNSCALE_FILTERS.includes(v as never) ? null : expected;
  if (!isPlainObject(v)) return expected;
  const entries = Object.entries(v);
  if (entries.length === 0) return expected;
  for (const [k, w] of entries) {
    if (!DOWNSCALE_FILTERS.includes(k as never) || typeof w !== 'number' || !Number.isFinite(w) || w < 0) return expected;
  }
  return entries.some(([, w]) => (w as number) > 0) ? null : `${expected}, with at least one positive weight`;
};

const FIELDS: Record<string, Check> = {
  preset: str,
  scale: oneOf(2, 4),
  patchSize: int(16, 1024),
  batchSize: int(1, 256),
  lrFilter: lrFilterSetting,
  'lrBlur.probability': num(0, 1),
  'lrBlur.sigmaMin': num(0, MAX_BLUR),
  'lrBlur.sigmaMax': num(0, MAX_BLUR),
  jpeg: bool,
  pixelLoss: oneOf('mse', 'l1'),
  pixelWeight: num(0, 1000),
  'perceptual.kind': oneOf('off', 'bundled', 'vgg16'),
  'perceptual.path': nullable(str),
  'perceptual.weight': num(0, 1000),
  'perceptual.halfWeight': num(0, 1000),
  'perceptual.preprocess': oneOf('torch', 'caffe'),
  advWeight: num(0, 1),
  dStepsPerG: int(0, 100),
  dMode: oneOf('fixed', 'adaptive'),
  lrReferenceBatch: nullable(int(1, 4096)),
  resetOptimizers: bool,
  recompute: bool,
  accumulate: int(1, 256),
  emaDecay: nullable(num(0, 0.999999)),
  maxShift: int(1, 64),
  logEvery: int(1),
  previewEvery: int(0),
  maxSteps: nullable(int(1)),
  seed: int(0, 2 ** 31 - 1),
  dataDir: nullable(str),
  init: nullable(str),
  loaderWorkers: int(1, 64),
  patchesPerImage: int(1, 1024),
  ringMiB: int(1, 1024),
  backend: oneOf('auto', ...BACKEND_NAMES),
  precision: oneOf('fp32', 'bf16'),
  port: int(0, 65535),
  checkpointEvery: int(0),
  checkpointMinutes: num(0),
  checkpointKeep: int(1, 1000),
  checkpointRoot: nullable(str),
  valEvery: int(0),
  valImages: int(0, 10_000),
  'nonFinite.maxBadSteps': int(1, 1_000_000),
  'nonFinite.lrFactor': num(0.001, 1),
  'nonFinite.maxRollbacks': int(0, 1000),
  minFreeMiB: int(0, 10_000_000),
  'retention.metricsFullMinutes': num(0, 1e9),
  'retention.metricsEvery': int(1, 1_000_000),
  'retention.previewsFullMinutes': num(0, 1e9),
  'retention.previewsPerHour': num(0.001, 3600),
};

/** Fields of each network kind (besides `kind`). */
const KIND_FIELDS: Record<string, Record<string, Check>> = {
  espcn: { channels: int(1, 1024), layout: oneOf('plain', 'x2x2', 'conv-after-upsample', 'dilated'), skip: bool, depth: int(0, 64) },
  final: { channels: int(1, 1024), blocks: int(1, 64), dilatedBlocks: bool },
  rrdbnet: { channels: int(1, 1024), growth: int(1, 1024), blocks: int(1, 64) },
  compact: { channels: int(1, 1024), convs: int(1, 128) },
  patch: { mid: int(1, 512) },
  dilated: { mid: int(1, 512) },
  unet: { channels: int(1, 1024) },
};

/** Merges `overrides` over the preset it names (default espcn-x2-fast) and validates the result. */
export function resolveConfig(overrides: unknown = {}): RunConfig {
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) {
    throw configError('config', overrides, 'an object');
  }
  const o = overrides as Record<string, unknown>;
  const presetName = o.preset ?? 'espcn-x2-fast';
  const preset = typeof presetName === 'string' ? PRESETS[presetName] : undefined;
  if (!preset) throw configError('preset', presetName, `one of ${Object.keys(PRESETS).join(', ')}`);
  const merged = structuredClone(preset) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(o)) {
    if (!(key in merged)) throw unknownField(key);
    const base = merged[key];
    // phases and lrFilter are replaced whole (lrFilter may be a name or a mix).
    if (isPlainObject(base) && key !== 'phases' && key !== 'lrFilter') {
      if (!isPlainObject(value)) throw configError(key, value, 'an object');
      merged[key] = mergeNested(key, base, value);
    } else {
      merged[key] = value;
    }
  }
  for (const [field, check] of Object.entries(FIELDS)) {
    const value = field.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], merged);
    const expected = check(value);
    if (expected) throw configError(field, value, expected);
  }
  for (const key of ['generator', 'discriminator']) validateKind(key, merged[key] as Record<string, unknown>);
  validatePhases(merged.phases);
  const cfg = merged as unknown as RunConfig;
  if (cfg.patchSize % (cfg.scale * 8) !== 0) throw configError('patchSize', cfg.patchSize, `a multiple of ${cfg.scale * 8} (scale × 8)`);
  if (cfg.batchSize % cfg.accumulate !== 0)
    throw configError('accumulate', cfg.accumulate, `a divisor of batchSize (${cfg.batchSize}): the batch is split into equal parts`);
  if (cfg.accumulate > 1 && cfg.advWeight > 0 && (cfg.discriminator.kind === 'patch' || cfg.discriminator.kind === 'dilated')) {
    throw configError(
      'accumulate',
      cfg.accumulate,
      `1 with the ${cfg.discriminator.kind} discriminator (its BatchNorm normalises over the whole batch, so parts of it would train a different model)`,
    );
  }
  if (cfg.maxShift >= cfg.patchSize / 2) throw configError('maxShift', cfg.maxShift, `less than patchSize / 2 (${cfg.patchSize / 2})`);
  if (cfg.generator.kind === 'final' && cfg.scale !== 2)
    throw configError('scale', cfg.scale, '2 for the final generator (it upscales ×2)');
  if (cfg.generator.kind === 'espcn' && cfg.generator.layout === 'x2x2' && cfg.scale !== 4) {
    throw configError('generator.layout', 'x2x2', 'used with scale 4 only (two ×2 stages)');
  }
  if (cfg.discriminator.kind === 'unet' && (cfg.patchSize - cfg.maxShift) % 8 !== 0) {
    throw configError('maxShift', cfg.maxShift, `such that patchSize − maxShift is a multiple of 8 (the U-Net D needs it)`);
  }
  if (cfg.lrBlur.sigmaMin > cfg.lrBlur.sigmaMax)
    throw configError('lrBlur.sigmaMin', cfg.lrBlur.sigmaMin, `at most lrBlur.sigmaMax (${cfg.lrBlur.sigmaMax})`);
  if (typeof cfg.lrFilter !== 'string' && cfg.lrFilter['box-gamma'] && cfg.lrBlur.probability > 0) {
    throw configError('lrFilter', cfg.lrFilter, 'a mix without "box-gamma" when lrBlur.probability > 0 (box-gamma takes no blur)');
  }
  if (cfg.perceptual.kind === 'vgg16' && !cfg.perceptual.path) {
    throw configError(
      'perceptual.path',
      cfg.perceptual.path,
      'the path of a VGG16 tfjs LayersModel (model.json) when perceptual.kind is "vgg16"',
    );
  }
  return cfg;
}

/** generator / discriminator switch to the new kind's defaults when an override changes `kind`. */
function mergeNested(key: string, base: Record<string, unknown>, value: Record<string, unknown>): Record<string, unknown> {
  const defaults = key === 'generator' ? GENERATOR_DEFAULTS : key === 'discriminator' ? DISCRIMINATOR_DEFAULTS : null;
  let out = { ...base };
  if (defaults && value.kind !== undefined && value.kind !== base.kind) {
    const fresh = (defaults as Record<string, unknown>)[value.kind as string];
    if (!fresh)
      throw configError(
        `${key}.kind`,
        value.kind,
        `one of ${Object.keys(defaults)
          .map((k) => JSON.stringify(k))
          .join(', ')}`,
      );
    out = { ...(fresh as Record<string, unknown>) };
  }
  for (const [sub, subValue] of Object.entries(value)) {
    if (!(sub in out)) throw unknownField(`${key}.${sub}`, Object.keys(out));
    out[sub] = subValue;
  }
  return out;
}

function validateKind(key: string, obj: Record<string, unknown>): void {
  const fields = KIND_FIELDS[obj.kind as string];
  if (!fields)
    throw configError(
      `${key}.kind`,
      obj.kind,
      `one of ${Object.keys(key === 'generator' ? GENERATOR_DEFAULTS : DISCRIMINATOR_DEFAULTS)
        .map((k) => JSON.stringify(k))
        .join(', ')}`,
    );
  for (const [field, check] of Object.entries(fields)) {
    const expected = check(obj[field]);
    if (expected) throw configError(`${key}.${field}`, obj[field], expected);
  }
}

function validatePhases(phases: unknown): void {
  if (!Array.isArray(phases) || phases.length === 0) throw configError('phases', phases, 'a non-empty array of {steps, lrG, lrD}');
  phases.forEach((p, i) => {
    if (!isPlainObject(p)) throw configError(`phases[${i}]`, p, 'an object {steps, lrG, lrD}');
    for (const k of Object.keys(p))
      if (!['steps', 'lrG', 'lrD'].includes(k)) throw unknownField(`phases[${i}].${k}`, ['steps', 'lrG', 'lrD']);
    const last = i === phases.length - 1;
    const stepsErr = (last ? nullable(int(1)) : int(1))(p.steps);
    if (stepsErr) throw configError(`phases[${i}].steps`, p.steps, last ? `${stepsErr} or null` : stepsErr);
    for (const k of ['lrG', 'lrD']) {
      const e = num(0, 1)(p[k]);
      if (e) throw configError(`phases[${i}].${k}`, p[k], e);
    }
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function configError(field: string, value: unknown, expected: string): SrganError {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new SrganError('SRGAN_ERR_CONFIG', `config field "${field}" must be ${expected}, got ${shown.slice(0, 80)}`);
}

function unknownField(field: string, known?: string[]): SrganError {
  const leaf =
    field
      .split(/[.[\]]/)
      .filter(Boolean)
      .pop() ?? field;
  const candidates =
    known ??
    Object.keys(FIELDS)
      .map((f) => f.split('.').pop() as string)
      .concat('phases');
  const best = candidates.map((c) => ({ c, d: editDistance(c.toLowerCase(), leaf.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  const hint = best && best.d <= Math.max(2, Math.floor(leaf.length / 3)) ? ` (did you mean "${best.c}"?)` : '';
  return new SrganError('SRGAN_ERR_CONFIG', `unknown config field "${field}"${hint}`);
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}
