/**
 * How scheduler domains of one simulated node reach each other: the SchedulerHost given to
 * each domain batches envelopes per destination and instant, and delivers the batch as one
 * kernel event through the production codec, decoded as the target thread would decode it
 * (only the target's own pids become its live objects); envelopes for other nodes go to the
 * node's distribution layer. Used by SimNode and the sim bench.
 */
import { decodeBatch, encodeBatch, setPidCanonicaliser, type Envelope } from '../runtime/Envelope.js';
import type { Pid } from '../runtime/Pid.js';
import type { Scheduler, SchedulerHost } from '../runtime/Scheduler.js';
import type { SimOwner } from './EventQueue.js';
import type { SimWorld } from './SimWorld.js';

const IDENTITY = (pid: Pid): Pid => pid;

/**
 * The host of domain `from` of node `node`. `domain(i)` finds the live domain `i` at delivery
 * time (none after a crash); envelopes for other nodes go to `remote` (the node's distribution
 * layer in a cluster), or are dropped on a single node.
 */
export function domainHost(
  world: SimWorld,
  owner: SimOwner,
  node: string,
  from: number,
  domain: (i: number) => Scheduler | undefined,
  remote?: (node: string, sched: number, env: Envelope) => void,
): SchedulerHost {
  const outboxes = new Map<number, Envelope[]>();
  return {
    route: (toNode, sched, env) => {
      if (toNode !== node) {
        remote?.(toNode, sched, env);
        return;
      }
      let box = outboxes.get(sched);
      if (box === undefined) {
        outboxes.set(sched, (box = []));
        world.after(0, 'envelopes', () => {
          const batch = outboxes.get(sched)!;
          outboxes.delete(sched);
          const target = domain(sched);
          if (target === undefined || !owner.alive) return;
          setPidCanonicaliser((pid) => target.canonical(pid));
          const envelopes = decodeBatch(encodeBatch(batch));
          setPidCanonicaliser(IDENTITY);
          for (const e of envelopes) target.receiveEnvelope(e);
        }, owner, from * 256 + sched);
      }
      box.push(env);
    },
    loadBody: (spec) => Promise.reject(new Error(`spawn by module (${spec.module}#${spec.fn}) is not available in the simulator`)),
  };
}
