// A tf.io handler for a tfjs model on the local file system: `model.json` plus binary weight shards,
// the layout tfjs-converter and `model.save('file://…')` produce. tfjs-core ships no file handler
// (`file://` is registered by tfjs-node only), and we must not depend on tfjs-node.
//
// Files on disk are untrusted input (docs/style.md §2): load() checks that model.json is a JSON object
// with a topology, that every shard stays inside the model's directory, and that the shards hold
// exactly the bytes the weight manifest asks for, and names the file and the problem when not.
//
// save() is crash-safe for an existing model: shard names carry a hash of their content, model.json
// is replaced atomically (temp file, then rename) after the shards are in place, and shards that the
// new model.json no longer names are removed last. A reader sees the old model or the new one.

import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';

import { type ErrorCode, SrganError } from '../../util/errors.js';

export interface FileModelIOOptions {
  /** Code of the SrganError thrown for a missing, unreadable or malformed model. Default SRGAN_ERR_CONFIG. */
  errorCode?: ErrorCode;
  /** Largest weight shard save() writes, in bytes. Default 4 MiB (tfjs' own default). */
  shardBytes?: number;
}

const MODEL_JSON = 'model.json';
const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;
const SHARD_RE = /^group1-shard\d+of\d+-[0-9a-f]{12}\.bin$/;

/** Bytes per element of each stored dtype (quantised weights store the quantisation dtype). */
const DTYPE_BYTES: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/**
 * An IOHandler for the tfjs model at `location`: a model.json file, or a directory holding one.
 * load() reads model.json and its shards; save() writes model.json and shards into that directory
 * (created when missing). Problems are SrganError `errorCode` (default SRGAN_ERR_CONFIG) naming the file.
 */
export function fileModelIO(location: string, opts: FileModelIOOptions = {}): tf.io.IOHandler {
  if (typeof location !== 'string' || location.length === 0) {
    throw new TypeError(`location: expected a non-empty path, got ${String(location)}`);
  }
  const code = opts.errorCode ?? 'SRGAN_ERR_CONFIG';
  const shardBytes = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isInteger(shardBytes) || shardBytes < 1024) {
    throw new RangeError(`shardBytes: expected an integer ≥ 1024, got ${shardBytes}`);
  }
  const abs = path.resolve(location);
  const jsonPath = path.extname(abs).toLowerCase() === '.json' ? abs : path.join(abs, MODEL_JSON);
  return {
    load: () => loadModel(jsonPath, code),
    save: (artifacts) => saveModel(jsonPath, artifacts, code, shardBytes),
  };
}

async function loadModel(jsonPath: string, code: ErrorCode): Promise<tf.io.ModelArtifacts> {
  const fail = (what: string, cause?: unknown): SrganError =>
    new SrganError(code, `${jsonPath}: ${what}`, cause === undefined ? undefined : { cause });
  let text: string;
  try {
    text = await fsp.readFile(jsonPath, 'utf8');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') throw fail('no such file');
    if (errno === 'EISDIR') throw fail(`is a directory without ${MODEL_JSON}`);
    throw fail('cannot be read', err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail('is not JSON', err);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail('is not a JSON object');
  const modelJson = json as Partial<tf.io.ModelJSON>;
  if (typeof modelJson.modelTopology !== 'object' || modelJson.modelTopology === null) {
    throw fail('has no modelTopology (not a tfjs model.json)');
  }
  const manifest = modelJson.weightsManifest ?? [];
  if (!Array.isArray(manifest) || !manifest.every(isWeightGroup)) {
    throw fail('has a malformed weightsManifest (expected [{paths: string[], weights: [...]}, …])');
  }
  modelJson.weightsManifest = manifest;

  const dir = path.dirname(jsonPath);
  return tf.io.getModelArtifactsForJSON(modelJson as tf.io.ModelJSON, async (groups) => {
    const specs = groups.flatMap((g) => g.weights);
    const buffers: Buffer[] = [];
    for (const g of groups) {
      for (const rel of g.paths) {
        const file = path.resolve(dir, rel);
        if (path.isAbsolute(rel) || path.relative(dir, file).startsWith('..')) {
          throw fail(`weight shard path ${JSON.stringify(rel)} leaves the model's directory`);
        }
        try {
          buffers.push(await fsp.readFile(file));
        } catch (err) {
          throw fail(`weight shard ${rel} cannot be read`, err);
        }
      }
    }
    const data = Buffer.concat(buffers);
    const want = expectedBytes(specs);
    if (want !== null && want !== data.length) {
      throw fail(`weight shards hold ${data.length} bytes, the manifest's ${specs.length} weights need ${want}`);
    }
    const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
    return [specs, weightData];
  });
}

function isWeightGroup(g: unknown): g is tf.io.WeightsManifestConfig[number] {
  if (typeof g !== 'object' || g === null) return false;
  const { paths, weights } = g as { paths?: unknown; weights?: unknown };
  return (
    Array.isArray(paths) &&
    paths.every((p) => typeof p === 'string') &&
    Array.isArray(weights) &&
    weights.every(
      (w) =>
        typeof w === 'object' &&
        w !== null &&
        typeof (w as { name?: unknown }).name === 'string' &&
        Array.isArray((w as { shape?: unknown }).shape),
    )
  );
}

/** Total bytes the specs occupy in the shards, or null when it cannot be known (string weights). */
function expectedBytes(specs: readonly tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const s of specs) {
    const dtype = s.quantization?.dtype ?? s.dtype;
    const bytes = DTYPE_BYTES[dtype];
    if (bytes === undefined) return null;
    total += s.shape.reduce((a, d) => a * d, 1) * bytes;
  }
  return total;
}

async function saveModel(
  jsonPath: string,
  artifacts: tf.io.ModelArtifacts,
  code: ErrorCode,
  shardBytes: number,
): Promise<tf.io.SaveResult> {
  const topology = artifacts.modelTopology;
  if (topology === undefined || topology instanceof ArrayBuffer) {
    throw new SrganError(
      code,
      `${jsonPath}: only a JSON model topology can be saved, got ${topology === undefined ? 'none' : 'a binary one'}`,
    );
  }
  const dir = path.dirname(jsonPath);
  const data = Buffer.from(artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const hash = createHash('sha256').update(data).digest('hex').slice(0, 12);
  const count = Math.max(1, Math.ceil(data.length / shardBytes));
  const names = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}-${hash}.bin`);

  const modelJson: tf.io.ModelJSON = {
    modelTopology: topology,
    weightsManifest: [{ paths: names, weights: artifacts.weightSpecs ?? [] }],
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-core v${tf.version_core}`,
    convertedBy: artifacts.convertedBy ?? null,
  };
  if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
  if (artifacts.userDefinedMetadata !== undefined) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.signature !== undefined) modelJson.signature = artifacts.signature;
  if (artifacts.modelInitializer !== undefined) modelJson.modelInitializer = artifacts.modelInitializer;

  const tmps: string[] = [];
  try {
    await fsp.mkdir(dir, { recursive: true });
    // Same content gives the same names, so rewriting an unchanged model replaces files in place.
    for (let i = 0; i < count; i++) {
      await writeAtomic(path.join(dir, names[i]), data.subarray(i * shardBytes, (i + 1) * shardBytes), tmps);
    }
    await writeAtomic(jsonPath, JSON.stringify(modelJson), tmps);
    const keep = new Set(names);
    for (const f of await fsp.readdir(dir)) {
      if (SHARD_RE.test(f) && !keep.has(f)) await fsp.rm(path.join(dir, f), { force: true });
    }
  } catch (err) {
    await Promise.all(tmps.map((t) => fsp.rm(t, { force: true }).catch(() => undefined)));
    throw new SrganError(code, `${jsonPath}: cannot save the model`, { cause: err });
  }
  return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
}

/** Writes `file` through a temp file and a rename; `tmps` collects temp names for cleanup on failure. */
async function writeAtomic(file: string, content: string | Uint8Array, tmps: string[]): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  tmps.push(tmp);
  await fsp.writeFile(tmp, content);
  await fsp.rename(tmp, file);
}
