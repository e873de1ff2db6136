/**
 * The demo application `npm start` runs until the messaging service lands: a supervision
 * tree spread over the node's scheduler threads. A counter GenServer on the main scheduler,
 * an echo process on every worker scheduler (started there by module name, linked to the
 * supervisor), and a heartbeat that every few seconds counts, pings every echo across
 * threads and logs the round trip. Kill any of them and the supervisor restarts it.
 */
import * as GenServer from '../actors/GenServer.js';
import { defineApplication, type Application } from '../actors/Application.js';
import type { ChildSpec } from '../actors/Supervisor.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';

const SELF = new URL(import.meta.url).href;

export interface DemoConfig {
  schedulers: number;
  heartbeatMs: number;
}

/** Counter: `'incr'` → new value. */
const counter: GenServer.Behaviour<number, void, 'incr' | 'get', number> = {
  init: () => ({ state: 0 }),
  handleCall: (req, _from, n) => (req === 'incr' ? { reply: n + 1, state: n + 1 } : { reply: n, state: n }),
};

/** Echo body, started on a worker scheduler by module name. */
export function echo(): ProcessBody {
  return (ctx) => {
    ctx.register('demo_echo');
    return (msg) => {
      const m = msg as { ping: number; replyTo: Pid };
      ctx.send(m.replyTo, { pong: m.ping, sched: ctx.schedulerId });
    };
  };
}

function heartbeat(cfg: DemoConfig): ProcessBody {
  return async (ctx: ProcessContext) => {
    for (;;) {
      await ctx.receive((m) => m === 'tick', cfg.heartbeatMs);
      const n = await GenServer.call<number>(ctx, 'demo_counter', 'incr');
      const t0 = ctx.env.clock.monotonicMs();
      for (let s = 1; s < cfg.schedulers; s++) ctx.sendNamed('demo_echo', s, { ping: s, replyTo: ctx.self });
      const pongs: number[] = [];
      for (let s = 1; s < cfg.schedulers; s++) {
        const r = await ctx.receive<{ pong: number }>((m) => typeof m === 'object' && m !== null && 'pong' in m, 1000);
        if (typeof r === 'object') pongs.push(r.pong);
      }
      const rtt = ctx.env.clock.monotonicMs() - t0;
      ctx.env.log.info({ beat: n.ok ? n.value : null, echoes: pongs.length, rtt_ms: Math.round(rtt * 1000) / 1000 }, 'demo heartbeat');
    }
  };
}

export function demoApplication(cfg: DemoConfig): Application<DemoConfig> {
  const children: ChildSpec[] = [
    { id: 'counter', start: (ctx) => GenServer.startLink(ctx, counter, undefined, { name: 'demo_counter' }) },
  ];
  for (let s = 1; s < cfg.schedulers; s++) {
    children.push({ id: `echo-${s}`, start: (ctx) => ctx.spawnOn(s, { module: SELF, fn: 'echo' }, { link: true }) });
  }
  children.push({ id: 'heartbeat', start: (ctx) => ({ ok: true, pid: ctx.spawnLink(heartbeat(cfg)) }) });
  return defineApplication<DemoConfig>({
    name: 'demo',
    type: 'permanent',
    config: cfg,
    validate: (raw) => {
      const c = raw as DemoConfig;
      return c.heartbeatMs > 0 ? { ok: true, config: c } : { ok: false, errors: ['heartbeatMs: must be > 0'] };
    },
    supervisor: () => ({ flags: { strategy: 'one_for_one', intensity: 5, period: 10 }, children }),
  });
}
