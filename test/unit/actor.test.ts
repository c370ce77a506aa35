import { describe, expect, it } from 'vitest';
import { Actor, SimulatedClock } from '../../src/actors/actor.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import type { SrganError } from '../../src/util/errors.js';

class Recorder extends Actor<number> {
  seen: number[] = [];
  starts = 0;
  stops = 0;
  failOn: number | null = null;
  constructor(name = 'recorder') {
    super(name);
  }
  protected override onStart(): void {
    this.starts++;
  }
  protected override onStop(): void {
    this.stops++;
  }
  protected async receive(n: number): Promise<void> {
    await Promise.resolve();
    if (n === this.failOn) throw new Error(`boom on ${n}`);
    this.seen.push(n);
  }
}

describe('Actor', () => {
  it('processes messages one at a time, in order, only while running', async () => {
    const a = new Recorder();
    expect(a.status).toBe('NotStarted');
    expect(a.send(1)).toBe(false);
    await a.start();
    expect(a.status).toBe('Running');
    for (let i = 0; i < 100; i++) a.send(i);
    await a.whenIdle();
    expect(a.seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await a.stop();
    expect(a.status).toBe('Stopped');
    expect(a.send(5)).toBe(false);
    expect(a.stops).toBe(1);
  });

  it('stop() processes what was already queued before onStop', async () => {
    const a = new Recorder();
    await a.start();
    for (let i = 0; i < 10; i++) a.send(i);
    await a.stop();
    expect(a.seen).toHaveLength(10);
  });

  it('a failure in receive marks the actor Failed and reports it to its parent', async () => {
    const a = new Recorder();
    const failures: unknown[] = [];
    a.setParent({ childFailed: (_c, e) => failures.push(e) });
    a.failOn = 3;
    await a.start();
    for (let i = 0; i < 6; i++) a.send(i);
    await a.whenIdle();
    expect(a.status).toBe('Failed');
    expect(a.seen).toEqual([0, 1, 2]);
    expect(failures).toHaveLength(1);
    expect((failures[0] as Error).message).toBe('boom on 3');
    await a.stop();
    expect(a.stops).toBe(1); // a failed actor still releases its resources
  });
});

describe('SimulatedClock', () => {
  it('fires timers in time order when advanced, and cancels', () => {
    const clock = new SimulatedClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 20);
    clock.setTimeout(() => fired.push('a'), 10);
    const cancel = clock.setTimeout(() => fired.push('x'), 15);
    cancel();
    clock.advance(9);
    expect(fired).toEqual([]);
    clock.advance(11);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(1020);
  });
});

describe('Supervisor', () => {
  const flush = async () => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };

  it('restarts a permanent child after the delay, on the injected clock', async () => {
    const clock = new SimulatedClock();
    const events: string[] = [];
    const sup = new Supervisor({
      clock,
      restartDelayMs: 100,
      onEscalate: () => events.push('escalate'),
      onEvent: (e) => events.push(`${e.kind}:${e.child}`),
    });
    const a = new Recorder('worker');
    a.failOn = 1;
    await sup.startChild({ actor: a, restart: 'permanent' });
    a.send(1);
    await a.whenIdle();
    expect(a.status).toBe('Failed');
    clock.advance(99);
    await flush();
    expect(a.starts).toBe(1);
    clock.advance(1);
    await flush();
    expect(a.status).toBe('Running');
    expect(a.starts).toBe(2);
    expect(events).toEqual(['child_failed:worker', 'child_restarted:worker']);
    a.send(2);
    await a.whenIdle();
    expect(a.seen).toEqual([2]);
  });

  it('does not restart temporary children', async () => {
    const clock = new SimulatedClock();
    const sup = new Supervisor({ clock, onEscalate: () => {} });
    const a = new Recorder();
    a.failOn = 1;
    await sup.startChild({ actor: a, restart: 'temporary' });
    a.send(1);
    await a.whenIdle();
    clock.advance(10_000);
    await flush();
    expect(a.status).toBe('Failed');
    expect(a.starts).toBe(1);
  });

  it('escalates when restarts exceed the intensity limit within the window', async () => {
    const clock = new SimulatedClock();
    const escalations: SrganError[] = [];
    const sup = new Supervisor({ clock, maxRestarts: 2, windowMs: 1000, restartDelayMs: 10, onEscalate: (e) => escalations.push(e) });
    const a = new Recorder('flaky');
    a.failOn = 1;
    await sup.startChild({ actor: a, restart: 'permanent' });
    for (let i = 0; i < 3; i++) {
      a.send(1);
      await a.whenIdle();
      clock.advance(10);
      await flush();
    }
    expect(escalations).toHaveLength(1);
    expect(escalations[0]?.code).toBe('SRGAN_ERR_RESTART_LIMIT');
    expect(escalations[0]?.message).toContain('flaky');
  });

  it('forgets restarts older than the window', async () => {
    const clock = new SimulatedClock();
    const escalations: unknown[] = [];
    const sup = new Supervisor({ clock, maxRestarts: 1, windowMs: 1000, restartDelayMs: 10, onEscalate: (e) => escalations.push(e) });
    const a = new Recorder();
    a.failOn = 1;
    await sup.startChild({ actor: a, restart: 'permanent' });
    for (let i = 0; i < 4; i++) {
      a.send(1);
      await a.whenIdle();
      clock.advance(2000);
      await flush();
    }
    expect(escalations).toHaveLength(0);
    expect(a.starts).toBe(5);
  });

  it('stopAll stops children in reverse order and cancels pending restarts', async () => {
    const clock = new SimulatedClock();
    const order: string[] = [];
    class Named extends Recorder {
      protected override onStop(): void {
        order.push(this.name);
      }
    }
    const sup = new Supervisor({ clock, onEscalate: () => {} });
    const a = new Named('a');
    const b = new Named('b');
    b.failOn = 1;
    await sup.startChild({ actor: a, restart: 'permanent' });
    await sup.startChild({ actor: b, restart: 'permanent' });
    b.send(1);
    await b.whenIdle();
    await sup.stopAll();
    clock.advance(10_000);
    await flush();
    expect(order).toEqual(['b', 'a']);
    expect(b.status).toBe('Stopped');
  });

  it('rejects misspelled options', () => {
    expect(() => new Supervisor({ onEscalate: () => {}, maxRestart: 3 } as never)).toThrow(/unknown option "maxRestart"/);
  });
});

describe('Supervisor.startChild', () => {
  it('throws a first start failure to the caller instead of restarting', async () => {
    class Broken extends Actor<never> {
      protected override onStart(): void {
        throw new Error('port in use');
      }
      protected receive(): void {}
    }
    const escalations: unknown[] = [];
    const sup = new Supervisor({ clock: new SimulatedClock(), onEscalate: (e) => escalations.push(e) });
    await expect(sup.startChild({ actor: new Broken('server'), restart: 'permanent' })).rejects.toThrow('port in use');
    expect(sup.children).toHaveLength(0);
    expect(escalations).toEqual([]);
  });
});
