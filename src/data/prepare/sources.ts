// The source photos of `srgan prepare`: image files under the given folders and files.

import fs from 'node:fs';
import path from 'node:path';
import { SrganError } from '../../util/errors.js';
import { IMAGE_EXTENSIONS, isImageFile } from '../image/files.js';

export interface SourceFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Image files under the sources (folders walked recursively, symlinked folders not followed), sorted, without DATA_DIR. */
export function listSources(
  sources: readonly string[],
  out: string,
): { files: SourceFile[]; walkErrors: { path: string; message: string }[] } {
  const found = new Map<string, SourceFile>();
  const walkErrors: { path: string; message: string }[] = [];
  const add = (p: string, st: fs.Stats) => found.set(p, { path: p, size: st.size, mtimeMs: st.mtimeMs });
  const walk = (dir: string): void => {
    if (dir === out) return; // never prepare our own output
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      walkErrors.push({ path: dir, message: (err as Error).message });
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if ((e.isFile() || e.isSymbolicLink()) && isImageFile(e.name)) {
        try {
          const st = fs.statSync(p);
          if (st.isFile()) add(p, st);
        } catch (err) {
          // A dangling link, or a file that vanished: listed so the summary says so.
          walkErrors.push({ path: p, message: (err as Error).message });
        }
      }
    }
  };
  for (const src of sources) {
    let st: fs.Stats;
    try {
      st = fs.statSync(src);
    } catch (err) {
      throw new SrganError('SRGAN_ERR_DATA', `source ${src} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (st.isDirectory()) walk(src);
    else add(src, st);
  }
  const files = [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (files.length === 0) {
    throw new SrganError('SRGAN_ERR_DATA', `no image files (${IMAGE_EXTENSIONS.join(', ')}) under ${sources.join(', ')}`);
  }
  return { files, walkErrors };
}
