/**
 * Module-named process bodies used by benches that place processes on scheduler threads.
 */
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody } from '../runtime/ProcessContext.js';

/** Sends `count` numbers to `to` in chunks (yielding between chunks), then `{done}`. */
export function blaster(to: Pid, count: number, chunk = 2000): ProcessBody {
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

/** Counts numbers and checks order; reports `{count, inOrder}` to `notify` on `{done}`. */
export function sink(notify: Pid): ProcessBody {
  return (ctx) => {
    let count = 0;
    let next = 0;
    let inOrder = true;
    return (msg) => {
      if (typeof msg === 'number') {
        if (msg !== next) inOrder = false;
        next = msg + 1;
        count++;
      } else ctx.send(notify, { count, inOrder });
    };
  };
}

/** Answers every `{ping, from}` with `{pong}` to `from`. */
export function ponger(): ProcessBody {
  return (ctx) => (msg) => {
    const m = msg as { ping: number; from: Pid };
    ctx.send(m.from, { pong: m.ping });
  };
}

/**
 * Sends `count` pings to `target` one at a time (the next after the previous pong) and
 * reports `{rttsMs}` (every round trip, in ms, measured on this node's clock) to `report`.
 */
export function pinger(target: Pid, count: number, report: Pid): ProcessBody {
  return (ctx) => {
    const rtts: number[] = [];
    let sentAt = ctx.env.clock.monotonicMs();
    ctx.send(target, { ping: 0, from: ctx.self });
    return (msg) => {
      const now = ctx.env.clock.monotonicMs();
      rtts.push(now - sentAt);
      const n = (msg as { pong: number }).pong + 1;
      if (n === count) {
        ctx.send(report, { rttsMs: rtts });
        ctx.exit('normal');
        return;
      }
      sentAt = now;
      ctx.send(target, { ping: n, from: ctx.self });
    };
  };
}
