/**
 * The router of one node: `router_pool_size` shards under a supervisor, each registered under
 * a stable name so a restarted shard keeps its address, and the hash ring that maps every
 * user to its shard. Shard state (who is online where) is soft: sessions re-register when
 * they reconnect, and the inbox is the durable truth.
 */
import { callFrom, inTemporaryProcess, isCallReply, type CallResult } from '../actors/Call.js';
import * as Supervisor from '../actors/Supervisor.js';
import { refEquals, type Pid } from '../runtime/Pid.js';
import { TIMEOUT, type ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { HashRing } from './HashRing.js';
import { CORE_SUPERVISOR_INTENSITY, CORE_SUPERVISOR_PERIOD_S } from './defaults.js';
import { routerShard, type RouterShardDeps } from './RouterShard.js';
import type { UserKey } from './UserId.js';

export interface Router {
  readonly supervisor: Pid;
  /** Registered name of the shard owning `user`. */
  shardFor(user: UserKey): string;
  readonly shardNames: readonly string[];
}

/**
 * A process registered under `name` on scheduler `sched` of node `node` (in a cluster, a shard
 * group's services live on the group's owner node).
 */
export interface NamedOnNode {
  readonly name: string;
  readonly node: string;
  readonly sched: number;
}

/** Where a router shard (or another service) is: a pid, a local name, or a name on a node. */
export type ServiceAddress = Pid | string | NamedOnNode;

/** Send `msg` to `to` wherever it is (a remote named send never blocks nor fails, like any send). */
export function sendTo(ctx: ProcessContext, to: ServiceAddress, msg: unknown): void {
  if (isNamedOnNode(to)) ctx.sendNamed(to.name, to.sched, msg, to.node);
  else ctx.send(to as Pid | string, msg);
}

function isNamedOnNode(to: ServiceAddress): to is NamedOnNode {
  return typeof to === 'object' && 'name' in to && !('slot' in to);
}

/**
 * A GenServer call to `to` wherever it is, from outside any process (a temporary process that
 * exits with the call). A name on another node is not monitored: no answer within `timeoutMs`
 * is `timeout`. For operators' requests (the admin API), never on the message path.
 */
export function callService<R = unknown>(s: Scheduler, to: ServiceAddress, request: unknown, timeoutMs: number): Promise<CallResult<R>> {
  if (!isNamedOnNode(to)) return callFrom<R>(s, to, request, timeoutMs);
  return inTemporaryProcess(s, async (ctx) => {
    const ref = ctx.makeRef();
    ctx.sendNamed(to.name, to.sched, { $gen: 'call', from: { pid: ctx.self, ref }, request }, to.node);
    const got = await ctx.receive((m) => isCallReply(m) && refEquals(m.ref, ref), timeoutMs);
    return got === TIMEOUT || !isCallReply(got) ? { ok: false as const, reason: 'timeout' as const } : { ok: true as const, value: got.value as R };
  }, 'call');
}

/** A GenServer cast (`handleCast`) to `to` wherever it is. */
export function castTo(ctx: ProcessContext, to: ServiceAddress, msg: unknown): void {
  sendTo(ctx, to, { $gen: 'cast', msg });
}

export function shardName(i: number): string {
  return `router_shard_${i}`;
}

export async function startRouter(s: Scheduler, shards: number, deps: RouterShardDeps): Promise<{ ok: true; router: Router } | { ok: false; reason: unknown }> {
  const names = Array.from({ length: shards }, (_, i) => shardName(i));
  const sup = await Supervisor.start(
    s,
    {
      flags: { strategy: 'one_for_one', intensity: CORE_SUPERVISOR_INTENSITY, period: CORE_SUPERVISOR_PERIOD_S },
      children: names.map((name) => ({
        id: name,
        start: (ctx) => ({ ok: true as const, pid: ctx.spawnLink(routerShard(deps), { name, label: 'RouterShard' }) }),
      })),
    },
    { name: 'router_sup' },
  );
  if (!sup.ok) return { ok: false, reason: sup.reason };
  const ring = new HashRing<number>(names.map((_, i) => i));
  return {
    ok: true,
    router: {
      supervisor: sup.pid,
      shardNames: names,
      // On every routed message: hash the key as is, no conversion back to bytes.
      shardFor: (user) => names[ring.ownerOfLatin1(user) ?? 0]!,
    },
  };
}
