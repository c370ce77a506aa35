// The trainer's batch: patch frames from the ring, taken in sequence order (sequencer.ts), copied into
// float buffers, and, with JPEG degradation on, the LR half kept 8-bit until the batch is complete.

import * as tf from '@tensorflow/tfjs-core';
import type { SharedRing } from '../protocol/ring.js';
import { decodeRingFrame, type PatchFrame } from '../protocol/codec.js';
import type { FromTrainer } from '../protocol/messages.js';
import type { RunConfig } from '../config/presets.js';
import type { Rng } from '../util/prng.js';
import { drawJpegQuality, jpegDegrade } from '../data/image/degrade.js';
import type { Sequencer } from './sequencer.js';

/** How long the trainer waits for a missing patch while later ones are waiting (see Sequencer). */
const STALL_MS = 20_000;

export class Batch {
  readonly size: number;
  readonly #P: number;
  readonly #L: number;
  readonly #hr: Float32Array;
  readonly #lr: Float32Array;
  /** With JPEG degradation the LR patches stay 8-bit until the batch is complete (one quality per batch). */
  readonly #lrBytes: Uint8Array | null;
  readonly #ring: SharedRing;
  readonly #sequencer: Sequencer;
  readonly #post: (m: FromTrainer) => void;
  /** Frames of the current batch already copied in (kept across a pause). */
  filled = 0;

  constructor(config: RunConfig, ring: SharedRing, sequencer: Sequencer, post: (m: FromTrainer) => void) {
    this.size = config.batchSize;
    this.#P = config.patchSize;
    this.#L = config.patchSize / config.scale;
    this.#hr = new Float32Array(this.size * this.#P * this.#P * 3);
    this.#lr = new Float32Array(this.size * this.#L * this.#L * 3);
    this.#lrBytes = config.jpeg ? new Uint8Array(this.size * this.#L * this.#L * 3) : null;
    this.#ring = ring;
    this.#sequencer = sequencer;
    this.#post = post;
  }

  /** The data position of the first patch not yet trained on: a checkpoint's, so a resumed run reads this batch again. */
  get nextSeq(): number {
    return this.#sequencer.next - this.filled;
  }

  /**
   * Copies frames in until the batch is full; false when training should not step now (`running` went
   * false, or the ring closed). `onWait` gets the milliseconds spent waiting on the ring.
   */
  async fill(running: () => boolean, onWait: (ms: number) => void): Promise<boolean> {
    let stalledSince = performance.now();
    while (this.filled < this.size) {
      if (!running()) return false;
      const early = this.#sequencer.take();
      if (early) {
        this.#add(early);
        continue;
      }
      const t0 = performance.now();
      let bytes: Uint8Array | null;
      try {
        bytes = await this.#ring.readAsync(250);
      } catch (err) {
        if ((err as { code?: string }).code === 'SRGAN_ERR_RING_CLOSED') return false; // shutting down
        throw err;
      } finally {
        onWait(performance.now() - t0);
      }
      if (bytes === null) {
        if (this.#ring.closed) return false;
        // Later patches are here but the next one has not come for a long time: it never will.
        if (performance.now() - stalledSince > STALL_MS && this.#sequencer.stats().stashed > 0) {
          const n = this.#sequencer.skipToStashed();
          this.#post({
            type: 'warning',
            code: 'SRGAN_ERR_BAD_FRAME',
            message: `${n} patches never arrived in ${STALL_MS / 1000} s; training goes on without them`,
          });
        }
        continue;
      }
      stalledSince = performance.now();
      try {
        const frame = this.#sequencer.offer(decodeRingFrame(bytes));
        if (frame) this.#add(frame);
      } catch (err) {
        this.#post({ type: 'warning', code: 'SRGAN_ERR_BAD_FRAME', message: `skipped a bad frame: ${(err as Error).message}` });
      } finally {
        this.#ring.release();
      }
    }
    return true;
  }

  /** docs/seed.md §2.5: one JPEG quality per batch, applied to every LR patch of it (nothing without JPEG). */
  async degrade(jpegRand: Rng): Promise<void> {
    if (!this.#lrBytes) return;
    const quality = drawJpegQuality(jpegRand);
    const L = this.#L;
    const n = L * L * 3;
    for (let i = 0; i < this.size; i++) {
      const out = await jpegDegrade({ width: L, height: L, data: this.#lrBytes.subarray(i * n, (i + 1) * n) }, quality);
      toFloat(out.data, this.#lr, i * n);
    }
  }

  /** The full batch as tensors, HR [B, P, P, 3] and LR [B, L, L, 3] in [0, 1]. */
  tensors(): [tf.Tensor4D, tf.Tensor4D] {
    return [tf.tensor4d(this.#hr, [this.size, this.#P, this.#P, 3]), tf.tensor4d(this.#lr, [this.size, this.#L, this.#L, 3])];
  }

  #add(frame: PatchFrame): void {
    const P = this.#P;
    const L = this.#L;
    if (frame.hr.width !== P || frame.hr.height !== P || frame.lr.width !== L || frame.lr.height !== L) {
      this.#post({
        type: 'warning',
        code: 'SRGAN_ERR_BAD_FRAME',
        message: `skipped a bad frame: patch ${frame.hr.width}×${frame.hr.height} / ${frame.lr.width}×${frame.lr.height}, expected ${P} / ${L}`,
      });
      return;
    }
    toFloat(frame.hr.data, this.#hr, this.filled * P * P * 3);
    if (this.#lrBytes) this.#lrBytes.set(frame.lr.data, this.filled * L * L * 3);
    else toFloat(frame.lr.data, this.#lr, this.filled * L * L * 3);
    this.filled++;
  }
}

function toFloat(src: Uint8Array, dst: Float32Array, offset: number): void {
  for (let i = 0; i < src.length; i++) dst[offset + i] = src[i] / 255;
}
