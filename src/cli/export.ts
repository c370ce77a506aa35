// `srgan export`: a run's or checkpoint's generator (the EMA weights) written for other tools: a
// PyTorch state dict in .safetensors (docs/export.md), a tfjs LayersModel folder, or an ONNX model. Usage and --help
// live with its entry in use-commands.ts, which imports this module lazily (it loads tfjs).

import fs from 'node:fs';
import path from 'node:path';

import { homePaths } from '../store/home.js';
import { SrganError } from '../util/errors.js';
import { str, type Values } from './flags.js';
import { openSource } from './model-source.js';
import { writeSafetensors } from '../models/io/safetensors.js';
import { generatorStateDict, STATE_DICT_ARCH } from '../models/io/state-dict.js';
import { saveGeneratorLayersModel } from '../models/io/export-layers.js';
import { saveGeneratorOnnx } from '../models/io/export-onnx.js';
import { stateScores } from '../models/train/checkpoint.js';

/** The formats `srgan export` writes. */
export const EXPORT_FORMATS = ['safetensors', 'tfjs', 'onnx'] as const;
type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** `srgan export [RUN|CHECKPOINT] [--format F] [--out PATH] [--best] [--json]` */
export async function exportCommand(v: Values, args: string[]): Promise<number> {
  const format = (str(v.format) ?? 'safetensors') as ExportFormat;
  if (!EXPORT_FORMATS.includes(format)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--format must be one of ${EXPORT_FORMATS.join(', ')}, got "${String(v.format)}"`);
  }
  const ref = args[0];
  // A path that exists is a checkpoint (or model) folder; anything else names a run.
  const isPath = ref !== undefined && fs.existsSync(ref);
  const paths = homePaths();
  const warn = (line: string) => process.stderr.write(`${line}\n`);
  const source = await openSource(
    { run: isPath ? undefined : ref, checkpoint: isPath ? ref : undefined, best: v.best },
    paths,
    'cpu', // nothing is computed: the weights are only read
    warn,
  );
  const { gen, config, scale } = source.loaded;
  try {
    const runId = source.run?.id ?? source.loaded.runId ?? null;
    const scores = fs.existsSync(path.join(source.loaded.source, 'state.json'))
      ? stateScores(source.loaded.source)
      : { gain: null, psnr: null };
    const base = `srgan-${config.kind}-x${scale}${runId ? `-${runId}` : ''}${source.step === null ? '' : `-step${source.step}`}`;
    const out = path.resolve(str(v.out) ?? (format === 'tfjs' ? base : `${base}.${format}`));
    if (format === 'tfjs') {
      await saveGeneratorLayersModel(gen, config, out);
    } else {
      // The same facts in both files' metadata (docs/export.md).
      const metadata: Record<string, string> = {
        arch: STATE_DICT_ARCH[config.kind],
        scale: String(scale),
        config: JSON.stringify(config),
        run_id: runId ?? '',
        step: source.step === null ? '' : String(source.step),
        val_gain: scores.gain === null ? '' : String(scores.gain),
        val_psnr: scores.psnr === null ? '' : String(scores.psnr),
        preset: source.run?.preset ?? '',
        license: '',
        exported_by: 'srgan-daemon',
      };
      fs.mkdirSync(path.dirname(out), { recursive: true });
      if (format === 'safetensors') writeSafetensors(out, generatorStateDict(gen, config), { format: 'pt', ...metadata });
      else saveGeneratorOnnx(gen, config, out, metadata);
    }
    const bytes =
      format !== 'tfjs' ? fs.statSync(out).size : fs.readdirSync(out).reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0);
    if (v.json) {
      console.log(
        JSON.stringify({
          out,
          format,
          arch: STATE_DICT_ARCH[config.kind],
          scale,
          run: runId,
          step: source.step,
          bytes,
          params: gen.paramCount,
        }),
      );
    } else {
      console.error(source.describe);
      console.log(
        `${out} (${format}, ${STATE_DICT_ARCH[config.kind]} ×${scale}, ${gen.paramCount.toLocaleString('en-US')} params, ${(bytes / 2 ** 20).toFixed(1)} MiB)`,
      );
    }
    return 0;
  } finally {
    gen.dispose();
  }
}
