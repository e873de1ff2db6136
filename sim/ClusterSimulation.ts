/**
 * Runs one cluster scenario end to end: a SimCluster of N Iris nodes (each running the
 * clustered core, core/cluster/ClusterCore.ts, through its Env — or, with the v1 workload, the
 * whole service in cluster mode with its edge) and M NATS servers with the JetStream model, all
 * from one seed; a workload (sim/ClusterWorkload.ts, or v1 clients: sim/V1ClusterWorkload.ts); a
 * safety phase in which the nemesis (sim/ClusterNemesis.ts) draws the scenario's faults; a heal
 * (every fault undone, every node and server running); a wait until the cluster settled (every
 * group served by exactly one owner every node agrees on, nobody in safe mode); a liveness
 * phase (users send once more: everything must arrive); a presence phase (half the users
 * leave); then the checkers (sim/ClusterCheckers.ts). The result carries the trace hash a
 * replay of the same scenario must reproduce exactly.
 */
import { plantCanary } from '../core/Canaries.js';
import { clusterCoreSettings } from '../core/cluster/ClusterCore.js';
import { clusterNames } from '../core/cluster/ClusterNames.js';
import { routerShardName } from '../core/cluster/ShardGroups.js';
import { CORE_DEFAULTS } from '../core/CoreSettings.js';
import type { Inbox } from '../core/Inbox.js';
import { checkCluster } from './ClusterCheckers.js';
import type { ClusterHistory } from './ClusterHistory.js';
import type { History } from './History.js';
import { ClusterNemesis } from './ClusterNemesis.js';
import { SIM_STREAM_KEEP_ENTRIES, SIM_STREAM_TRIM_INTERVAL_MS, type ClusterScenario } from './ClusterScenario.js';
import { CoreWorkload } from './ClusterWorkload.js';
import { v1NodeConfig, V1ClusterWorkload } from './V1ClusterWorkload.js';
import type { Violation } from './Checkers.js';
import { SIM_CLUSTER_NAME, SimCluster } from './SimCluster.js';
import type { SimNode } from './SimNode.js';
import { installTripwires } from './Tripwires.js';

export interface ClusterRunOptions {
  recordTrace?: boolean;
  recordCheckpoints?: boolean;
  /** Stop after this many events (the run then fails with a runtime violation). */
  maxEvents?: number;
}

export interface ClusterRunResult {
  scenario: ClusterScenario;
  ok: boolean;
  violations: Violation[];
  /** Trace hash as 8 hex digits. */
  traceHash: string;
  events: number;
  simMs: number;
  wallMs: number;
  /** Virtual ms from the heal until the cluster settled (-1: it did not). */
  settleMs: number;
  stats: { sent: number; delivered: number; stored: number; failedAppends: number; refusals: number; nodeRestarts: number; requests: number };
  history: ClusterHistory;
  /** The v1 clients' own history (null in core-level runs). */
  clients: History | null;
  cluster: SimCluster;
  /** Faults the nemesis injected: virtual ms and what. */
  injected: string[];
  trace: string[] | null;
  checkpoints: number[] | null;
  logs: string[];
}

/** Virtual ms before the nemesis first strikes (the cluster bootstraps meanwhile). */
const NEMESIS_START_MS: readonly [number, number] = [2_000, 5_000];
/** Virtual ms the cluster gets to settle after the heal. */
const SETTLE_DEADLINE_MS = 60_000;
/** The cluster must stay settled, with no record changing, this long. */
const SETTLE_STABLE_MS = 2_000;
/** Steps of the settle wait. */
const SETTLE_STEP_MS = 50;
/** After the liveness sends: deliveries drain. */
const DRAIN_MS = 3_000;
/** After users leave: presence spreads. */
const PRESENCE_MS = 3_000;
/** A node whose core cannot start is restarted by its service manager after this long. */
const CORE_RESTART_MS = 2_000;
/**
 * Process exits that are part of the protocol, not crashes: a group's services stop when it
 * moves; a replica whose local copy failed (a disk fault) stops and the control plane starts it
 * again.
 */
const EXPECTED_EXITS = ['not_owner', 'shutdown', 'noconnection', 'simulated disk full', 'simulated fsync failure'];

export async function runClusterScenario(s: ClusterScenario, opts: ClusterRunOptions = {}): Promise<ClusterRunResult> {
  const wallStart = Date.now();
  const { settings, graceMs } = clusterCoreSettings({
    ...CORE_DEFAULTS,
    shard_groups: s.shardGroups,
    durability: s.durability,
    stream_trim_interval_ms: SIM_STREAM_TRIM_INTERVAL_MS,
    stream_keep_entries: SIM_STREAM_KEEP_ENTRIES,
  });
  let workload: CoreWorkload | V1ClusterWorkload | null = null;
  const v1 = s.workload === 'v1';
  const wrapInbox = (inner: Inbox, group: number, node: SimNode): Inbox => workload!.wrapInbox(inner, group, node);
  const cluster = new SimCluster({
    seed: s.seed,
    nodes: s.nodes,
    servers: s.servers,
    recordTrace: opts.recordTrace === true,
    recordCheckpoints: opts.recordCheckpoints === true,
    keepLogLines: opts.recordTrace === true,
    ...(v1
      ? { service: { config: v1NodeConfig(s, graceMs), restartAfterFailureMs: CORE_RESTART_MS, wrapInbox } }
      : { core: { expectedNodes: s.nodes, graceMs, settings, restartAfterFailureMs: CORE_RESTART_MS, wrapInbox } }),
  });
  const world = cluster.world;
  const names = clusterNames(SIM_CLUSTER_NAME);
  workload = v1 ? new V1ClusterWorkload({ cluster, random: world.random('workload'), scenario: s }) : new CoreWorkload({ cluster, random: world.random('workload'), users: s.users, rate: s.rate });
  const w = workload;
  const nemesis = new ClusterNemesis(cluster, w, s, world.random('nemesis'));

  const tripwires = installTripwires();
  if (s.canary !== undefined) plantCanary(s.canary);
  const runtime: string[] = [];
  const maxEvents = opts.maxEvents ?? 50_000_000;
  let exhausted = false;
  const run = async (until: number): Promise<void> => {
    if (exhausted) return;
    if (!(await world.runUntil(until, maxEvents - world.events))) {
      exhausted = true;
      runtime.push(`event budget of ${maxEvents} exhausted at ${world.now} ms`);
    }
  };
  try {
    if (s.faults.includes('clock')) {
      const r = world.random('clock');
      for (const n of cluster.nodes) cluster.skewClock(n.name, r.between(-5_000, 5_000));
    }
    cluster.start();
    w.start();
    const r = world.random('nemesis-start');
    world.after(r.between(NEMESIS_START_MS[0], NEMESIS_START_MS[1]), 'nemesis', () => nemesis.start());
    await run(s.safetyMs);

    // Heal: the nemesis stops, every fault is undone, every node and server runs.
    nemesis.stop();
    w.setSending(false, false);
    world.note('heal', 0);
    w.history.note(world.now, 'heal');
    nemesis.healAll();
    const healAt = world.now;
    w.reconnectAll();
    let settled = false;
    let stableSince = -1;
    let stableAs = '';
    while (!exhausted && world.now - healAt < SETTLE_DEADLINE_MS) {
      // Settled, and no record changed for a while: moves toward the placement are over too.
      if (clusterSettled(cluster, s.shardGroups) && w.allOnline()) {
        const as = tableSignature(cluster, s.shardGroups);
        if (as !== stableAs) {
          stableAs = as;
          stableSince = world.now;
        } else if (world.now - stableSince >= SETTLE_STABLE_MS) {
          settled = true;
          break;
        }
      } else stableAs = '';
      await run(world.now + SETTLE_STEP_MS);
      if (world.now - healAt > 5_000 && (world.now - healAt) % 5_000 < SETTLE_STEP_MS) w.reconnectAll();
    }
    const settleMs = settled ? world.now - healAt : -1;
    w.history.note(world.now, settled ? `settled ${settleMs} ms after the heal` : 'did not settle');

    // Liveness: send once more with nothing in the way.
    let left: ReadonlySet<number> = new Set();
    let stayed: ReadonlySet<number> = new Set();
    const allOnline = settled && w.allOnline();
    if (settled) {
      w.setSending(true, true);
      await run(world.now + s.livenessSendMs);
      w.setSending(false, false);
      await run(world.now + DRAIN_MS);
      ({ left, stayed } = w.finish());
      await run(world.now + PRESENCE_MS);
    }
    w.stop();

    runtime.push(...world.failures.map((f) => `exception in an event: ${f}`));
    runtime.push(...tripwires.violations.map((v) => `tripwire: ${v}`));
    for (const n of cluster.nodes) {
      for (const c of n.crashes) if (!EXPECTED_EXITS.some((e) => c.reason.includes(e))) runtime.push(`process crashed: ${c.label ?? '?'} on ${c.node} at ${c.at} ms: ${c.reason}`);
      for (const f of n.coreFailures) if (f.at > healAt + SETTLE_DEADLINE_MS / 2) runtime.push(`${n.name}: the clustered core failed to start at ${f.at} ms, long after the heal: ${f.message}`);
    }

    const violations: Violation[] = checkCluster({
      history: w.history,
      cluster,
      names,
      shardGroups: s.shardGroups,
      graceMs,
      settled,
      allOnline,
      left,
      stayed,
      chat: w.chatGroup(),
      runtime,
    });
    if (w instanceof V1ClusterWorkload) violations.push(...w.check());
    const h = w.history;
    const counts = w instanceof V1ClusterWorkload ? w.counts() : { sent: h.sent.length, delivered: h.delivered.length };
    return {
      scenario: s,
      ok: violations.length === 0,
      violations,
      traceHash: cluster.traceHash(),
      events: world.events,
      simMs: world.now,
      wallMs: Date.now() - wallStart,
      settleMs,
      stats: {
        sent: counts.sent,
        delivered: counts.delivered,
        stored: h.appends.filter((a) => a.durable === true).length,
        failedAppends: h.appends.filter((a) => a.durable === false).length,
        refusals: [...h.refusals.values()].reduce((a, b) => a + b, 0),
        nodeRestarts: cluster.nodes.reduce((a, n) => a + n.incarnations - 1, 0),
        requests: h.requests.length,
      },
      history: h,
      clients: w instanceof V1ClusterWorkload ? w.clients : null,
      cluster,
      injected: nemesis.injected,
      trace: world.trace,
      checkpoints: world.checkpoints,
      logs: cluster.nodes.flatMap((n) => n.log.lines),
    };
  } finally {
    plantCanary(null);
    tripwires.remove();
  }
}

/** Every group's epoch as the first running node's table holds it. */
function tableSignature(cluster: SimCluster, groups: number): string {
  const core = cluster.nodes.find((n) => n.core !== null)?.core;
  if (core === undefined || core === null) return '';
  return Array.from({ length: groups }, (_, g) => core.plane.table.get(g)?.epoch ?? 0).join(',');
}

/**
 * Whether the cluster settled: every node runs its core outside safe mode, JetStream takes
 * writes, every node's table holds the same record for every group, its owner serves it and
 * nobody else does.
 */
export function clusterSettled(cluster: SimCluster, groups: number): boolean {
  const live = cluster.nodes.filter((n) => n.status === 'up' && n.core !== null);
  if (live.length !== cluster.nodes.length) return false;
  for (const n of live) if (n.core!.guard.safeMode()) return false;
  // JetStream takes writes again: the API answers and every stream has a leader.
  const js = cluster.jetstream;
  const names = live[0]!.core!.plane.names;
  if (js !== null) {
    if (!js.apiReady() || js.leaderOf(names.ctlStream) === null) return false;
    for (let g = 0; g < groups; g++) if (js.leaderOf(names.groupStream(g)) === null) return false;
  }
  const first = live[0]!.core!.plane.table;
  for (let g = 0; g < groups; g++) {
    const r = first.get(g);
    if (r === undefined) return false;
    for (const n of live) {
      const x = n.core!.plane.table.get(g);
      if (x?.epoch !== r.epoch || x.owner !== r.owner) return false;
      const phase = n.core!.plane.replicas.get(g)?.phase;
      const serving = phase === 'owner' || phase === 'handing_off' || phase === 'taking_over';
      if (n.name === r.owner) {
        if (phase !== 'owner' || n.schedulers[0]!.whereis(routerShardName(g)) === undefined || n.incarnations === 0) return false;
        if (n.dist?.self.incarnation !== r.ownerIncarnation) return false;
      } else if (serving) return false;
    }
  }
  return true;
}
