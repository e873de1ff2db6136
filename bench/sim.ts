/**
 * The simulator bench: how fast the deterministic kernel runs and how much virtual time the
 * whole service gets through per wall second.
 *
 * - kernel_events_per_s: the event loop alone (heap, owner checks, trace hash) on 1,000
 *   self-rescheduling timers with trivial bodies, 2,000,000 events; best of 3.
 * - domain_hops_per_s: messages between two scheduler domains of one simulated node, each
 *   hop an envelope batch through the production codec and a kernel event; best of 3.
 * - reference scenario (P8): one node, 1,000 simulated clients, 50 msg/s in total, 60 virtual
 *   s of traffic plus the heal, drain and presence phases, no faults:
 *   sim_seconds_per_wall_second and service_events_per_s; best of 3.
 * - ci_seed_mix: the first 100 seeds of `npm run sim` (random fault sets): seeds per second.
 * - cluster world (P8's cluster half): 5 Iris nodes (distribution on, heartbeats running, no
 *   service) on 3 simulated NATS servers with the JetStream model, 4 R3 streams, appends at
 *   50/s in total spread over the nodes and streams, 120 virtual s: cluster_world_sim_seconds_
 *   per_wall_second; the same world without appends; and the events by kind (what costs).
 * - reference cluster scenario (P8): 5 Iris nodes running the clustered core (16 shard groups,
 *   durability quorum) on 3 NATS servers, 50 users sending 50 msg/s in total (direct, SEND_SEQ,
 *   group fan-out, prekeys, receipts), 60 virtual s, no faults, then the heal, liveness and
 *   presence phases, every cluster checker on: cluster_sim_seconds_per_wall_second; best of 3.
 */
import { describeMachine } from './machine.js';
import { SimWorld } from '../sim/SimWorld.js';
import { runScenario } from '../sim/Simulation.js';
import { scenarioFromSeed, type Scenario } from '../sim/Scenario.js';
import { Scheduler } from '../runtime/Scheduler.js';
import { domainHost } from '../sim/DomainHost.js';
import { simEnv, SimLog } from '../sim/SimEnv.js';
import { Pid } from '../runtime/Pid.js';
import { SimCluster } from '../sim/SimCluster.js';
import type { ClusterScenario } from '../sim/ClusterScenario.js';
import { runClusterScenario } from '../sim/ClusterSimulation.js';

const best = async (n: number, f: () => Promise<number> | number): Promise<number> => {
  let b = 0;
  for (let i = 0; i < n; i++) b = Math.max(b, await f());
  return b;
};

async function kernelEventsPerS(): Promise<number> {
  const world = new SimWorld({ seed: 7 });
  const owner = { name: 'n0', alive: true, pausedUntil: 0, backlog: [] };
  const r = world.random('bench');
  const total = 2_000_000;
  let left = total;
  const tick = (): void => {
    if (--left > 0) world.after(r.int(10), 'tick', tick, owner, left);
  };
  for (let i = 0; i < 1000; i++) world.after(r.int(10), 'tick', tick, owner, i);
  const t0 = performance.now();
  await world.runUntil(Number.POSITIVE_INFINITY);
  return world.events / ((performance.now() - t0) / 1000);
}

async function domainHopsPerS(): Promise<number> {
  const world = new SimWorld({ seed: 9 });
  const owner = { name: 'n0', alive: true, pausedUntil: 0, backlog: [] };
  const log = new SimLog(world, 'n0', false);
  const env = simEnv(world, owner, { skewMs: 0, wallJumpMs: 0 }, world.random('env'), log);
  const scheds: Scheduler[] = [];
  for (let id = 0; id < 2; id++) scheds.push(new Scheduler({ node: 'n0', id, inc: id + 1, env, host: domainHost(world, owner, 'n0', id, (i) => scheds[i]) }));
  const hops = 200_000;
  let done = 0;
  let finished = false;
  const local = scheds[1]!.spawn(() => (m) => {
    const [n, reply] = m as [number, Pid];
    scheds[1]!.send(reply, n, null);
  });
  // The address as another thread would hold it (not the live object of scheduler 1).
  const b = new Pid(local.node, local.sched, local.inc, local.slot, local.gen);
  scheds[0]!.spawn((ctx) => {
    ctx.send(b, [0, ctx.self]);
    return (m) => {
      done++;
      if ((m as number) + 1 >= hops) finished = true;
      else ctx.send(b, [(m as number) + 1, ctx.self]);
    };
  });
  const t0 = performance.now();
  await world.runUntil(Number.POSITIVE_INFINITY);
  const s = (performance.now() - t0) / 1000;
  if (!finished) throw new Error(`domain ping-pong stopped after ${done} hops`);
  if (world.events < 2 * done) throw new Error(`domain ping-pong: ${world.events} kernel events for ${done} round trips`);
  if (process.env.IRIS_BENCH_DEBUG === "1") console.error(`domain hops: ${done} round trips, ${world.events} events, ${s.toFixed(3)} s`);
  return (2 * done) / s;
}

const CLUSTER_BENCH_STREAMS = 4;
const CLUSTER_BENCH_VIRTUAL_MS = 120_000;
const CLUSTER_BENCH_APPENDS_PER_S = 50;

interface ClusterWorldRun {
  simPerWall: number;
  events: number;
  acked: number;
  refused: number;
  /** Events by label (only when traced). */
  byLabel: Record<string, number> | null;
}

/** The cluster world of P8: 5 nodes, 3 servers, 4 streams, `appendsPerS` appends per virtual second. */
async function clusterWorld(appendsPerS: number, traced: boolean): Promise<ClusterWorldRun> {
  const c = new SimCluster({ seed: 3, nodes: 5, servers: 3, recordTrace: traced });
  c.start();
  await c.waitFor('the JetStream API', () => c.jetstream!.apiReady());
  const store = (i: number) => c.nodes[i % c.nodes.length]!.env!.streams!;
  for (let s = 0; s < CLUSTER_BENCH_STREAMS; s++) {
    const r = await c.settle(store(0).ensureStream({ name: `B${s}`, subjects: [`b.${s}.>`], replicas: 3, duplicateWindowMs: 120_000 }));
    if (!r.ok) throw new Error(`cluster bench: stream B${s} not created: ${r.message}`);
  }
  let acked = 0;
  let refused = 0;
  let n = 0;
  const traceFrom = c.world.trace?.length ?? 0;
  const eventsFrom = c.world.events;
  if (appendsPerS > 0) {
    const every = 1000 / appendsPerS;
    const tick = (): void => {
      const i = n++;
      void store(i).append(`B${i % CLUSTER_BENCH_STREAMS}`, `b.${i % CLUSTER_BENCH_STREAMS}.x`, new Uint8Array(64), { msgId: `m${i}` }).then((r) => {
        if (r.ok) acked++;
        else refused++;
      });
      c.world.after(every, 'bench_append', tick);
    };
    c.world.after(every, 'bench_append', tick);
  }
  const t0 = performance.now();
  await c.run(CLUSTER_BENCH_VIRTUAL_MS);
  const wall = (performance.now() - t0) / 1000;
  let byLabel: Record<string, number> | null = null;
  if (c.world.trace !== null) {
    byLabel = {};
    for (const line of c.world.trace.slice(traceFrom)) {
      const label = line.split(' ')[2]!;
      byLabel[label] = (byLabel[label] ?? 0) + 1;
    }
  }
  return { simPerWall: CLUSTER_BENCH_VIRTUAL_MS / 1000 / wall, events: c.world.events - eventsFrom, acked, refused, byLabel };
}

export const REFERENCE_CLUSTER_SCENARIO: ClusterScenario = { seed: 1, nodes: 5, servers: 3, shardGroups: 16, durability: 'quorum', users: 50, rate: 50, safetyMs: 60_000, livenessSendMs: 2_000, faults: [] };

export const REFERENCE_SCENARIO: Scenario = { seed: 1, clients: 1000, rate: 0.05, safetyMs: 60_000, livenessSendMs: 2000, faults: [], schedulers: 2 };

export async function simBench(): Promise<object> {
  const kernel = await best(3, kernelEventsPerS);
  const hops = await best(3, domainHopsPerS);
  let simPerWall = 0;
  let serviceEvents = 0;
  let ref = null;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = await runScenario(REFERENCE_SCENARIO);
    const wall = (performance.now() - t0) / 1000;
    if (!r.ok) throw new Error(`reference scenario failed: ${JSON.stringify(r.violations.slice(0, 3))}`);
    if (r.simMs / 1000 / wall > simPerWall) {
      simPerWall = r.simMs / 1000 / wall;
      serviceEvents = r.events / wall;
      ref = { events: r.events, virtual_s: r.simMs / 1000, sent: r.stats.sent, delivered: r.stats.delivered, trace_hash: r.traceHash };
    }
  }
  const t0 = performance.now();
  let seedEvents = 0;
  for (let seed = 1; seed <= 100; seed++) {
    const r = await runScenario(scenarioFromSeed(seed));
    if (!r.ok) throw new Error(`seed ${seed} failed: ${JSON.stringify(r.violations.slice(0, 3))}`);
    seedEvents += r.events;
  }
  const seedWall = (performance.now() - t0) / 1000;
  let cluster: ClusterWorldRun | null = null;
  for (let i = 0; i < 3; i++) {
    const r = await clusterWorld(CLUSTER_BENCH_APPENDS_PER_S, false);
    if (cluster === null || r.simPerWall > cluster.simPerWall) cluster = r;
  }
  const quiet = await best(3, async () => (await clusterWorld(0, false)).simPerWall);
  let clusterSim = 0;
  let clusterRef = null;
  for (let i = 0; i < 3; i++) {
    const r = await runClusterScenario(REFERENCE_CLUSTER_SCENARIO);
    if (!r.ok) throw new Error(`reference cluster scenario failed: ${JSON.stringify(r.violations.slice(0, 3))}`);
    const perWall = r.simMs / r.wallMs;
    if (perWall > clusterSim) {
      clusterSim = perWall;
      clusterRef = { events: r.events, virtual_s: r.simMs / 1000, wall_s: r.wallMs / 1000, sent: r.stats.sent, delivered: r.stats.delivered, stored: r.stats.stored, trace_hash: r.traceHash };
    }
  }
  const costs = (await clusterWorld(CLUSTER_BENCH_APPENDS_PER_S, true)).byLabel!;
  const topCosts = Object.fromEntries(Object.entries(costs).sort((a, b) => b[1] - a[1]).slice(0, 12));
  return {
    bench: 'sim',
    when: new Date().toISOString(),
    machine: describeMachine(),
    method: {
      kernel_events: '1,000 self-rescheduling timers, trivial bodies, 2,000,000 events on one thread; best of 3',
      domain_hops: '200,000 round trips between two scheduler domains of one simulated node, envelopes through the production codec; best of 3',
      reference: 'one node (2 scheduler domains), 1,000 clients, 50 msg/s total, 60 virtual s of traffic + heal/drain/presence phases, no faults, checkers on; best of 3',
      ci_seed_mix: 'seeds 1..100 of `npm run sim` (swarm fault sets, 3-8 clients, 5-30 virtual s each), one pass',
      cluster_reference: '5 Iris nodes running the clustered core (16 shard groups, quorum) on 3 simulated NATS servers with JetStream, 50 users, 50 msg/s in total, 60 virtual s without faults plus the heal, liveness and presence phases, every cluster checker on; best of 3',
      cluster_world: '5 nodes (distribution, heartbeats every 500 ms, no service) on 3 simulated NATS servers with JetStream, 4 R3 streams, 50 appends/s in total (64 B, Msg-Id) round robin over nodes and streams, 120 virtual s; best of 3; events per kind from one traced run',
    },
    results: {
      kernel_events_per_s: kernel,
      domain_hops_per_s: hops,
      sim_seconds_per_wall_second: simPerWall,
      service_events_per_s: serviceEvents,
      reference_run: ref,
      ci_seeds_per_s: 100 / seedWall,
      ci_seed_events_per_s: seedEvents / seedWall,
      cluster_world_sim_seconds_per_wall_second: cluster!.simPerWall,
      cluster_world_events_per_virtual_s: cluster!.events / (CLUSTER_BENCH_VIRTUAL_MS / 1000),
      cluster_world_appends_acked: cluster!.acked,
      cluster_world_appends_refused: cluster!.refused,
      cluster_world_no_appends_sim_seconds_per_wall_second: quiet,
      cluster_world_events_by_kind: topCosts,
      cluster_sim_seconds_per_wall_second: clusterSim,
      cluster_reference_run: clusterRef,
    },
    ratios: {
      kernel_events_vs_target: Math.round((kernel / 1_000_000) * 100) / 100,
      sim_seconds_vs_target: Math.round((simPerWall / 100) * 100) / 100,
      cluster_world_sim_seconds_vs_target: Math.round((cluster!.simPerWall / 100) * 100) / 100,
      cluster_sim_seconds_vs_target: Math.round((clusterSim / 100) * 100) / 100,
    },
  };
}
