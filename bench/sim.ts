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
 */
import { describeMachine } from './machine.js';
import { SimWorld } from '../sim/SimWorld.js';
import { runScenario } from '../sim/Simulation.js';
import { scenarioFromSeed, type Scenario } from '../sim/Scenario.js';
import { Scheduler } from '../runtime/Scheduler.js';
import { domainHost } from '../sim/DomainHost.js';
import { simEnv, SimLog } from '../sim/SimEnv.js';
import { Pid } from '../runtime/Pid.js';

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
  return {
    bench: 'sim',
    when: new Date().toISOString(),
    machine: describeMachine(),
    method: {
      kernel_events: '1,000 self-rescheduling timers, trivial bodies, 2,000,000 events on one thread; best of 3',
      domain_hops: '200,000 round trips between two scheduler domains of one simulated node, envelopes through the production codec; best of 3',
      reference: 'one node (2 scheduler domains), 1,000 clients, 50 msg/s total, 60 virtual s of traffic + heal/drain/presence phases, no faults, checkers on; best of 3',
      ci_seed_mix: 'seeds 1..100 of `npm run sim` (swarm fault sets, 3-8 clients, 5-30 virtual s each), one pass',
    },
    results: {
      kernel_events_per_s: kernel,
      domain_hops_per_s: hops,
      sim_seconds_per_wall_second: simPerWall,
      service_events_per_s: serviceEvents,
      reference_run: ref,
      ci_seeds_per_s: 100 / seedWall,
      ci_seed_events_per_s: seedEvents / seedWall,
    },
    ratios: {
      kernel_events_vs_target: Math.round((kernel / 1_000_000) * 100) / 100,
      sim_seconds_vs_target: Math.round((simPerWall / 100) * 100) / 100,
    },
  };
}
