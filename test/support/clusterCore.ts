/**
 * Clustered core nodes inside one test process, on a real 3-server NATS cluster with JetStream:
 * each node is one scheduler with the unchanged Distribution, its own NATS connections (core
 * NATS and the JetStream store) through its own pausable proxy, its own LMDB directory, and the
 * clustered core assembled by server/ClusterCore.ts (on core/cluster/ClusterCore.ts: partition
 * guard, control plane, presence feed), exactly as a node process assembles it.
 * `crash` stops a node like SIGKILL (no goodbye, connections cut), `isolate`/`heal` cut it off
 * from NATS and back without telling it, `sever` resets its NATS connections (it sees its link
 * drop and reconnects at once, as when its nats-server dies). Waits are on conditions with deadlines.
 *
 * The StreamStore is the production binding (runtime/node/JetStreamStore.ts) on the node's
 * own NATS connection, as on a real node.
 */
import type { ControlPlaneHandle, ControlPlaneSettings } from '../../core/cluster/ControlPlane.js';
import { startGroupServices } from '../../core/cluster/GroupServices.js';
import type { PartitionGuard } from '../../core/cluster/PartitionGuard.js';
import type { PresenceFeed } from '../../core/cluster/PresenceFeed.js';
import { clusterStorageTables, routerShardName } from '../../core/cluster/ShardGroups.js';
import { CORE_DEFAULTS } from '../../core/CoreSettings.js';
import type { PresenceTable } from '../../core/Presence.js';
import { EDGE_DEFAULTS } from '../../edge/EdgeSettings.js';
import { startClusterCore, type ClusterCore } from '../../server/ClusterCore.js';
import { Distribution } from '../../runtime/Distribution.js';
import { silentLogger, type Env, type Logger, type StorageEngine } from '../../runtime/Env.js';
import { inlineDirtyWork } from '../../runtime/InlineDirtyWork.js';
import type { MembershipEvent } from '../../runtime/Membership.js';
import type { ModuleSpec, ProcessBody } from '../../runtime/ProcessContext.js';
import { Scheduler, type SchedulerHost } from '../../runtime/Scheduler.js';
import { openLmdbStorage, type LmdbStorage } from '../../runtime/node/LmdbStorage.js';
import { connectNats, type NatsTransport } from '../../runtime/node/NatsTransport.js';
import { JetStreamStore } from '../../runtime/node/JetStreamStore.js';
import { cryptoRandom, realClock, realTimers } from '../../runtime/node/ProductionEnv.js';
import { NatsCluster } from './natsCluster.js';
import { tempDir } from './storage.js';
import { TcpProxy } from './tcpProxy.js';

export interface CoreNode {
  readonly name: string;
  readonly incarnation: number;
  readonly sched: Scheduler;
  readonly dist: Distribution;
  readonly storage: LmdbStorage;
  readonly guard: PartitionGuard;
  readonly plane: ControlPlaneHandle;
  readonly presence: PresenceTable;
  readonly feed: PresenceFeed;
  /** The assembled core (server/ClusterCore.ts). */
  readonly core: ClusterCore;
  /** Every membership event, in order. */
  readonly events: MembershipEvent[];
  /** Safe-mode changes, in order. */
  readonly safeModes: boolean[];
  /** The storage each group's services got when this node last started serving it. */
  readonly served: Map<number, StorageEngine>;
  alive: boolean;
}

export interface CoreClusterOptions {
  expectedNodes: number;
  settings: ControlPlaneSettings;
  heartbeatMs?: number;
  downAfterMs?: number;
  graceMs?: number;
}

interface Parts {
  transport: NatsTransport;
  streams: JetStreamStore;
  proxy: TcpProxy;
  dir: { remove(): void };
}

const CLUSTER = 'coretest';
const DEFAULT_WAIT_MS = 15_000;

async function loadBody(spec: ModuleSpec): Promise<ProcessBody> {
  const mod = (await import(spec.module)) as Record<string, (...a: unknown[]) => ProcessBody>;
  return mod[spec.fn]!(...(spec.args ?? []));
}

let nextInc = 1;

/** Set CLUSTER_TEST_LOG=1 to see every node's log lines (debugging a failing run). */
function logFor(node: string): Logger {
  if (process.env['CLUSTER_TEST_LOG'] === undefined) return silentLogger;
  const line = (level: string) => (fields: object, msg: string) => console.log(`${(performance.now() / 1000).toFixed(3)} ${node} ${level} ${msg} ${JSON.stringify(fields)}`);
  return { debug: () => undefined, info: line('info'), warn: line('warn'), error: line('error') };
}

export class CoreCluster {
  readonly nodes: CoreNode[] = [];
  private readonly parts = new Map<CoreNode, Parts>();
  private placed = 0;

  private constructor(
    readonly nats: NatsCluster,
    readonly o: Required<CoreClusterOptions>,
  ) {}

  static async start(o: CoreClusterOptions): Promise<CoreCluster> {
    const nats = await NatsCluster.start();
    return new CoreCluster(nats, { heartbeatMs: 150, downAfterMs: 1_200, graceMs: 300, ...o });
  }

  get live(): CoreNode[] {
    return this.nodes.filter((n) => n.alive);
  }

  node(name: string): CoreNode {
    const n = this.nodes.find((x) => x.name === name && x.alive);
    if (n === undefined) throw new Error(`no live node ${name}`);
    return n;
  }

  /** Start a core node and wait until it and every live node see each other. */
  async startNode(name: string): Promise<CoreNode> {
    const proxy = await TcpProxy.start(this.nats.port(this.placed++ % this.nats.size));
    const r = await connectNats({ servers: [proxy.url], name, ignoreClusterUpdates: true, reconnectWaitMs: 50, pingIntervalMs: 60_000 });
    if (!r.ok) throw new Error(r.message);
    const transport = r.transport;
    const streams = new JetStreamStore(transport.connection);
    const dir = tempDir(`iris-core-${name}-`);
    const opened = openLmdbStorage({ path: dir.path, maxTables: clusterStorageTables(this.o.settings.shardGroups) });
    if (!opened.ok) throw new Error(opened.message);
    const storage = opened.engine;
    const env: Env = { clock: realClock, timers: realTimers, random: cryptoRandom(), log: logFor(name), dirty: inlineDirtyWork, transport, streams, storage };
    const incarnation = Date.now() * 1024 + nextInc++;
    let dist: Distribution | null = null;
    const host: SchedulerHost = {
      route: (node, s, e) => {
        if (node !== name) dist?.route(node, s, e);
      },
      loadBody,
    };
    const sched = new Scheduler({ node: name, id: 0, inc: nextInc++, env, host });
    sched.onCrash = null;
    const self = { name, incarnation, roles: ['edge', 'core'], addresses: {}, schedulers: 1 };
    dist = new Distribution({
      env,
      transport,
      cluster: CLUSTER,
      self,
      local: { deliver: (_s, e) => sched.receiveEnvelope(e), canonical: (pid) => sched.canonical(pid) },
      heartbeatMs: this.o.heartbeatMs,
      downAfterMs: this.o.downAfterMs,
    });
    const events: MembershipEvent[] = [];
    dist.subscribe((e) => events.push(e));
    dist.start();
    const served = new Map<number, StorageEngine>();
    const st = this.o.settings;
    const started = await startClusterCore(
      sched,
      env,
      storage,
      {
        ...CORE_DEFAULTS,
        ...EDGE_DEFAULTS,
        cluster_name: CLUSTER,
        expected_cluster_nodes: this.o.expectedNodes,
        partition_grace_ms: this.o.graceMs,
        cluster_down_after_ms: this.o.downAfterMs,
        shard_groups: st.shardGroups,
        durability: st.durability,
        ownership_refresh_ms: st.ownershipRefreshMs,
        rebalance_max_moves: st.rebalanceMaxMoves,
      },
      {
        membership: dist,
        fanoutAllowed: () => true,
        startServices: (ctx, g, gs, deps) => {
          served.set(g, gs);
          return startGroupServices(ctx, g, gs, deps);
        },
      },
    );
    if (!started.ok) throw new Error(started.message);
    const core = started.core;
    const { guard, plane, presence, feed } = core;
    const safeModes: boolean[] = [];
    guard.subscribe((s) => safeModes.push(s));
    const node: CoreNode = { name, incarnation, sched, dist, storage, guard, plane, presence, feed, core, events, safeModes, served, alive: true };
    this.nodes.push(node);
    this.parts.set(node, { transport, streams, proxy, dir });
    await this.waitFor(`${name} to join`, () => this.seesAll());
    return node;
  }

  /** Stop `node` like SIGKILL: connections cut, no goodbye, its processes gone. */
  async crash(node: CoreNode): Promise<void> {
    const p = this.parts.get(node)!;
    node.alive = false;
    await p.proxy.close();
    await p.transport.close();
    await node.dist.stop();
    node.core.stop();
    node.sched.shutdown('killed');
    await node.storage.close();
  }

  /** Cut `node` off from NATS (nobody is told). */
  isolate(node: CoreNode): void {
    this.parts.get(node)!.proxy.pause();
  }

  heal(node: CoreNode): void {
    this.parts.get(node)!.proxy.resume();
  }

  /** Reset `node`'s NATS connections: its link drops and it reconnects at once. */
  sever(node: CoreNode): void {
    this.parts.get(node)!.proxy.sever();
  }

  /** Whether `name` is serving group `g` (its replica is the owner and `shard.<g>` is registered). */
  serving(node: CoreNode, g: number): boolean {
    return node.plane.replicas.get(g)?.phase === 'owner' && node.sched.whereis(routerShardName(g)) !== undefined;
  }

  /** Every group served by its owner, no move under way, standbys all in place, every node agreeing. */
  settled(): boolean {
    const any = this.live[0];
    if (any === undefined) return false;
    const eligible = this.live.filter((x) => !any.plane.table.draining.some((d) => d.name === x.name && d.incarnation === x.incarnation));
    const standbys = Math.min(2, eligible.length - 1);
    for (const g of any.plane.groups.all()) {
      const r = any.plane.table.get(g);
      const n = this.live.find((x) => x.name === r?.owner);
      if (r === undefined || n === undefined || !this.serving(n, g)) return false;
      // Moves done: no hand-off under way, every standby slot filled by a live node.
      if (r.successor !== null || r.standbys.length !== standbys || !r.standbys.every((s) => eligible.some((x) => x.name === s))) return false;
      for (const x of this.live) if (x.plane.table.get(g)?.epoch !== r.epoch) return false;
    }
    return true;
  }

  async waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined && v !== null && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    for (const n of this.live) {
      const p = this.parts.get(n)!;
      n.alive = false;
      n.core.stop();
      n.sched.shutdown('shutdown');
      await n.dist.stop();
      await p.transport.close();
      await p.proxy.close();
      await n.storage.close();
    }
    for (const p of this.parts.values()) p.dir.remove();
    await this.nats.stopAll();
  }

  private seesAll(): boolean {
    const live = this.live;
    for (const n of live) {
      const up = new Set(n.dist.peers().map((m) => m.name));
      for (const o of live) if (o !== n && !up.has(o.name)) return false;
    }
    return true;
  }
}
