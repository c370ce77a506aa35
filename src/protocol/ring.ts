// A multi-producer, single-consumer byte ring of length-prefixed frames over a SharedArrayBuffer.
// Patch-loader threads write, the trainer thread reads; nothing on this path goes through postMessage.
//
// Memory layout (one SharedArrayBuffer): a 128-byte header of Int32 words, then `capacity` data bytes.
// Ownership of the header words (the ringbuf.js rule: each index word has exactly one writer):
//   WRITE_POS, FRAMES_WRITTEN, FULL_WAITS, WRAPS  written only by the producer holding LOCK
//   LOCK                                          any producer, only through compareExchange/sub
//   LOCK_CONTENDED                                any producer, Atomics.add
//   READ_POS, FRAMES_READ, EMPTY_WAITS            written only by the single consumer
//   CLOSED                                        any thread, 0 -> 1 once, never back
// Producer words and consumer words live on different 64-byte lines so they don't false-share.
//
// Positions are free-running uint32 byte counters (all arithmetic `>>> 0`); offset = pos & (cap - 1).
// Invariant: 0 <= (WRITE_POS - READ_POS) >>> 0 <= capacity. Bytes in [READ_POS, WRITE_POS) belong to
// the consumer, the rest to the producers. A frame record is an 8-byte prefix (Int32 length, one
// reserved zero word) then the payload padded to 8 bytes; a length of WRAP (-1) means "the rest of
// the ring is padding, continue at offset 0". So every payload starts 8-aligned in the SAB: V8 copies
// into and out of shared memory word by word only when both sides are 8-aligned, and bytewise (about
// 5x slower, measured on Node 20) otherwise. codec.ts relies on this to align pixel data.
// Frame bytes are always written before WRITE_POS is published (Atomics.store is seq-cst, so a reader
// that loads the new position sees the bytes), and read before READ_POS is published.
//
// Failure modes, by design:
// - close() racing a write that already reserved its space: that frame may still be published
//   after close, and the consumer may or may not see it. Close is for teardown.
// - a producer thread terminated mid-write leaves LOCK held (never a half-visible frame: WRITE_POS
//   was not published). Other producers then time out; recovery is close() and a new ring.
// - a consumer thread that dies loses nothing: frames it read but didn't release() go to the next
//   consumer that attaches, since it starts at READ_POS.
//
// Time is real time here, not an injected clock: Atomics.wait can only block on the wall clock.

import { SrganError } from '../util/errors.js';

/** Indices of the header's Int32 words; exported for diagnostics and tests, not for writing. */
export const RingWord = Object.freeze({
  MAGIC: 0,
  CAPACITY: 1,
  CLOSED: 2,
  LOCK: 3,
  WRITE_POS: 4,
  FRAMES_WRITTEN: 5,
  FULL_WAITS: 6,
  LOCK_CONTENDED: 7,
  WRAPS: 8,
  READ_POS: 16,
  FRAMES_READ: 17,
  EMPTY_WAITS: 18,
});

const HEADER_BYTES = 128;
const MAGIC = 0x53524731; // 'SRG1'
const WRAP = -1;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 2 ** 30; // keeps (w - r) >>> 0 unambiguous with uint32 positions
/** Longest single Atomics.wait, so a waiter re-checks `closed` and its deadline at least this often. */
const WAIT_SLICE_MS = 50;
/**
 * readAsync first waits this long synchronously (a futex wait, woken in microseconds) before waiting
 * asynchronously: waking a waitAsync waiter posts a task to the consumer's event loop. The event loop
 * is held for at most this long per call, so control messages still get through promptly.
 */
const SYNC_WAIT_MS = 2;

const LOCK_FREE = 0,
  LOCK_HELD = 1,
  LOCK_HELD_WAITERS = 2;

/** Counters from the header; uint32, wrapping at 2^32. Each may be stale by the time it is read. */
export interface RingStats {
  capacity: number;
  closed: boolean;
  framesWritten: number;
  framesRead: number; // released by the consumer
  framesAvailable: number; // written and not yet released (read-but-unreleased frames included)
  bytesUsed: number; // between READ_POS and WRITE_POS, wrap padding included
  producerWaits: number; // writes that had to block on a full ring
  lockContended: number; // writes that found another producer holding the lock
  consumerWaits: number; // readAsync calls that had to wait on an empty ring
  wraps: number; // wrap markers written
}

// lib is ES2022; Atomics.waitAsync is ES2024 but present in Node >= 16.
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (
  Atomics as unknown as {
    waitAsync(this: void, ta: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult;
  }
).waitAsync;

const PREFIX = 8; // Int32 length + reserved word, keeps payloads 8-aligned
const align8 = (n: number): number => (n + 7) & ~7;

function checkTimeout(timeoutMs: number): void {
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`timeoutMs must be a non-negative number or Infinity, received ${String(timeoutMs)}`);
  }
}

function closedError(): SrganError {
  return new SrganError('SRGAN_ERR_RING_CLOSED', 'ring is closed');
}

export class SharedRing {
  readonly #sab: SharedArrayBuffer;
  readonly #h: Int32Array;
  readonly #u8: Uint8Array;
  readonly #i32: Int32Array;
  readonly #cap: number;
  readonly #mask: number;
  // Consumer-local state: where the next tryRead starts, and frames read since the last release().
  #cursor = 0;
  #pending = 0;

  private constructor(sab: SharedArrayBuffer) {
    this.#sab = sab;
    this.#h = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.#cap = this.#h[RingWord.CAPACITY]!;
    this.#mask = this.#cap - 1;
    this.#u8 = new Uint8Array(sab, HEADER_BYTES, this.#cap);
    this.#i32 = new Int32Array(sab, HEADER_BYTES, this.#cap / 4);
  }

  /** A new, empty ring of `capacityBytes` data bytes (a power of two, 64 .. 2^30). */
  static create(capacityBytes: number): SharedRing {
    if (
      !Number.isInteger(capacityBytes) ||
      capacityBytes < MIN_CAPACITY ||
      capacityBytes > MAX_CAPACITY ||
      (capacityBytes & (capacityBytes - 1)) !== 0
    ) {
      throw new RangeError(
        `capacityBytes must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY}, received ${String(capacityBytes)}`,
      );
    }
    const sab = new SharedArrayBuffer(HEADER_BYTES + capacityBytes);
    const h = new Int32Array(sab, 0, HEADER_BYTES / 4);
    h[RingWord.CAPACITY] = capacityBytes;
    Atomics.store(h, RingWord.MAGIC, MAGIC); // published last; the SAB travels by postMessage anyway
    return new SharedRing(sab);
  }

  /** The same ring seen from another thread, given the `buffer` of a ring made by `create`. */
  static attach(sab: SharedArrayBuffer): SharedRing {
    if (!(sab instanceof SharedArrayBuffer)) {
      throw new TypeError(`sab must be a SharedArrayBuffer, received ${Object.prototype.toString.call(sab)}`);
    }
    const h = sab.byteLength >= HEADER_BYTES ? new Int32Array(sab, 0, HEADER_BYTES / 4) : undefined;
    if (!h || Atomics.load(h, RingWord.MAGIC) !== MAGIC || h[RingWord.CAPACITY] + HEADER_BYTES !== sab.byteLength) {
      throw new TypeError('sab is not the buffer of a SharedRing (bad magic or size)');
    }
    return new SharedRing(sab);
  }

  /** The SharedArrayBuffer to hand to other threads (workerData or postMessage). */
  get buffer(): SharedArrayBuffer {
    return this.#sab;
  }
  get capacity(): number {
    return this.#cap;
  }
  /** Largest payload one frame may carry: capacity/2 - 8, so a frame always fits after a wrap. */
  get maxFrameBytes(): number {
    return this.#cap / 2 - PREFIX;
  }
  /** True once any thread has called close(). Never goes back to false. */
  get closed(): boolean {
    return Atomics.load(this.#h, RingWord.CLOSED) !== 0;
  }

  // ---- producer side ------------------------------------------------------------------------------

  /** Copy `bytes` into the ring as one frame; blocks while full for at most `timeoutMs` (default forever). */
  write(bytes: Uint8Array, timeoutMs = Infinity): void {
    this.writeWith(bytes.length, (dst) => dst.set(bytes), timeoutMs);
  }

  /**
   * Reserve one frame of `length` bytes and let `fill` write the payload straight into ring memory.
   * `dst` is valid only during the call and must be fully written (stale bytes are not cleared).
   * Blocks (Atomics.wait, in slices of <= 50 ms) while the ring is full or another producer is
   * writing. Throws SRGAN_ERR_FRAME_TOO_LARGE, SRGAN_ERR_RING_TIMEOUT after `timeoutMs` (default
   * forever), SRGAN_ERR_RING_CLOSED if closed before the space was reserved. If `fill` throws,
   * nothing is published and the error propagates. Not for the consumer's thread (it would block).
   */
  writeWith(length: number, fill: (dst: Uint8Array) => void, timeoutMs = Infinity): void {
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(`length must be a non-negative integer, received ${String(length)}`);
    }
    if (length > this.maxFrameBytes) {
      throw new SrganError(
        'SRGAN_ERR_FRAME_TOO_LARGE',
        `frame of ${length} bytes exceeds the ring's limit of ${this.maxFrameBytes} (capacity ${this.#cap})`,
      );
    }
    checkTimeout(timeoutMs);
    const deadline = performance.now() + timeoutMs;
    this.#lock(deadline, timeoutMs);
    try {
      const h = this.#h;
      const record = PREFIX + align8(length);
      // We hold LOCK, so WRITE_POS is ours. READ_POS may be stale (too small), which only
      // under-estimates free space: safe, we wait and look again.
      const w = h[RingWord.WRITE_POS] >>> 0;
      const off = w & this.#mask;
      const tail = this.#cap - off; // a multiple of 8, and >= 8
      const wrap = record > tail;
      const need = wrap ? tail + record : record;
      let counted = false;
      for (;;) {
        if (Atomics.load(h, RingWord.CLOSED) !== 0) throw closedError();
        const r = Atomics.load(h, RingWord.READ_POS);
        if (this.#cap - ((w - r) >>> 0) >= need) break;
        const left = deadline - performance.now();
        if (left <= 0) throw this.#timeout(timeoutMs, 'space');
        if (!counted) {
          counted = true;
          h[RingWord.FULL_WAITS] = h[RingWord.FULL_WAITS] + 1;
        }
        // Returns at once if the consumer released since we loaded r: no lost wake-up.
        Atomics.wait(h, RingWord.READ_POS, r, Math.min(left, WAIT_SLICE_MS));
      }
      const at = wrap ? 0 : off;
      if (wrap) this.#i32[off >> 2] = WRAP;
      this.#i32[at >> 2] = length;
      this.#i32[(at >> 2) + 1] = 0;
      fill(this.#u8.subarray(at + PREFIX, at + PREFIX + length));
      // Counter before position, so framesRead (bumped after the consumer sees the position) never
      // overtakes framesWritten. Then publish: everything above happens-before a consumer's load.
      h[RingWord.FRAMES_WRITTEN] = h[RingWord.FRAMES_WRITTEN] + 1;
      if (wrap) h[RingWord.WRAPS] = h[RingWord.WRAPS] + 1;
      Atomics.store(h, RingWord.WRITE_POS, (w + need) | 0);
      Atomics.notify(h, RingWord.WRITE_POS);
    } finally {
      this.#unlock();
    }
  }

  // Drepper's three-state futex mutex ("Futexes Are Tricky", mutex2), with deadline and close checks.
  #lock(deadline: number, timeoutMs: number): void {
    const h = this.#h;
    let c = Atomics.compareExchange(h, RingWord.LOCK, LOCK_FREE, LOCK_HELD);
    if (c === LOCK_FREE) return;
    Atomics.add(h, RingWord.LOCK_CONTENDED, 1);
    do {
      if (c === LOCK_HELD_WAITERS || Atomics.compareExchange(h, RingWord.LOCK, LOCK_HELD, LOCK_HELD_WAITERS) !== LOCK_FREE) {
        if (Atomics.load(h, RingWord.CLOSED) !== 0) throw closedError();
        const left = deadline - performance.now();
        if (left <= 0) throw this.#timeout(timeoutMs, 'the write lock');
        Atomics.wait(h, RingWord.LOCK, LOCK_HELD_WAITERS, Math.min(left, WAIT_SLICE_MS));
      }
      // Taking it as HELD_WAITERS is conservative: we can't know whether others still wait.
    } while ((c = Atomics.compareExchange(h, RingWord.LOCK, LOCK_FREE, LOCK_HELD_WAITERS)) !== LOCK_FREE);
  }

  #unlock(): void {
    if (Atomics.sub(this.#h, RingWord.LOCK, 1) !== LOCK_HELD) {
      Atomics.store(this.#h, RingWord.LOCK, LOCK_FREE);
      Atomics.notify(this.#h, RingWord.LOCK, 1);
    }
  }

  #timeout(timeoutMs: number, what: string): SrganError {
    return new SrganError('SRGAN_ERR_RING_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
  }

  // ---- consumer side (one thread only) ------------------------------------------------------------

  /**
   * The next frame as a view into ring memory, or null if none is published yet. Views from every
   * tryRead since the last release() stay valid until release(); copy what you keep. Once the ring
   * is closed, frames already published are still returned; after the last one this throws
   * SRGAN_ERR_RING_CLOSED instead of returning null. Throws SRGAN_ERR_BAD_FRAME on a corrupt length.
   */
  tryRead(): Uint8Array | null {
    const h = this.#h;
    // With nothing pending our cursor equals READ_POS (we are its only writer); re-sync anyway so a
    // freshly attached consumer (e.g. a restarted trainer) starts where the last one released.
    if (this.#pending === 0) this.#cursor = Atomics.load(h, RingWord.READ_POS) >>> 0;
    // Load CLOSED before WRITE_POS: a write published before close is then seen by this load.
    const closed = Atomics.load(h, RingWord.CLOSED) !== 0;
    const w = Atomics.load(h, RingWord.WRITE_POS) >>> 0; // may be stale: we just see fewer frames
    let r = this.#cursor;
    while (r !== w) {
      const off = r & this.#mask;
      const len = this.#i32[off >> 2];
      if (len === WRAP) {
        r = (r + this.#cap - off) >>> 0;
        continue;
      }
      const record = PREFIX + align8(len);
      if (len < 0 || len > this.maxFrameBytes || record > (w - r) >>> 0) {
        throw new SrganError('SRGAN_ERR_BAD_FRAME', `corrupt ring: frame length ${len} at position ${r}`);
      }
      this.#cursor = (r + record) >>> 0;
      this.#pending++;
      return this.#u8.subarray(off + PREFIX, off + PREFIX + len);
    }
    if (closed) throw closedError();
    return null;
  }

  /** Give back the space of every frame read since the last release(); wakes blocked producers. */
  release(): void {
    if (this.#pending === 0) return;
    const h = this.#h;
    h[RingWord.FRAMES_READ] = h[RingWord.FRAMES_READ] + this.#pending;
    this.#pending = 0;
    Atomics.store(h, RingWord.READ_POS, this.#cursor | 0); // after every byte of those frames was read
    Atomics.notify(h, RingWord.READ_POS);
  }

  /**
   * Like tryRead, but waits with Atomics.waitAsync (the event loop keeps running) for up to
   * `timeoutMs` (default forever). Resolves null on timeout; rejects SRGAN_ERR_RING_CLOSED once
   * closed and drained. release() before calling it: unreleased frames hold ring space that blocked
   * producers may be waiting for.
   */
  async readAsync(timeoutMs = Infinity): Promise<Uint8Array | null> {
    checkTimeout(timeoutMs);
    const h = this.#h;
    const deadline = performance.now() + timeoutMs;
    let counted = false;
    let syncWaited = false;
    for (;;) {
      // Load WRITE_POS before looking: if a producer publishes after this load, the wait below
      // sees a changed value and returns at once, so no wake-up is lost.
      const w = Atomics.load(h, RingWord.WRITE_POS);
      const frame = this.tryRead();
      if (frame !== null) return frame;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      if (!counted) {
        counted = true;
        h[RingWord.EMPTY_WAITS] = h[RingWord.EMPTY_WAITS] + 1;
      }
      // Sliced: close() does not change WRITE_POS, so a close landing between our check and the
      // wait is only noticed at the next slice.
      if (!syncWaited) {
        // Once per call (woken or timed out, look again); after that the event loop gets its turn.
        syncWaited = true;
        Atomics.wait(h, RingWord.WRITE_POS, w, Math.min(left, SYNC_WAIT_MS));
        continue;
      }
      const res = waitAsync(h, RingWord.WRITE_POS, w, Math.min(left, WAIT_SLICE_MS));
      if (res.async) await res.value;
    }
  }

  // ---- either side ---------------------------------------------------------------------------------

  /** Mark the ring closed and wake every waiter on both sides. Idempotent. */
  close(): void {
    if (Atomics.compareExchange(this.#h, RingWord.CLOSED, 0, 1) !== 0) return;
    Atomics.notify(this.#h, RingWord.WRITE_POS);
    Atomics.notify(this.#h, RingWord.READ_POS);
    Atomics.notify(this.#h, RingWord.LOCK);
  }

  /** Approximate number of frames waiting (stale as soon as it returns). */
  framesAvailable(): number {
    return (Atomics.load(this.#h, RingWord.FRAMES_WRITTEN) - Atomics.load(this.#h, RingWord.FRAMES_READ)) >>> 0;
  }

  /** A snapshot of the header counters; each word is read separately, so they may disagree slightly. */
  stats(): RingStats {
    const h = this.#h;
    const get = (i: number): number => Atomics.load(h, i) >>> 0;
    return {
      capacity: this.#cap,
      closed: get(RingWord.CLOSED) !== 0,
      framesWritten: get(RingWord.FRAMES_WRITTEN),
      framesRead: get(RingWord.FRAMES_READ),
      framesAvailable: this.framesAvailable(),
      bytesUsed: (get(RingWord.WRITE_POS) - get(RingWord.READ_POS)) >>> 0,
      producerWaits: get(RingWord.FULL_WAITS),
      lockContended: get(RingWord.LOCK_CONTENDED),
      consumerWaits: get(RingWord.EMPTY_WAITS),
      wraps: get(RingWord.WRAPS),
    };
  }
}
