/**
 * Entry point of a scheduler thread: one Scheduler on the production Env, wired to its peers
 * through ThreadHost ports and to the node's main thread through control messages (peer
 * ports, peer-down notices, dirty jobs, introspection queries, shutdown).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { DirtyWork } from '../Env.js';
import { Kind, RELAYED, type Envelope } from '../Envelope.js';
import { Pid } from '../Pid.js';
import type { ExitReason } from '../ExitReason.js';
import { Scheduler } from '../Scheduler.js';
import { cryptoRandom, realClock, realTimers } from './ProductionEnv.js';
import { ThreadHost } from './ThreadHost.js';
import { createLogger } from './logger.js';
import { HB_TICKS, HB_TICK_MS } from './Watchdog.js';
import type { ControlToWorker, ControlFromWorker, SchedulerWorkerData } from './control.js';

const data = workerData as SchedulerWorkerData;
const port = parentPort as MessagePort;
const post = (m: ControlFromWorker) => port.postMessage(m);

let dirtySeq = 0;
const dirtyPending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
const dirty: DirtyWork = {
  run<T>(module: string, fn: string, arg: unknown): Promise<T> {
    const id = ++dirtySeq;
    return new Promise<T>((resolve, reject) => {
      dirtyPending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      post({ t: 'dirty', id, module, fn, arg });
    });
  },
};

const log = createLogger({ node: data.node, sched: data.id }, data.logLevel);
const hb = new Int32Array(data.heartbeat);
const host = new ThreadHost(data.node);
const sched = new Scheduler({
  node: data.node,
  id: data.id,
  inc: data.inc,
  env: { clock: realClock, timers: realTimers, random: cryptoRandom(), log, dirty },
  host,
  heartbeat: hb,
});
host.bind(sched);
sched.installCanonicaliser();
// Envelopes for other nodes go through the main thread, which holds the node's NATS link.
host.remoteNode = (node, to, env) => {
  const target = env[1];
  if (target instanceof Pid && target.node === node && target.sched === to) {
    host.route(data.node, 0, [(env[0] + RELAYED) as Kind, target, env[2], env[3], env[4], env[5]] as Envelope);
  } else {
    host.route(data.node, 0, [Kind.Relay, node, null, to, env, env[5]]);
  }
};

const tick = setInterval(() => Atomics.add(hb, HB_TICKS, 1), HB_TICK_MS);

port.on('message', (m: ControlToWorker) => {
  switch (m.t) {
    case 'connect':
      host.attach(m.id, m.port);
      break;
    case 'detach':
      host.detach(m.id);
      break;
    case 'peerDown':
      sched.peerDown(m.node, m.sched, m.inc, m.reason as ExitReason);
      break;
    case 'dirtyResult': {
      const p = dirtyPending.get(m.id);
      if (p !== undefined) {
        dirtyPending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(m.error));
      }
      break;
    }
    case 'query': {
      const value =
        m.what === 'metrics' ? sched.metrics()
        : sched.processes().map((pid) => {
            const i = sched.info(pid);
            return i === undefined ? null : { ...i, pid: pid.toString(), links: i.links.map(String) };
          }).filter((x) => x !== null);
      post({ t: 'reply', id: m.id, value });
      break;
    }
    case 'shutdown':
      sched.shutdown('shutdown');
      clearInterval(tick);
      post({ t: 'stopped' });
      port.close();
      break;
  }
});

post({ t: 'ready' });
