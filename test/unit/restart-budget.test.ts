// RestartBudget (src/daemon/restart-budget.ts): at most N trainer restarts in any window, with an
// injected clock.

import { describe, expect, it } from 'vitest';

import { RestartBudget } from '../../src/daemon/restart-budget.js';

describe('RestartBudget', () => {
  it('grants max restarts per window, then refuses until the oldest leaves the window', () => {
    let now = 1_000_000;
    const budget = new RestartBudget(3, 3_600_000, () => now);
    expect([budget.take(), budget.take(), budget.take()]).toEqual([true, true, true]);
    expect(budget.take()).toBe(false);
    now += 3_599_999;
    expect(budget.take()).toBe(false); // a refusal takes nothing, and the first is still inside the window
    now += 1;
    expect(budget.take()).toBe(true); // the first three have left it
    expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(false);
  });

  it('a budget of 0 never restarts', () => {
    expect(new RestartBudget(0, 1000, () => 0).take()).toBe(false);
  });
});
