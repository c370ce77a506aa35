import { describe, expect, it } from 'vitest';
import { Scheduler, type SchedulerConfig } from '../../src/actors/scheduler.js';

const base: SchedulerConfig = { dStepsPerG: 3, phases: [{ steps: null, lrG: 1e-3, lrD: 1e-4 }], logEvery: 5, previewEvery: 10, maxSteps: null };

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
    const s = new Scheduler({ ...base, phases: [{ steps: 2, lrG: 1, lrD: 2 }, { steps: 3, lrG: 3, lrD: 4 }, { steps: 1, lrG: 5, lrD: 6 }] });
    const seen: [number, number, number][] = [];
    for (let i = 0; i < 8; i++) {
      const p = s.plan();
      seen.push([p.step, p.phase, p.lrG]);
      s.complete(p);
    }
    expect(seen).toEqual([[1, 0, 1], [2, 0, 1], [3, 1, 3], [4, 1, 3], [5, 1, 3], [6, 2, 5], [7, 2, 5], [8, 2, 5]]);
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
    expect(() => new Scheduler({ ...base, phases: [{ steps: null, lrG: 1, lrD: 1 }, { steps: 1, lrG: 1, lrD: 1 }] })).toThrow(/phases\[0\].steps/);
    expect(() => new Scheduler({ ...base, phases: [{ steps: 5, lrG: Number.NaN, lrD: 1 }] })).toThrow(/phases\[0\].lrG/);
    expect(() => new Scheduler({ ...base, logEvery: 0 })).toThrow(/logEvery/);
  });
});
