// Finding the image files of a folder: for training data (daemon/training-data.ts) and for
// `srgan upscale` / `srgan eval` on a folder, which need nothing else of the loader.

import fs from 'node:fs';
import path from 'node:path';

/** The image file extensions every command reads (any case). */
export const IMAGE_EXTENSIONS = Object.freeze(['jpeg', 'jpg', 'png', 'webp', 'tiff', 'tif', 'gif', 'avif']);
const IMAGE_EXT = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');

/** Whether `name` has one of IMAGE_EXTENSIONS. */
export function isImageFile(name: string): boolean {
  return IMAGE_EXT.test(name);
}

/** Image files under `dir` (recursive), sorted for a stable order. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isImageFile(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}
