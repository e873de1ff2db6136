/**
 * Several cluster nodes inside one test process, so one set of behavioural rules
 * (test/support/distributionRules.ts) runs against both transports: real NATS (a 3-server
 * `nats-server` cluster, each node on its own client connection through a pausable proxy)
 * and SimNats (virtual time in a SimWorld). A node here is one scheduler plus the unchanged
 * Distribution; `isolate` cuts one node off from the others without telling anyone, `crash`
 * silences it like SIGKILL. Waits are on conditions with deadlines (virtual time in the sim).
 */
import { Distribution } from '../../runtime/Distribution.js';
import { silentLogger, type ClusterTransport, type Env } from '../../runtime/Env.js';
import type { MembershipEvent } from '../../runtime/Membership.js';
import type { ModuleSpec, ProcessBody } from '../../runtime/ProcessContext.js';
import { Scheduler, type SchedulerHost } from '../../runtime/Scheduler.js';
import { connectNats, type NatsTransport } from '../../runtime/node/NatsTransport.js';
import { cryptoRandom, realClock, realTimers } from '../../runtime/node/ProductionEnv.js';
import { inlineDirtyWork } from '../../runtime/InlineDirtyWork.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { simEnv, SimLog } from '../../sim/SimEnv.js';
import { SimNats } from '../../sim/SimNats.js';
import { SimWorld } from '../../sim/SimWorld.js';
import { NatsCluster } from './natsCluster.js';
import { TcpProxy } from './tcpProxy.js';

export interface HarnessNode {
  readonly name: string;
  readonly sched: Scheduler;
  readonly dist: Distribution;
  /** Every membership event this node saw, in order. */
  readonly events: MembershipEvent[];
}

export interface ClusterHarness {
  readonly transport: 'nats' | 'sim';
  readonly heartbeatMs: number;
  readonly downAfterMs: number;
  /** Slack allowed on top of downAfterMs for a down to be noticed (scheduling, load). */
  readonly detectSlackMs: number;
  /** Start a node and wait until it and every live node see each other up. */
  startNode(name: string): Promise<HarnessNode>;
  /** Cut `node` off from every other node (nobody is told; both sides go silent). */
  isolate(node: HarnessNode): Promise<void>;
  /** Undo `isolate`. */
  heal(node: HarnessNode): Promise<void>;
  /** Stop `node` like SIGKILL: no goodbye, no exit signals, silence. */
  crash(node: HarnessNode): Promise<void>;
  /** `node` loses its NATS link and gets it back `afterMs` later. */
  dropLink(node: HarnessNode, afterMs: number): Promise<void>;
  /** Resolve with `probe()`'s first truthy value; fail after `timeoutMs` (virtual in the sim). */
  waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs?: number): Promise<T>;
  /** Await `p` while the cluster runs (in the sim, time only moves while someone waits). */
  settle<T>(p: Promise<T>, timeoutMs?: number): Promise<T>;
  /** Let `ms` pass (for checks that something does not happen). */
  idle(ms: number): Promise<void>;
  /** Elapsed ms on the harness clock (virtual in the sim). */
  now(): number;
  close(): Promise<void>;
}

const CLUSTER = 'rules';
const DEFAULT_WAIT_MS = 10_000;

async function loadBody(spec: ModuleSpec): Promise<ProcessBody> {
  const mod = (await import(spec.module)) as Record<string, (...a: unknown[]) => ProcessBody>;
  const factory = mod[spec.fn];
  if (typeof factory !== 'function') throw new Error(`${spec.module} has no export ${spec.fn}`);
  return factory(...(spec.args ?? []));
}

let nextInc = 1_000;

/** One node: a scheduler whose envelopes for other nodes go to its Distribution. */
function makeNode(name: string, env: Env, transport: ClusterTransport, incarnation: number, timing: { heartbeatMs: number; downAfterMs: number }): HarnessNode {
  let dist: Distribution | null = null;
  const host: SchedulerHost = {
    route: (node, sched, e) => {
      if (node !== name) dist?.route(node, sched, e);
    },
    loadBody,
  };
  const sched = new Scheduler({ node: name, id: 0, inc: nextInc++, env, host });
  sched.onCrash = null;
  const events: MembershipEvent[] = [];
  dist = new Distribution({
    env,
    transport,
    cluster: CLUSTER,
    self: { name, incarnation, roles: ['test'], addresses: { where: `${name}.test` }, schedulers: 1 },
    local: { deliver: (_s, e) => sched.receiveEnvelope(e), canonical: (pid) => sched.canonical(pid) },
    heartbeatMs: timing.heartbeatMs,
    downAfterMs: timing.downAfterMs,
  });
  dist.subscribe((e) => events.push(e));
  dist.start();
  return { name, sched, dist, events };
}

function seesAll(nodes: readonly HarnessNode[]): boolean {
  for (const n of nodes) {
    const up = new Set(n.dist.peers().map((m) => m.name));
    for (const o of nodes) if (o !== n && !up.has(o.name)) return false;
  }
  return true;
}

// ---- real NATS ------------------------------------------------------------------------------

interface NatsNodeParts {
  node: HarnessNode;
  transport: NatsTransport;
  proxy: TcpProxy;
}

/** In-process nodes on a real 3-server NATS cluster, each through its own proxy. */
export async function natsHarness(timing = { heartbeatMs: 150, downAfterMs: 1_200 }): Promise<ClusterHarness> {
  const cluster = await NatsCluster.start();
  const parts = new Map<HarnessNode, NatsNodeParts>();
  const live: HarnessNode[] = [];
  let placed = 0;
  const env = (): Env => ({ clock: realClock, timers: realTimers, random: cryptoRandom(), log: silentLogger, dirty: inlineDirtyWork });
  const h: ClusterHarness = {
    transport: 'nats',
    ...timing,
    detectSlackMs: 1_500,
    async startNode(name) {
      const proxy = await TcpProxy.start(cluster.port(placed++ % cluster.size));
      const r = await connectNats({ servers: [proxy.url], name, ignoreClusterUpdates: true, reconnectWaitMs: 50, pingIntervalMs: 60_000 });
      if (!r.ok) throw new Error(r.message);
      const node = makeNode(name, { ...env(), transport: r.transport }, r.transport, Date.now() * 1024 + nextInc++, timing);
      parts.set(node, { node, transport: r.transport, proxy });
      live.push(node);
      await h.waitFor(`${name} to join`, () => seesAll(live));
      return node;
    },
    async isolate(node) {
      parts.get(node)!.proxy.pause();
    },
    async heal(node) {
      parts.get(node)!.proxy.resume();
    },
    async crash(node) {
      const p = parts.get(node)!;
      live.splice(live.indexOf(node), 1);
      await p.proxy.close();
      await p.transport.close();
      await node.dist.stop();
      node.sched.shutdown('killed');
    },
    async dropLink(node, afterMs) {
      const p = parts.get(node)!;
      p.proxy.pause();
      p.proxy.sever();
      await h.waitFor(`${node.name} to notice its lost link`, () => !node.dist.connected, 5_000);
      await h.idle(afterMs);
      p.proxy.resume();
    },
    async waitFor(what, probe, timeoutMs = DEFAULT_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async settle(p, timeoutMs = DEFAULT_WAIT_MS) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not settled within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        return await Promise.race([p, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    idle: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => performance.now(),
    async close() {
      for (const p of parts.values()) {
        await p.node.dist.stop();
        p.node.sched.shutdown('shutdown');
        await p.transport.close();
        await p.proxy.close();
      }
      await cluster.stopAll();
    },
  };
  return h;
}

// ---- SimNats --------------------------------------------------------------------------------

/** In-process nodes on SimNats in virtual time (seeded; defaults of the real timings). */
export function simHarness(seed = 7, timing = { heartbeatMs: 500, downAfterMs: 2_000 }): ClusterHarness {
  const world = new SimWorld({ seed });
  const nats = new SimNats(world, world.random('nats'));
  const owners = new Map<HarnessNode, SimOwner>();
  const live: HarnessNode[] = [];
  let incs = 0;
  const h: ClusterHarness = {
    transport: 'sim',
    ...timing,
    detectSlackMs: timing.downAfterMs / 8 + 50,
    async startNode(name) {
      const owner: SimOwner = { name, alive: true, pausedUntil: 0, backlog: [] };
      const env = simEnv(world, owner, { skewMs: 0, wallJumpMs: 0 }, world.random(`${name}/${++incs}`), new SimLog(world, name, false));
      const transport = nats.connect(name, owner);
      const node = makeNode(name, { ...env, transport }, transport, ++incs, timing);
      owners.set(node, owner);
      live.push(node);
      await h.waitFor(`${name} to join`, () => seesAll(live));
      return node;
    },
    async isolate(node) {
      for (const o of owners.keys()) if (o !== node) nats.partition(node.name, o.name);
    },
    async heal() {
      nats.heal();
    },
    async crash(node) {
      live.splice(live.indexOf(node), 1);
      owners.get(node)!.alive = false;
    },
    async dropLink(node, afterMs) {
      nats.disconnect(node.name);
      await h.idle(afterMs);
      nats.reconnect(node.name);
    },
    async waitFor(what, probe, timeoutMs = DEFAULT_WAIT_MS) {
      const deadline = world.now + timeoutMs;
      for (;;) {
        const v = probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (world.now >= deadline) throw new Error(`timed out after ${timeoutMs} virtual ms waiting for ${what}`);
        await world.runUntil(Math.min(deadline, world.now + 5));
      }
    },
    async settle(p, timeoutMs = DEFAULT_WAIT_MS) {
      let done = false;
      let value: unknown;
      let error: unknown;
      let failed = false;
      p.then(
        (v) => {
          done = true;
          value = v;
        },
        (e: unknown) => {
          done = true;
          failed = true;
          error = e;
        },
      );
      await h.waitFor('a promise to settle', () => done, timeoutMs);
      if (failed) throw error;
      return value as Awaited<typeof p>;
    },
    async idle(ms) {
      await world.runUntil(world.now + ms);
    },
    now: () => world.now,
    async close() {
      for (const [node, owner] of owners) {
        if (owner.alive) node.sched.shutdown('shutdown');
        owner.alive = false;
      }
    },
  };
  return h;
}
