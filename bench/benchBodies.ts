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
