/**
 * Module-named process bodies for tests that start processes on other scheduler threads
 * (a body must be importable by the thread that runs it).
 */
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessBody } from '../../runtime/ProcessContext.js';

export const BODIES = new URL('./bodies.js', import.meta.url).href;

/** Replies `{echo: msg.body, from: self}` to `msg.replyTo`. */
export function echo(): ProcessBody {
  return (ctx) => (msg) => {
    const m = msg as { replyTo: Pid; body: unknown };
    ctx.send(m.replyTo, { echo: m.body, from: ctx.self, sched: ctx.schedulerId });
  };
}

/** Counts messages; on `{report: pid}` sends the numbers it saw, in order. */
export function recorder(): ProcessBody {
  return (ctx) => {
    const seen: unknown[] = [];
    return (msg) => {
      const m = msg as { report?: Pid };
      if (m !== null && typeof m === 'object' && m.report !== undefined) ctx.send(m.report, { seen });
      else seen.push(msg);
    };
  };
}

/** Crashes when told `crash`, exits normally when told `stop`. */
export function crashable(): ProcessBody {
  return (ctx) => (msg) => {
    if (msg === 'crash') throw new Error('told to crash');
    if (msg === 'stop') ctx.exit('normal');
  };
}

/** Spins forever on `spin` (a runaway handler the watchdog must catch). */
export function runaway(): ProcessBody {
  return (ctx) => (msg) => {
    if (msg === 'spin') {
      for (;;) {
        /* never returns */
      }
    }
    const m = msg as { replyTo: Pid };
    if (m.replyTo !== undefined) ctx.send(m.replyTo, 'alive');
  };
}

export { blaster, sink } from '../../bench/benchBodies.js';

/** A CPU-heavy job for the dirty pool: sums 1..n and reports which thread ran it. */
export async function sumTo(n: number): Promise<{ sum: number; mainThread: boolean }> {
  const { isMainThread } = await import('node:worker_threads');
  let sum = 0;
  for (let i = 1; i <= n; i++) sum += i;
  return { sum, mainThread: isMainThread };
}

/** Runs `sumTo(n)` on the dirty pool and sends the result to `replyTo`. */
export function dirtyCaller(replyTo: Pid, n: number): ProcessBody {
  return async (ctx) => {
    const r = await ctx.env.dirty.run<{ sum: number; mainThread: boolean }>(BODIES, 'sumTo', n);
    ctx.send(replyTo, { ...r, sched: ctx.schedulerId });
  };
}

/** Calls the GenServer `server` (on any scheduler) and forwards the result to `replyTo`. */
export function crossCaller(server: Pid, replyTo: Pid): ProcessBody {
  return async (ctx) => {
    const { call } = await import('../../actors/Call.js');
    const r = await call(ctx, server, 'from-sched-1', 3000);
    ctx.send(replyTo, r);
  };
}

/** On `{busyMs, replyTo}` busy-waits that long inside the handler, then replies `done`. */
export function slowpoke(): ProcessBody {
  return (ctx) => (msg) => {
    const m = msg as { busyMs: number; replyTo: Pid };
    const end = ctx.env.clock.monotonicMs() + m.busyMs;
    while (ctx.env.clock.monotonicMs() < end) {
      /* hold the scheduler */
    }
    ctx.send(m.replyTo, 'done');
  };
}
