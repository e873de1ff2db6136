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
      // eslint-disable-next-line no-constant-condition
      for (;;) {
        /* never returns */
      }
    }
    const m = msg as { replyTo: Pid };
    if (m.replyTo !== undefined) ctx.send(m.replyTo, 'alive');
  };
}

/** Sends `count` numbered messages to `to` in chunks, then `{done: count}`. */
export function blaster(to: Pid, count: number, chunk = 1000): ProcessBody {
  return (ctx) => {
    let sent = 0;
    ctx.send(ctx.self, 'go');
    return () => {
      const end = Math.min(count, sent + chunk);
      for (; sent < end; sent++) ctx.send(to, sent);
      if (sent < count) ctx.send(ctx.self, 'go');
      else {
        ctx.send(to, { done: count });
        ctx.exit('normal');
      }
    };
  };
}

/** Counts numbers until `{done: n}`, then tells `notify` how many arrived and whether in order. */
export function sink(notify: Pid): ProcessBody {
  return (ctx) => {
    let count = 0;
    let inOrder = true;
    let last = -1;
    return (msg) => {
      if (typeof msg === 'number') {
        if (msg !== last + 1) inOrder = false;
        last = msg;
        count++;
        return;
      }
      const m = msg as { done: number };
      ctx.send(notify, { count, inOrder, expected: m.done });
    };
  };
}
