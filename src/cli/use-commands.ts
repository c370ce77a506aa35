// The commands that use a trained generator: upscale and eval. Their work (and tfjs) is loaded only
// when one of them runs, so the other commands start fast.

import { BACKEND_NAMES } from '../config/backend-names.js';
import { DOWNSCALE_FILTERS, EVAL_LR_SYNTHESES } from '../config/lr-synthesis.js';
import { json, type Command } from './flags.js';

export const useCommands = {
  export: {
    summary: "write a run's generator for other tools: a PyTorch state dict (.safetensors), a tfjs LayersModel or an ONNX model",
    usage: 'srgan export [RUN | CHECKPOINT] [--format safetensors|tfjs|onnx] [--out PATH] [--best] [--json]',
    options: { format: { type: 'string' }, out: { type: 'string' }, best: { type: 'boolean' }, json },
    positionals: [0, 1],
    help: {
      RUN: 'a run (id, id prefix or name; default the newest run with a checkpoint): its latest checkpoint, or its best with --best',
      CHECKPOINT:
        'or a checkpoint folder, its generator/ folder, an exported tfjs model folder, or a .safetensors or .pth state dict (to convert it)',
      '--format F':
        "safetensors (default): every kind; rrdbnet with ESRGAN's tensor names (conv_first, RRDB_trunk.N.RDBn.convn, …) and compact with Real-ESRGAN's (body.N), which spandrel-based tools (chaiNNer, ComfyUI) load; espcn and final with our own names, described in the file's metadata. tfjs: a LayersModel folder for tf.loadLayersModel, every kind. onnx: an ONNX model (opset 17; input 'input' [N, 3, H, W] RGB in [0, 1], any H and W; output 'output' ×scale) for ONNX Runtime and other ONNX tools, every kind",
      '--out PATH': 'the file (safetensors, onnx) or folder (tfjs) to write (default srgan-KIND-xSCALE-RUN-stepN[.safetensors|.onnx] here)',
      '--best': 'the checkpoint with the highest validation gain over bicubic instead of the latest',
      '--json': 'print {out, format, arch, scale, run, step, bytes, params} as one JSON object',
    },
    async run(v, args) {
      const { exportCommand } = await import('./export.js');
      return exportCommand(v, args);
    },
  },
  upscale: {
    summary: "upscale images (files or folders) with a run's generator or an exported model",
    usage:
      'srgan upscale IN... --out DIR [--run RUN | --checkpoint PATH | --model FILE] [--best] [--tile N|auto] [--overlap N] [--blend N] [--format png|jpeg|webp] [--runtime auto|onnx|tfjs] [--backend NAME] [--json]',
    options: {
      out: { type: 'string' },
      run: { type: 'string' },
      checkpoint: { type: 'string' },
      model: { type: 'string' },
      best: { type: 'boolean' },
      tile: { type: 'string' },
      overlap: { type: 'string' },
      blend: { type: 'string' },
      format: { type: 'string' },
      runtime: { type: 'string' },
      backend: { type: 'string' },
      json,
    },
    positionals: [0, Number.POSITIVE_INFINITY],
    help: {
      IN: 'image files, or folders walked recursively for png, jpg, jpeg, webp, tif, tiff, gif, avif (any case)',
      '--out DIR': 'where the results go, keeping paths relative to each IN folder (required)',
      '--run RUN': "use this run's latest checkpoint (default: the newest run that has one)",
      '--checkpoint PATH': "a checkpoint folder, its generator/ folder, an exported model.json folder, or a run's checkpoints folder",
      '--model FILE':
        "a .safetensors or .pth state dict: ESRGAN's or Real-ESRGAN Compact's (as published), or one srgan export wrote; or an .onnx model (input [N,3,H,W] RGB in [0,1], any size, ×2 or ×4; what srgan export --format onnx writes), run in onnxruntime-node (docs/export.md)",
      '--best':
        'take the checkpoint with the highest validation gain over bicubic instead of the latest (highest validation PSNR for runs from before gains were measured)',
      '--tile N|auto': 'LR tile side (default auto: the largest that fits 1 GiB of activations, at most 512)',
      '--overlap N': 'LR context pixels at inner tile edges (default: the receptive radius, at most 32)',
      '--blend N': 'LR width of the cross-fade between tiles (default 0 when the overlap covers the receptive radius, else 8)',
      '--format F': 'png, jpeg or webp (default: the input format; PNG for tiff, gif and avif)',
      '--runtime R':
        'auto (default): ONNX Runtime when onnxruntime-node is installed (about twice as fast on CPU; output within 1/255 of tfjs), unless --backend names a tfjs backend or auto finds a GPU; onnx: always ONNX Runtime; tfjs: always tfjs',
      '--backend NAME': `tfjs compute backend: auto (default), ${BACKEND_NAMES.join(', ')}; naming one runs tfjs (unless --runtime says otherwise)`,
      '--json':
        'print one JSON object {source, run, step, scale, generator (null for ONNX; then format: onnx), runtime (onnxruntime-node or tfjs), backend (null on ONNX Runtime), tiling, files: [{in, out, width, height, outWidth, outHeight, ms} | {in, error}], peakRssMiB (peak memory of the process)}',
    },
    async run(v, args) {
      const { upscaleCommand } = await import('./upscale.js');
      return upscaleCommand(v, args);
    },
  },
  eval: {
    summary: 'score a generator with PSNR-Y / SSIM-Y against bicubic and other models; stored on the run',
    usage:
      'srgan eval --data DIR [--run RUN | --checkpoint PATH | --model FILE] [--best] [--compare MODEL ...] [--lr-filter NAME ...] [--border N] [--limit N] [--backend NAME] [--json] [--no-save]',
    options: {
      data: { type: 'string' },
      run: { type: 'string' },
      checkpoint: { type: 'string' },
      model: { type: 'string' },
      best: { type: 'boolean' },
      compare: { type: 'string', multiple: true },
      'lr-filter': { type: 'string', multiple: true },
      border: { type: 'string' },
      limit: { type: 'string' },
      backend: { type: 'string' },
      'no-save': { type: 'boolean' },
      json,
    },
    help: {
      '--data DIR':
        'high-resolution images (walked recursively); each is cropped to a multiple of the scale and its LR made as --lr-filter says',
      '--run RUN': "evaluate this run's latest checkpoint (default: the newest run that has one)",
      '--checkpoint PATH': 'evaluate this checkpoint or exported generator folder instead',
      '--model FILE':
        'evaluate this .safetensors or .pth state dict instead (ESRGAN, Real-ESRGAN Compact, or an srgan export), or an .onnx model run in onnxruntime-node (docs/export.md)',
      '--best':
        'take the checkpoint with the highest validation gain over bicubic instead of the latest (highest validation PSNR for runs from before gains were measured)',
      '--compare MODEL':
        'also score this model: a tfjs LayersModel (model.json or its folder; input [n,h,w,3] in [0,1]), a .safetensors or .pth state dict (ESRGAN, Compact, an srgan export) or an .onnx model (input [N,3,H,W] in [0,1]; onnxruntime-node), ×2 or ×4 as the run; repeatable',
      '--lr-filter NAME': `how the LR inputs are made (repeatable; one table row each): ${DOWNSCALE_FILTERS.join(', ')}, or blurSIGMA+FILTER (a Gaussian blur first, e.g. blur0.8+bicubic-aa), or all (${EVAL_LR_SYNTHESES.join(', ')}); default bicubic-aa, the papers' protocol`,
      '--border N': 'pixels cropped from each side before measuring (default: the scale)',
      '--limit N': 'only the first N images (sorted by path)',
      '--backend NAME': `compute backend: auto (default), ${BACKEND_NAMES.join(', ')}`,
      '--json':
        'print one JSON object {source, run, step, scale, border, images, results, files, filters: [{lr, model, bicubic, gain, compare}]}',
      '--no-save': 'do not store the results in the evals table of runs.db',
    },
    async run(v) {
      const { evalCommand } = await import('./eval.js');
      return evalCommand(v);
    },
  },
} satisfies Record<string, Command>;
