// Finding the image files of a folder: for training data (daemon/training-data.ts) and for
// `srgan upscale` / `srgan eval` on a folder, which need nothing else of the loader.

import fs from 'node:fs';
import path from 'node:path';

const IMAGE_EXT = /\.(png|jpe?g|webp|tiff?|gif|avif)$/i;

/** Image files under `dir` (recursive), sorted for a stable order. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && IMAGE_EXT.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}
