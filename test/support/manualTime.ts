/**
 * A manual clock for tests: an Env whose time moves only when the test advances it, so
 * timer races (a reply at 30 ms against a timeout at 40 ms) have exact, repeatable outcomes
 * and a test of minutes of timeouts runs in milliseconds.
 *
 * Deferred work (the scheduler's run loop) runs when the test settles; timers fire in order
 * of deadline, then of creation. Promise callbacks run between steps, so async handlers
 * progress exactly as they would on the real event loop.
 */
import type { Env, Timers } from '../../runtime/Env.js';
import { silentLogger } from '../../runtime/Env.js';
import { inlineDirtyWork } from '../../runtime/InlineDirtyWork.js';
import { cryptoRandom } from '../../runtime/node/ProductionEnv.js';

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

export interface ManualTime {
  readonly env: Env;
  /** Virtual milliseconds since the start. */
  now(): number;
  /** Run deferred work and promise callbacks until nothing is left to do at this instant. */
  settle(): Promise<void>;
  /** Settle, then fire timers in order until virtual time reaches `now() + ms`, settling after each. */
  advance(ms: number): Promise<void>;
  /** Advance until `cond()` holds; fails if it does not within `maxMs` of virtual time. */
  until(cond: () => boolean, maxMs?: number, what?: string): Promise<void>;
  /** Advance until `p` settles (at most `maxMs` of virtual time) and return its outcome. */
  drive<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  /** Timers not yet fired. */
  pendingTimers(): number;
}

const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function manualTime(): ManualTime {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, ManualTimer>();
  let deferred: Array<() => void> = [];

  const t: Timers = {
    setTimer(ms, fn) {
      const id = ++seq;
      timers.set(id, { at: now + Math.max(0, ms), seq: id, fn });
      return id;
    },
    clearTimer(handle) {
      timers.delete(handle as number);
    },
    defer(fn) {
      deferred.push(fn);
    },
  };

  const env: Env = {
    clock: { monotonicMs: () => now, wallMs: () => 1_700_000_000_000 + now },
    timers: t,
    random: cryptoRandom(),
    log: silentLogger,
    dirty: inlineDirtyWork,
  };

  async function settle(): Promise<void> {
    for (;;) {
      await macrotask();
      if (deferred.length === 0) return;
      const batch = deferred;
      deferred = [];
      for (const fn of batch) fn();
    }
  }

  function earliest(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const x of timers.values()) if (best === undefined || x.at < best.at || (x.at === best.at && x.seq < best.seq)) best = x;
    return best;
  }

  async function step(limit: number): Promise<boolean> {
    await settle();
    const next = earliest();
    if (next === undefined || next.at > limit) return false;
    timers.delete(next.seq);
    now = next.at;
    next.fn();
    await settle();
    return true;
  }

  const api: ManualTime = {
    env,
    now: () => now,
    settle,
    async advance(ms) {
      const limit = now + ms;
      while (await step(limit));
      now = limit;
    },
    async until(cond, maxMs = 60_000, what = 'condition') {
      const limit = now + maxMs;
      await settle();
      while (!cond()) {
        if (!(await step(limit))) throw new Error(`manual time: ${what} did not happen within ${maxMs} virtual ms (now ${now})`);
      }
    },
    async drive(p, maxMs = 60_000) {
      let done = false;
      p.then(
        () => (done = true),
        () => (done = true),
      );
      await api.until(() => done, maxMs, 'the awaited promise');
      return p;
    },
    pendingTimers: () => timers.size,
  };
  return api;
}
