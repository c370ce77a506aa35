import { describe, expect, it } from 'vitest';
import { Sequencer } from '../../src/trainer/sequencer.js';
import type { PatchFrame, SkipFrame } from '../../src/protocol/codec.js';

const patch = (seq: number): PatchFrame => {
  const data = new Uint8Array([seq & 255, 1, 2]);
  return {
    type: 'patch',
    seq,
    epoch: 0,
    index: 0,
    hr: { width: 1, height: 1, channels: 3, data },
    lr: { width: 1, height: 1, channels: 3, data },
  };
};
const skip = (seq: number, count: number): SkipFrame => ({ type: 'skip', seq, count, index: 0 });

/** Offers frames in the given order and returns the seqs handed out, in the order the consumer got them. */
function drain(s: Sequencer, frames: (PatchFrame | SkipFrame)[]): number[] {
  const out: number[] = [];
  for (const f of frames) {
    const got = s.offer(f);
    if (got) out.push(got.seq);
    for (let t = s.take(); t; t = s.take()) out.push(t.seq);
  }
  return out;
}

describe('Sequencer', () => {
  it('hands patches out in seq order whatever order they arrive in', () => {
    const s = new Sequencer();
    expect(drain(s, [3, 1, 0, 2, 5, 4].map(patch))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(s.next).toBe(6);
    expect(s.stats()).toEqual({ stashed: 0, dropped: 0, skipped: 0 });
  });

  it('starts where it is told and drops what came before, and duplicates', () => {
    const s = new Sequencer(10);
    expect(drain(s, [patch(9), patch(11), patch(10), patch(11), patch(10), patch(12)])).toEqual([10, 11, 12]);
    expect(s.stats().dropped).toBe(3);
  });

  it('a skip frame moves past the patches that will never come, early or late', () => {
    const s = new Sequencer();
    // Patches 3..5 belong to a broken image; its skip frame comes after the later patches.
    expect(drain(s, [patch(0), patch(6), patch(1), patch(2), patch(7), skip(3, 3), patch(8)])).toEqual([0, 1, 2, 6, 7, 8]);
    expect(s.stats().skipped).toBe(3);
    // A skip that arrives before `next` reaches it waits for it.
    expect(drain(s, [skip(12, 3), patch(9), patch(10), patch(11), patch(15)])).toEqual([9, 10, 11, 15]);
    expect(s.next).toBe(16);
  });

  it('a patch written before its image failed on a retry is still used', () => {
    const s = new Sequencer();
    expect(drain(s, [patch(1), skip(0, 3), patch(3)])).toEqual([1, 3]);
    expect(s.stats().skipped).toBe(2);
  });

  it('keeps its own copy of stashed pixels (ring memory is reused after release)', () => {
    const s = new Sequencer();
    const p1 = patch(1);
    expect(s.offer(p1)).toBeNull();
    p1.hr.data.fill(99);
    s.offer(patch(0));
    expect(Array.from(s.take()!.hr.data)).toEqual([1, 1, 2]);
  });

  it('gives up on a patch that never comes when asked', () => {
    const s = new Sequencer();
    expect(s.skipToStashed()).toBe(0);
    expect(drain(s, [patch(4), patch(5)])).toEqual([]);
    expect(s.skipToStashed()).toBe(4);
    expect(drain(s, [])).toEqual([]);
    expect(s.take()!.seq).toBe(4);
  });

  it('refuses a bad start', () => {
    expect(() => new Sequencer(-1)).toThrow(RangeError);
  });
});
