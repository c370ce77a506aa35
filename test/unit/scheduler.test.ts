import { describe, expect, it } from 'vitest';
import {
  ADAPTIVE_D_DEFAULTS,
  Scheduler,
  lrBatchScale,
  type SchedulerConfig,
  type SchedulerSnapshot,
} from '../../src/models/train/scheduler.js';
import { mulberry32 } from '../../src/util/prng.js';

const base: SchedulerConfig = {
  dStepsPerG: 3,
  phases: [{ steps: null, lrG: 1e-3, lrD: 1e-4 }],
  logEvery: 5,
  previewEvery: 10,
  maxSteps: null,
};

describe('Scheduler', () => {
  it('plans k D steps per G step and counts both', () => {
    const s = new Scheduler(base);
    for (let i = 0; i < 7; i++) {
      const p = s.plan();
      expect(p.step).toBe(i + 1);
      expect(p.dSteps).toBe(3);
      s.complete(p);
    }
    expect(s.step).toBe(7);
    expect(s.dSteps).toBe(21);
  });

  it('logs every N steps and previews every M steps (and at the first step)', () => {
    const s = new Scheduler(base);
    const logs: number[] = [];
    const previews: number[] = [];
    for (let i = 0; i < 30; i++) {
      const p = s.plan();
      if (p.log) logs.push(p.step);
      if (p.preview) previews.push(p.step);
      s.complete(p);
    }
    expect(logs).toEqual([1, 5, 10, 15, 20, 25, 30]);
    expect(previews).toEqual([1, 10, 20, 30]);
  });

  it('walks learning-rate phases and keeps the last one', () => {
    const s = new Scheduler({
      ...base,
      phases: [
        { steps: 2, lrG: 1, lrD: 2 },
        { steps: 3, lrG: 3, lrD: 4 },
        { steps: 1, lrG: 5, lrD: 6 },
      ],
    });
    const seen: [number, number, number][] = [];
    for (let i = 0; i < 8; i++) {
      const p = s.plan();
      seen.push([p.step, p.phase, p.lrG]);
      s.complete(p);
    }
    expect(seen).toEqual([
      [1, 0, 1],
      [2, 0, 1],
      [3, 1, 3],
      [4, 1, 3],
      [5, 1, 3],
      [6, 2, 5],
      [7, 2, 5],
      [8, 2, 5],
    ]);
  });

  it('pause and stop take effect only at a step boundary', () => {
    const s = new Scheduler(base);
    const p = s.plan();
    s.requestPause();
    expect(s.mode).toBe('pausing');
    s.complete(p); // the step in flight finishes
    expect(s.atBoundary()).toBe('paused');
    expect(s.atBoundary()).toBe('paused');
    expect(s.step).toBe(1);
    s.requestResume();
    expect(s.atBoundary()).toBe('continue');
    expect(s.plan().step).toBe(2); // continues from the same step
    s.requestStop();
    expect(s.atBoundary()).toBe('stop');
    s.requestResume(); // no way back from a stop
    expect(s.atBoundary()).toBe('stop');
  });

  it('a resume before the boundary cancels the pause', () => {
    const s = new Scheduler(base);
    s.requestPause();
    s.requestResume();
    expect(s.atBoundary()).toBe('continue');
  });

  it('stops by itself after maxSteps', () => {
    const s = new Scheduler({ ...base, maxSteps: 2 });
    s.complete(s.plan());
    expect(s.atBoundary()).toBe('continue');
    s.complete(s.plan());
    expect(s.atBoundary()).toBe('stop');
  });

  it('continues from a saved position', () => {
    const s = new Scheduler(base, { step: 41, dSteps: 123 });
    expect(s.plan().step).toBe(42);
    expect(() => s.complete({ ...s.plan(), step: 44 })).toThrow(/expected 42/);
  });

  it('rejects bad configs naming the field', () => {
    expect(() => new Scheduler({ ...base, dStepsPerG: -1 })).toThrow(/dStepsPerG/);
    expect(() => new Scheduler({ ...base, phases: [] })).toThrow(/phases/);
    expect(
      () =>
        new Scheduler({
          ...base,
          phases: [
            { steps: null, lrG: 1, lrD: 1 },
            { steps: 1, lrG: 1, lrD: 1 },
          ],
        }),
    ).toThrow(/phases\[0\].steps/);
    expect(() => new Scheduler({ ...base, phases: [{ steps: 5, lrG: Number.NaN, lrD: 1 }] })).toThrow(/phases\[0\].lrG/);
    expect(() => new Scheduler({ ...base, logEvery: 0 })).toThrow(/logEvery/);
  });
});

describe('Scheduler: batch-scaled learning rates', () => {
  it('multiplies every phase by batchScale; the seed rule is batch/8', () => {
    expect(lrBatchScale(1)).toBe(0.125);
    expect(lrBatchScale(16)).toBe(2);
    expect(lrBatchScale(6, 12)).toBe(0.5);
    const phases = [
      { steps: 1, lrG: 1e-4, lrD: 3e-5 },
      { steps: null, lrG: 1e-5, lrD: 1e-5 },
    ];
    const s = new Scheduler({ ...base, phases, batchScale: lrBatchScale(1) });
    const p1 = s.plan();
    expect([p1.lrG, p1.lrD]).toEqual([1.25e-5, 3e-5 / 8]);
    s.complete(p1);
    expect([s.plan().lrG, s.plan().lrD]).toEqual([1.25e-6, 1.25e-6]);
    expect(s.ratesAt(1)).toEqual({ lrG: 1.25e-5, lrD: 3e-5 / 8 });
    // The phase table itself is untouched.
    expect(s.phaseAt(1).phase.lrG).toBe(1e-4);
  });

  it('leaves rates as given when batchScale is null or absent', () => {
    for (const batchScale of [null, undefined]) {
      const p = new Scheduler({ ...base, batchScale }).plan();
      expect([p.lrG, p.lrD]).toEqual([1e-3, 1e-4]);
    }
  });

  it('rejects bad scales naming the field', () => {
    expect(() => new Scheduler({ ...base, batchScale: 0 })).toThrow(/batchScale/);
    expect(() => new Scheduler({ ...base, batchScale: Number.POSITIVE_INFINITY })).toThrow(/batchScale/);
    expect(() => lrBatchScale(0)).toThrow(/batch/);
    expect(() => lrBatchScale(2.5)).toThrow(/batch/);
  });
});

describe('Scheduler: optimizer reset at phase changes', () => {
  const phases = [
    { steps: 2, lrG: 1, lrD: 1 },
    { steps: 3, lrG: 2, lrD: 2 },
    { steps: null, lrG: 3, lrD: 3 },
  ];

  const resets = (s: Scheduler, n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = s.plan();
      expect(s.plan()).toEqual(p); // plan() is pure: asking twice changes nothing
      if (p.resetOptimizers) out.push(p.step);
      s.complete(p);
    }
    return out;
  };

  it('plans a reset on the first step of each phase after the first, never on step 1', () => {
    expect(resets(new Scheduler({ ...base, phases, resetOptimizersOnPhaseChange: true }), 10)).toEqual([3, 6]);
  });

  it('plans none when the option is off (the default)', () => {
    expect(resets(new Scheduler({ ...base, phases }), 10)).toEqual([]);
    expect(resets(new Scheduler({ ...base, phases, resetOptimizersOnPhaseChange: false }), 10)).toEqual([]);
  });

  it('on resume: a reset when the next step opens a phase, none mid-phase', () => {
    const cfg = { ...base, phases, resetOptimizersOnPhaseChange: true };
    expect(new Scheduler(cfg, { step: 2, dSteps: 6 }).plan()).toMatchObject({ step: 3, phase: 1, resetOptimizers: true });
    expect(new Scheduler(cfg, { step: 3, dSteps: 9 }).plan()).toMatchObject({ step: 4, phase: 1, resetOptimizers: false });
    expect(new Scheduler(cfg, { step: 40, dSteps: 9 }).plan()).toMatchObject({ step: 41, phase: 2, resetOptimizers: false });
  });
});

describe('Scheduler: adaptive D', () => {
  // Small numbers so the trend test can be followed by hand.
  const adaptiveD = { fastDecay: 0.5, slowDecay: 0.9, enter: 0.05, exit: 0, minHold: 2, warmup: 3 };
  const cfg: SchedulerConfig = { ...base, dMode: 'adaptive', adaptiveD };

  /** Plans, completes and observes one step per value; returns the dSteps each plan had. */
  const drive = (s: Scheduler, values: number[]): number[] =>
    values.map((gAdv) => {
      const p = s.plan();
      s.complete(p);
      s.observe({ gAdv });
      return p.dSteps;
    });

  it('skips D while the smoothed G adversarial loss rises, by hand', () => {
    const s = new Scheduler(cfg);
    const rising: boolean[] = [];
    // obs 1–4: 1, 1, 1, 1 → fast = slow = 1, gap 0.
    // obs 5: 2 → fast 1.5, slow 1.1, gap 0.4/1.1 = 0.36 > enter 0.05 → rising.
    // obs 6: 2 → fast 1.75, slow 1.19: still rising.
    // obs 7: 0.5 → fast 1.125, slow 1.121, gap +0.0036: below enter but not below exit 0, so it stays rising (hysteresis).
    // obs 8: 0.5 → fast 0.8125, slow 1.0589, gap < 0 → falling again.
    for (const gAdv of [1, 1, 1, 1, 2, 2, 0.5, 0.5, 0.5]) {
      const p = s.plan();
      s.complete(p);
      s.observe({ gAdv });
      rising.push(s.adaptiveState.rising);
    }
    expect(rising).toEqual([false, false, false, false, true, true, true, false, false]);
    const a = s.adaptiveState;
    expect(a.fast).toBeCloseTo(0.65625, 12);
    expect(a.slow).toBeCloseTo(1.00301, 12);
    expect(a.observations).toBe(9);
  });

  it('plans dSteps 0 while rising and counts the skipped steps', () => {
    const s = new Scheduler(cfg);
    const d = drive(s, [1, 1, 1, 1, 2, 2, 0.5, 0.5, 0.5]);
    // The observation after step 5 switches it on, so plans 6, 7, 8 skip; obs 8 switches it off.
    expect(d).toEqual([3, 3, 3, 3, 3, 0, 0, 0, 3]);
    expect(s.dSteps).toBe(6 * 3);
    expect(s.dSkips).toBe(3);
    const p = s.plan();
    expect([p.dSteps, p.dSkipped]).toEqual([3, false]);
  });

  it('holds a decision for minHold observations', () => {
    // Same sequence with minHold 4: the switch back, due at obs 8 (3 observations after the switch), waits to obs 9.
    const s = new Scheduler({ ...cfg, adaptiveD: { ...adaptiveD, minHold: 4 } });
    expect(drive(s, [1, 1, 1, 1, 2, 2, 0.5, 0.5, 0.5, 0.5])).toEqual([3, 3, 3, 3, 3, 0, 0, 0, 0, 3]);
  });

  it('does not switch during warmup', () => {
    const s = new Scheduler({ ...cfg, adaptiveD: { ...adaptiveD, warmup: 6 } });
    // The jump at obs 2 is seen during warmup; at obs 6 (first check) the gap (fast 1.97, slow 1.41) still exceeds enter.
    expect(drive(s, [1, 2, 2, 2, 2, 2, 2])).toEqual([3, 3, 3, 3, 3, 3, 0]);
  });

  it("never skips in 'fixed' mode, though it tracks the trend", () => {
    const s = new Scheduler({ ...cfg, dMode: 'fixed' });
    expect(drive(s, [1, 1, 1, 1, 2, 2, 0.5])).toEqual([3, 3, 3, 3, 3, 3, 3]);
    expect(s.adaptiveState.rising).toBe(true);
    expect(s.plan().dSkipped).toBe(false);
  });

  it('never skips in a D-only phase (lrG 0): G could not catch up', () => {
    const s = new Scheduler({
      ...cfg,
      phases: [
        { steps: 6, lrG: 1, lrD: 1 },
        { steps: null, lrG: 0, lrD: 1 },
      ],
    });
    expect(drive(s, [1, 1, 1, 1, 2, 2, 2, 2])).toEqual([3, 3, 3, 3, 3, 0, 3, 3]);
  });

  it('does not flap on noise: the hysteresis band and the dwell each cut switching', () => {
    // A flat loss with ±50% uniform noise, 20 000 observations, default decays.
    const switches = (options: SchedulerConfig['adaptiveD']): number => {
      const s = new Scheduler({ ...base, dMode: 'adaptive', adaptiveD: options });
      const rand = mulberry32(77);
      let n = 0;
      let prev = false;
      for (let i = 0; i < 20_000; i++) {
        s.observe({ gAdv: 1 + (rand() - 0.5) });
        const r = s.adaptiveState.rising;
        if (r !== prev) n++;
        prev = r;
      }
      return n;
    };
    const bare = switches({ enter: 1e-12, exit: 0, minHold: 0, warmup: 0 }); // a plain "fast > slow" test
    const dwellOnly = switches({ enter: 1e-12, exit: 0 });
    const defaults = switches({});
    expect(bare).toBeGreaterThan(1000);
    expect(dwellOnly).toBeLessThan(bare / 4);
    expect(defaults).toBeLessThan(dwellOnly / 3);
  });

  it('follows a real trend through noise: mostly skipping on a rising loss, never on a falling one', () => {
    const skippedFraction = (slope: number): number => {
      const s = new Scheduler({ ...base, dMode: 'adaptive' }); // default options
      const rand = mulberry32(5);
      let skipped = 0;
      for (let i = 0; i < 5000; i++) {
        const p = s.plan();
        if (i >= 1000 && p.dSkipped) skipped++;
        s.complete(p);
        s.observe({ gAdv: 1 + slope * i + (rand() - 0.5) * 0.2 });
      }
      return skipped / 4000;
    };
    expect(skippedFraction(1e-3)).toBeGreaterThan(0.95);
    expect(skippedFraction(-1e-4)).toBe(0);
  });

  it('rejects non-finite observations', () => {
    const s = new Scheduler(cfg);
    expect(() => s.observe({ gAdv: Number.NaN })).toThrow(/gAdv/);
    expect(() => s.observe({ gAdv: Number.POSITIVE_INFINITY })).toThrow(/gAdv/);
    expect(s.adaptiveState.observations).toBe(0);
  });

  it('validates its options, catching misspellings', () => {
    const bad = (o: object) => () => new Scheduler({ ...cfg, adaptiveD: o });
    expect(bad({ fastdecay: 0.5 })).toThrow(/adaptiveD\.fastdecay is not an option; did you mean fastDecay/);
    expect(bad({ speed: 1 })).toThrow(/adaptiveD\.speed is not an option \(options: fastDecay/);
    expect(bad({ fastDecay: 0.95, slowDecay: 0.9 })).toThrow(/adaptiveD\.slowDecay/);
    expect(bad({ fastDecay: 1 })).toThrow(/adaptiveD\.fastDecay/);
    expect(bad({ enter: 0.01, exit: 0.01 })).toThrow(/adaptiveD\.exit/);
    expect(bad({ minHold: 1.5 })).toThrow(/adaptiveD\.minHold/);
    expect(bad({ warmup: -1 })).toThrow(/adaptiveD\.warmup/);
    expect(bad({ floor: 0 })).toThrow(/adaptiveD\.floor/);
    expect(() => new Scheduler({ ...base, dMode: 'sometimes' as 'fixed' })).toThrow(/dMode/);
    expect(new Scheduler(cfg).config.adaptiveD).toEqual({ ...ADAPTIVE_D_DEFAULTS, ...adaptiveD });
  });
});

describe('Scheduler: snapshot and restore', () => {
  const cfg: SchedulerConfig = {
    ...base,
    dMode: 'adaptive',
    adaptiveD: { fastDecay: 0.5, slowDecay: 0.9, enter: 0.05, exit: 0, minHold: 2, warmup: 3 },
  };
  const series = (seed: number, n: number): number[] => {
    const r = mulberry32(seed);
    return Array.from({ length: n }, (_, i) => 1 + 0.3 * Math.sin(i / 4) + 0.05 * r());
  };
  const run = (s: Scheduler, values: number[]): Array<[number, number, boolean]> =>
    values.map((gAdv) => {
      const p = s.plan();
      s.complete(p);
      s.observe({ gAdv });
      return [p.step, p.dSteps, p.resetOptimizers];
    });

  it('a restored scheduler continues exactly like the original (through JSON)', () => {
    const a = new Scheduler(cfg);
    run(a, series(1, 37));
    const snap = a.snapshot();
    expect(snap.step).toBe(37);
    expect(snap.adaptive.observations).toBe(37);
    expect(snap.dSkips).toBeGreaterThan(0); // the sine has rising stretches: the state is not trivial
    const b = Scheduler.restore(cfg, JSON.parse(JSON.stringify(snap)) as SchedulerSnapshot);
    expect(b.snapshot()).toEqual(snap);
    const more = series(2, 50);
    expect(run(b, more)).toEqual(run(a, more));
    expect(b.snapshot()).toEqual(a.snapshot());
    expect([b.step, b.dSteps, b.dSkips]).toEqual([a.step, a.dSteps, a.dSkips]);
  });

  it('snapshots are copies, and a restored scheduler starts in run mode', () => {
    const a = new Scheduler(cfg);
    run(a, [1, 2, 3]);
    a.requestPause();
    const snap = a.snapshot();
    snap.adaptive.fast = 99;
    expect(a.snapshot().adaptive.fast).not.toBe(99);
    expect(new Scheduler(cfg, a.snapshot()).mode).toBe('run');
  });

  it('old-style positions still work; fresh state when omitted', () => {
    const s = new Scheduler(cfg, { step: 5, dSteps: 7 });
    expect(s.snapshot()).toEqual({
      step: 5,
      dSteps: 7,
      dSkips: 0,
      adaptive: { fast: null, slow: null, observations: 0, rising: false, sinceSwitch: 0 },
    });
  });

  it('rejects malformed snapshots naming the field', () => {
    const good = new Scheduler(cfg).snapshot();
    const bad = (patch: object) => () => Scheduler.restore(cfg, { ...good, ...patch });
    expect(bad({ step: -1 })).toThrow(/state\.step/);
    expect(bad({ dSteps: 1.5 })).toThrow(/state\.dSteps/);
    expect(bad({ dSkips: '3' })).toThrow(/state\.dSkips/);
    expect(bad({ adaptive: { ...good.adaptive, fast: Number.NaN } })).toThrow(/state\.adaptive\.fast/);
    expect(bad({ adaptive: { ...good.adaptive, fast: 1 } })).toThrow(/must both be null or both numbers/);
    expect(bad({ adaptive: { ...good.adaptive, rising: 'yes' } })).toThrow(/state\.adaptive\.rising/);
    expect(bad({ adaptive: { ...good.adaptive, observations: -2 } })).toThrow(/state\.adaptive\.observations/);
  });
});
