// --tile, --overlap and --blend of `srgan upscale` and `srgan eval`, and the tiling they default to.

import { SrganError } from '../util/errors.js';
import { intFlag, str, type Values } from './flags.js';
import type { GeneratorConfig } from '../config/presets.js';
import { DEFAULT_TILE_OPTIONS, receptiveRadius, type TileOptions } from '../models/infer/tiling.js';

/**
 * The default overlap is the receptive-field radius, capped: it makes tiled output exact for the ESPCN
 * presets (radius 4–19), while the deep presets' radii (349–484) cannot be covered at any useful tile
 * size; beyond 32 a wider margin costs more stride than it removes error (which the blend fades).
 */
const MAX_DEFAULT_OVERLAP = 32;

export interface TilingRequest {
  tile?: number | 'auto';
  overlap?: number;
  blend?: number;
}

export function parseTiling(v: Values): TilingRequest {
  const out: TilingRequest = {};
  const tile = str(v.tile);
  if (tile !== undefined) out.tile = tile === 'auto' ? 'auto' : intFlag('--tile', tile, 1);
  if (v.overlap !== undefined) out.overlap = intFlag('--overlap', v.overlap, 0);
  if (v.blend !== undefined) out.blend = intFlag('--blend', v.blend, 0);
  return out;
}

/**
 * Tiling for a generator: overlap min(receptive radius, 32) and, when that covers the radius (tiled
 * output then equals untiled), no cross-fade; otherwise DEFAULT_TILE_OPTIONS' blend. Tile 'auto'.
 * With config null (an ONNX model: its network is not ours to trace), DEFAULT_TILE_OPTIONS' overlap
 * and blend, as for --compare models.
 */
export function tileOptions(
  config: GeneratorConfig | null,
  scale: 2 | 4,
  req: TilingRequest,
): Pick<TileOptions, 'tile' | 'overlap' | 'blend'> {
  const radius = config === null ? Number.POSITIVE_INFINITY : receptiveRadius(config, scale);
  const overlap = req.overlap ?? (config === null ? DEFAULT_TILE_OPTIONS.overlap : Math.min(radius, MAX_DEFAULT_OVERLAP));
  const blend = req.blend ?? (overlap >= radius ? 0 : DEFAULT_TILE_OPTIONS.blend);
  const tile = req.tile ?? DEFAULT_TILE_OPTIONS.tile;
  if (tile !== 'auto' && tile <= 2 * overlap + blend) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `--tile must be more than 2·overlap + blend = ${2 * overlap + blend} (overlap ${overlap}, blend ${blend}), got ${tile}`,
    );
  }
  return { tile, overlap, blend };
}
