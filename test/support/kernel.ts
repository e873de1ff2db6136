/**
 * Test support for the kernel and behaviours: a scheduler on the real Env of this thread and
 * a probe process that records what it receives so a test can await a message with a
 * deadline (never a sleep).
 */
import { Scheduler } from '../../runtime/Scheduler.js';
import type { Env } from '../../runtime/Env.js';
import { silentLogger } from '../../runtime/Env.js';
import type { Pid } from '../../runtime/Pid.js';
import { inlineDirtyWork } from '../../runtime/InlineDirtyWork.js';
import { cryptoRandom, realClock, realTimers } from '../../runtime/node/ProductionEnv.js';

export function testEnv(): Env {
  return { clock: realClock, timers: realTimers, random: cryptoRandom(), log: silentLogger, dirty: inlineDirtyWork };
}

let nextInc = 1;
export function newScheduler(env: Env = testEnv()): Scheduler {
  const s = new Scheduler({ node: 'test', id: 0, inc: nextInc++, env });
  s.onCrash = null;
  return s;
}

export interface Probe {
  readonly pid: Pid;
  /** Everything received so far, in order. */
  readonly received: unknown[];
  /** Resolve with the first unconsumed message matching `match`, or reject after `timeoutMs`. */
  next<T = unknown>(match?: (m: unknown) => boolean, timeoutMs?: number): Promise<T>;
  /** Assert nothing matching arrives within `ms` (for "must not happen" checks). */
  nothing(match?: (m: unknown) => boolean, ms?: number): Promise<void>;
}

/** A real process that records every message (system lane included) for the test. */
export function spawnProbe(s: Scheduler, opts: { trapExit?: boolean } = {}): Probe {
  const received: unknown[] = [];
  const consumed = new Set<number>();
  const waiters: Array<() => void> = [];
  const pid = s.spawn(() => (msg) => {
    received.push(msg);
    for (const w of waiters.splice(0)) w();
  }, { trapExit: opts.trapExit === true, label: 'probe' });
  const find = (match?: (m: unknown) => boolean): number => {
    for (let i = 0; i < received.length; i++) if (!consumed.has(i) && (match === undefined || match(received[i]))) return i;
    return -1;
  };
  const probe: Probe = {
    pid,
    received,
    next<T>(match?: (m: unknown) => boolean, timeoutMs = 2000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const check = (): boolean => {
          const i = find(match);
          if (i < 0) return false;
          consumed.add(i);
          resolve(received[i] as T);
          return true;
        };
        if (check()) return;
        const timer = setTimeout(() => reject(new Error(`probe: no matching message within ${timeoutMs} ms; got ${JSON.stringify(received.map(String))}`)), timeoutMs);
        const w = () => {
          if (check()) clearTimeout(timer);
          else waiters.push(w);
        };
        waiters.push(w);
      });
    },
    async nothing(match?: (m: unknown) => boolean, ms = 100): Promise<void> {
      await new Promise((r) => setTimeout(r, ms));
      const i = find(match);
      if (i >= 0) throw new Error(`probe: unexpected message ${String(received[i])}`);
    },
  };
  return probe;
}

/** Wait until `cond()` holds, polling each macrotask, failing after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}
