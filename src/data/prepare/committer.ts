// The one writer of a data set's patch files and manifest rows (docs/prepare.md).

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { SrganError } from '../../util/errors.js';
import { Manifest, PATCHES_PER_FOLDER, patchPath, type NewPatch } from './manifest.js';
import type { PrepareResult } from './worker.js';
import type { PrepareSummary, SkipCode } from './options.js';
import type { SourceFile } from './sources.js';

/** Writes `data` to `file` and flushes it to the disk. */
async function writeSynced(file: string, data: Uint8Array): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flushes a folder's entries (the names of files just written) to the disk. */
async function syncFolder(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes one source's PNGs, then records it; the only writer of patch files and of the manifest. */
export class Committer {
  readonly #out: string;
  readonly #manifest: Manifest;
  readonly #summary: PrepareSummary;
  readonly #folders = new Set<number>();
  last = '';

  constructor(out: string, manifest: Manifest, summary: PrepareSummary) {
    this.#out = out;
    this.#manifest = manifest;
    this.#summary = summary;
  }

  async commit(file: SourceFile, r: PrepareResult): Promise<void> {
    const s = this.#summary;
    const m = this.#manifest;
    const base = {
      path: file.path,
      size: file.size,
      mtimeMs: file.mtimeMs,
      hash: r.hash,
      width: r.width,
      height: r.height,
      camera: r.camera,
      predownscaled: r.predownscaled,
    };
    for (const k of ['read', 'decode', 'resize', 'encode'] as const) s.stageSeconds[k] += r.times[k];
    s.sourceMegapixels += r.pixels / 1e6;
    const original = r.status !== 'skipped' && r.hash !== null ? m.doneByHash(r.hash) : undefined;
    if (r.status === 'duplicate' || (r.status === 'done' && original)) {
      if (!original) throw new Error(`internal: ${file.path} matched a known hash that the manifest does not have`);
      const message = `same content (sha256 ${r.hash!.slice(0, 12)}…) as ${original.path}`;
      m.commitSource({ ...base, status: 'duplicate', duplicateOf: original.id, message }, []);
      s.duplicates++;
      this.#skip(file.path, 'duplicate', message);
    } else if (r.status === 'skipped') {
      m.commitSource({ ...base, status: 'skipped', reason: r.reason, message: r.message }, []);
      s.skipped++;
      this.#skip(file.path, r.reason, r.message);
    } else {
      const first = m.nextPatchId;
      const rows: NewPatch[] = r.patches.map((p, i) => ({ id: first + i, level: p.level, x: p.x, y: p.y, size: p.size }));
      const touched = new Set<string>();
      await Promise.all(
        r.patches.map(async (p, i) => {
          const id = first + i;
          const folder = Math.floor(id / PATCHES_PER_FOLDER);
          if (!this.#folders.has(folder)) {
            await fsp.mkdir(path.join(this.#out, String(folder)), { recursive: true });
            this.#folders.add(folder);
          }
          const file = patchPath(this.#out, id);
          touched.add(path.dirname(file));
          try {
            await writeSynced(file, new Uint8Array(r.png, p.offset, p.length));
          } catch (err) {
            throw new SrganError('SRGAN_ERR_DATA', `cannot write patch ${file}: ${(err as Error).message}`, { cause: err });
          }
        }),
      );
      // On disk, names included, before the manifest says they exist: a power loss then loses at most
      // the files in flight, which the next run removes as strays (docs/prepare.md).
      await Promise.all([...touched].map(syncFolder));
      m.commitSource({ ...base, status: 'done' }, rows);
      s.done++;
      s.patches += rows.length;
      s.pngBytes += r.png.byteLength;
    }
    s.processed++;
    this.last = file.path;
  }

  #skip(file: string, reason: SkipCode, message: string): void {
    const s = this.#summary;
    s.reasons[reason] = (s.reasons[reason] ?? 0) + 1;
    s.skippedFiles.push({ path: file, reason, message });
  }
}
