// Puts patch frames back into sequence order on the trainer's side of the ring.
//
// Several loader threads write into one ring, so frames arrive in whatever order the threads finish.
// Every frame carries `seq`, its place in the run's data sequence (position in the epoch's shuffled
// order × patches per image + patch number), so the trainer can take patches in exactly that order:
// the same seed gives the same batches whatever the thread timing, and a run resumed from a
// checkpoint's `next` continues the sequence it stopped in. Frames ahead of `next` wait here (copied
// out of the ring); frames behind it are duplicates (a loader task retried after a crash or a ring
// timeout) and are dropped. The loader pool bounds how far ahead it hands out work, which bounds this
// stash (see LoaderPool's window).

import type { ImagePlane, PatchFrame, RingFrame } from '../protocol/codec.js';

export interface SequencerStats {
  /** Frames waiting for an earlier one. */
  stashed: number;
  /** Duplicates dropped so far. */
  dropped: number;
  /** Patches passed over because their image failed (skip frames). */
  skipped: number;
}

const copyPlane = (p: ImagePlane): ImagePlane => ({ ...p, data: p.data.slice() });

export class Sequencer {
  #next: number;
  /** Patches ahead of `next`, copied out of the ring. */
  readonly #stash = new Map<number, PatchFrame>();
  /** Ranges [seq, end) announced by skip frames that `next` has not passed yet. */
  #skips: { seq: number; end: number }[] = [];
  #dropped = 0;
  #skipped = 0;

  /** `next`: the seq of the first patch the consumer wants (0 for a new run). */
  constructor(next = 0) {
    if (!Number.isSafeInteger(next) || next < 0) throw new RangeError(`next must be a non-negative integer, got ${next}`);
    this.#next = next;
  }

  /** The seq of the next patch `take` will return: with the loader's patches per image, the data position. */
  get next(): number {
    return this.#next;
  }

  stats(): SequencerStats {
    return { stashed: this.#stash.size, dropped: this.#dropped, skipped: this.#skipped };
  }

  /**
   * Offers one frame just read from the ring. Returns it when it is the next patch in sequence
   * (its planes are still views into the ring: use them before releasing); otherwise keeps a copy or
   * drops it, and returns null.
   */
  offer(frame: RingFrame): PatchFrame | null {
    if (frame.type === 'skip') {
      if (frame.seq + frame.count <= this.#next) this.#dropped++;
      else this.#skips.push({ seq: frame.seq, end: frame.seq + frame.count });
      this.#advance();
      return null;
    }
    this.#advance();
    if (frame.seq < this.#next || this.#stash.has(frame.seq)) {
      this.#dropped++;
      return null;
    }
    if (frame.seq === this.#next) {
      this.#next++;
      return frame;
    }
    this.#stash.set(frame.seq, { ...frame, hr: copyPlane(frame.hr), lr: copyPlane(frame.lr) });
    return null;
  }

  /** The next patch in sequence if it is already stashed, else null. */
  take(): PatchFrame | null {
    this.#advance();
    const f = this.#stash.get(this.#next);
    if (!f) return null;
    this.#stash.delete(this.#next++);
    return f;
  }

  /**
   * Gives up on the patches before the earliest stashed one (a frame that can never come: a loader
   * bug, a corrupt frame). Returns how many were given up; 0 when nothing is stashed.
   */
  skipToStashed(): number {
    if (this.#stash.size === 0) return 0;
    const first = Math.min(...this.#stash.keys());
    const n = first - this.#next;
    this.#skipped += n;
    this.#next = first;
    return n;
  }

  // Moves `next` over positions a skip frame covers, one at a time: a patch of the same image that did
  // arrive (written before its image became unreadable on a retry) is still used.
  #advance(): void {
    if (this.#skips.length === 0) return;
    for (;;) {
      const pos = this.#next;
      if (this.#stash.has(pos) || !this.#skips.some((r) => r.seq <= pos && pos < r.end)) break;
      this.#next++;
      this.#skipped++;
    }
    this.#skips = this.#skips.filter((r) => r.end > this.#next);
  }
}
