/**
 * A simulated deployment: N Iris nodes and M NATS servers in one world, all from one seed.
 * Each node (sim/SimNode.ts) runs the unchanged runtime with the distribution layer on its own
 * client connection to the server model (sim/SimNats.ts), the JetStream model
 * (sim/SimJetStream.ts) as its Env's `streams`, and its own simulated disk; node i first
 * connects to server i mod M. Each node runs the clustered core (`core`), or the whole service
 * in cluster mode (`service`: edge and core, as a node process runs them); `service: true` on
 * a node spec starts the single-node service there instead.
 *
 * The fault API is what scenarios and harnesses drive: Iris nodes crash, restart, pause, skew
 * and jump their clocks; servers are killed (page cache kept), crash with their OS (unsynced
 * data lost), restart and pause; partitions (symmetric or one-way) between a node and a
 * server, two servers, or two nodes, healed one pair or all at once; a node's link dropped
 * and given back. Waiting is in virtual time (`run`, `waitFor`, `settle`).
 */
import type { IrisConfig } from '../server/NodeConfig.js';
import { SimJetStream, type SimJetStreamOptions } from './SimJetStream.js';
import { SimNats, type SimNatsOptions } from './SimNats.js';
import { SimNode, type SimNodeCore, type SimNodeService } from './SimNode.js';
import { SimWorld } from './SimWorld.js';

/** The cluster name simulated nodes use when none is given. */
export const SIM_CLUSTER_NAME = 'sim';
/** Servers in a deployment when none are given (an R3 cluster). */
export const SIM_CLUSTER_SERVERS = 3;
/** Roles of a node when none are given (`roles` default: both). */
export const SIM_CLUSTER_ROLES: readonly string[] = ['edge', 'core'];
/** Virtual ms between checks of `waitFor`. */
const WAIT_STEP_MS = 10;
/** Virtual ms `waitFor` and `settle` wait when not told. */
const DEFAULT_WAIT_MS = 30_000;

export interface SimClusterNodeSpec {
  readonly name: string;
  readonly roles?: readonly string[];
  /** The server it connects to first (default: server i mod M). */
  readonly server?: string;
  readonly schedulers?: number;
  /** Start the single-node messaging service on it (needs `config`). */
  readonly service?: boolean;
  /** Run the clustered core on it (default: the cluster's `core`, on nodes with the core role). */
  readonly core?: SimNodeCore | null;
  readonly config?: IrisConfig;
}

export interface SimClusterOptions {
  seed: number;
  /** A count (nodes n0..n{N-1}) or one spec per node. */
  nodes: number | readonly SimClusterNodeSpec[];
  /** A count (servers nats1..natsM) or their names. Default SIM_CLUSTER_SERVERS. */
  servers?: number | readonly string[];
  cluster?: string;
  /** Scheduler domains per node (default 1). */
  schedulers?: number;
  /** Distribution timings (defaults CLUSTER_HEARTBEAT_MS, CLUSTER_DOWN_AFTER_MS). */
  heartbeatMs?: number;
  downAfterMs?: number;
  nats?: Omit<SimNatsOptions, 'servers'>;
  /** JetStream model options; `false` for none. */
  jetstream?: SimJetStreamOptions | false;
  /** Run the clustered core (core/cluster/ClusterCore.ts) on every node with the core role. */
  core?: SimNodeCore;
  /** Run the whole service in cluster mode (edge and clustered core, server/IrisService.ts) on every node instead. */
  service?: SimNodeService;
  recordTrace?: boolean;
  recordCheckpoints?: boolean;
  keepLogLines?: boolean;
}

export class SimCluster {
  readonly world: SimWorld;
  readonly nats: SimNats;
  readonly jetstream: SimJetStream | null;
  readonly nodes: readonly SimNode[];
  readonly servers: readonly string[];
  private inc = 1;

  constructor(opts: SimClusterOptions) {
    this.world = new SimWorld({ seed: opts.seed, recordTrace: opts.recordTrace === true, recordCheckpoints: opts.recordCheckpoints === true });
    const servers = typeof opts.servers === 'object' ? [...opts.servers] : Array.from({ length: opts.servers ?? SIM_CLUSTER_SERVERS }, (_, i) => `nats${i + 1}`);
    this.servers = servers;
    this.nats = new SimNats(this.world, this.world.random('nats'), { ...opts.nats, servers });
    this.jetstream = opts.jetstream === false ? null : new SimJetStream(this.world, this.nats, opts.jetstream ?? {});
    const specs: readonly SimClusterNodeSpec[] = typeof opts.nodes === 'number' ? Array.from({ length: opts.nodes }, (_, i) => ({ name: `n${i}` })) : opts.nodes;
    const names = new Set<string>();
    const coreOf = (spec: SimClusterNodeSpec): SimNodeCore | undefined => (spec.core === null ? undefined : spec.core ?? ((spec.roles ?? SIM_CLUSTER_ROLES).includes('core') ? opts.core : undefined));
    this.nodes = specs.map((spec, i) => {
      if (names.has(spec.name) || servers.includes(spec.name)) throw new Error(`SimCluster: node name ${spec.name} is used twice`);
      names.add(spec.name);
      return new SimNode(this.world, {
        name: spec.name,
        schedulers: spec.schedulers ?? opts.schedulers ?? 1,
        service: spec.service === true,
        ...(spec.config !== undefined ? { config: spec.config } : {}),
        keepLogLines: opts.keepLogLines === true,
        cluster: {
          nats: this.nats,
          ...(this.jetstream !== null ? { jetstream: this.jetstream } : {}),
          cluster: opts.cluster ?? SIM_CLUSTER_NAME,
          server: spec.server ?? servers[i % servers.length]!,
          roles: spec.roles ?? SIM_CLUSTER_ROLES,
          ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
          ...(opts.downAfterMs !== undefined ? { downAfterMs: opts.downAfterMs } : {}),
          ...(coreOf(spec) !== undefined ? { core: coreOf(spec)! } : {}),
          ...(opts.service !== undefined ? { service: opts.service } : {}),
        },
      }, () => this.inc++);
    });
  }

  /** Boot every node. */
  start(): void {
    for (const n of this.nodes) n.boot();
  }

  node(name: string): SimNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`SimCluster: no node ${name}`);
    return n;
  }

  get now(): number {
    return this.world.now;
  }

  /** The trace hash so far, as 8 hex digits. */
  traceHash(): string {
    return this.world.hash.toString(16).padStart(8, '0');
  }

  // ---- time ---------------------------------------------------------------------------------

  /** Let `ms` of virtual time pass. */
  async run(ms: number): Promise<void> {
    await this.world.runUntil(this.world.now + ms);
  }

  /** Resolve with `probe()`'s first truthy value, checked every few virtual ms; throw after `timeoutMs`. */
  async waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    const deadline = this.world.now + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined && v !== null && v !== false) return v;
      if (this.world.now >= deadline) throw new Error(`timed out after ${timeoutMs} virtual ms waiting for ${what}`);
      await this.world.runUntil(Math.min(deadline, this.world.now + WAIT_STEP_MS));
    }
  }

  /** Run the world until `p` settles (at most `timeoutMs` virtual ms). */
  async settle<T>(p: Promise<T>, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    let failed = false;
    p.then(
      (v) => {
        done = true;
        value = v;
      },
      (e: unknown) => {
        done = failed = true;
        error = e;
      },
    );
    const deadline = this.world.now + timeoutMs;
    while (!done) {
      if (this.world.now >= deadline) throw new Error(`not settled within ${timeoutMs} virtual ms`);
      await this.world.runUntil(Math.min(deadline, this.world.now + 1));
    }
    if (failed) throw error;
    return value as T;
  }

  // ---- Iris nodes -----------------------------------------------------------------------------

  /** SIGKILL of the Iris process; it stays down until `restartNode`. */
  crashNode(name: string): void {
    this.world.note(`fault:crash_node:${name}`, 0);
    const n = this.node(name);
    n.heldDown = true;
    n.crash();
  }

  /** The disk of a stopped node is replaced by an empty one: it comes back as a new node with no data. */
  wipeNode(name: string): void {
    const n = this.node(name);
    if (n.status !== 'down') throw new Error(`wipeNode: ${name} is not down`);
    this.world.note(`fault:wipe_node:${name}`, 0);
    n.disk.wipe();
  }

  restartNode(name: string): void {
    this.world.note(`fault:restart_node:${name}`, 0);
    const n = this.node(name);
    n.heldDown = false;
    n.boot();
  }

  pauseNode(name: string, ms: number): void {
    this.world.note(`fault:pause_node:${name}`, ms);
    this.node(name).pause(ms);
  }

  /**
   * Offset the node's clocks (monotonic and wall) by `ms` from virtual time. A constant skew:
   * set it before the node starts; on a running node it would be a monotonic clock jump,
   * which real clocks do not make (use `jumpClock` for the wall clock).
   */
  skewClock(name: string, ms: number): void {
    this.world.note(`fault:skew:${name}`, ms);
    this.node(name).clock.skewMs = ms;
  }

  /** Jump the node's wall clock by `ms` (forward or back). */
  jumpClock(name: string, ms: number): void {
    this.world.note(`fault:jump:${name}`, ms);
    this.node(name).clock.wallJumpMs += ms;
  }

  // ---- NATS servers ---------------------------------------------------------------------------

  /** kill -9 of nats-server: its page cache (everything it wrote) survives. */
  killServer(name: string): void {
    this.world.note(`fault:kill_server:${name}`, 0);
    this.nats.crashServer(name, 'kill');
  }

  /** OS crash or power loss under nats-server: what it did not sync is gone. */
  osCrashServer(name: string): void {
    this.world.note(`fault:os_crash_server:${name}`, 0);
    this.nats.crashServer(name, 'os');
  }

  restartServer(name: string): void {
    this.world.note(`fault:restart_server:${name}`, 0);
    this.nats.restartServer(name);
  }

  pauseServer(name: string, ms: number): void {
    this.world.note(`fault:pause_server:${name}`, ms);
    this.nats.pauseServer(name, ms);
  }

  // ---- network ------------------------------------------------------------------------------

  /** Cut `a` from `b` (nodes or servers); `oneWay`: only what `a` sends to `b` is lost. */
  partition(a: string, b: string, oneWay = false): void {
    this.world.note(`fault:partition:${a}:${b}`, oneWay ? 1 : 2);
    this.nats.partition(a, b, oneWay);
  }

  /** Cut server `name` from every other server and every node (silently: each side notices at its ping timeout). */
  isolateServer(name: string): void {
    for (const s of this.servers) if (s !== name) this.partition(name, s);
    for (const n of this.nodes) this.partition(name, n.name);
  }

  /** Cut node `name` from every server (silently). */
  isolateNode(name: string): void {
    for (const s of this.servers) this.partition(name, s);
  }

  /** Heal the cut between `a` and `b`, or every cut. */
  heal(a?: string, b?: string): void {
    this.world.note('fault:heal', 0);
    if (a !== undefined && b !== undefined) this.nats.healPair(a, b);
    else this.nats.heal();
  }

  /** The node's link resets and stays down until `reconnectNode`. */
  disconnectNode(name: string): void {
    this.world.note(`fault:disconnect:${name}`, 0);
    this.nats.disconnect(name);
  }

  reconnectNode(name: string): void {
    this.world.note(`fault:reconnect:${name}`, 0);
    this.nats.reconnect(name);
  }

  // ---- views --------------------------------------------------------------------------------

  /** The nodes `name` sees up (itself included), by name; empty when it is down. */
  viewOf(name: string): string[] {
    const d = this.node(name).dist;
    return d === null ? [] : d.members().map((m) => m.name);
  }

  /** Whether every running node sees exactly the running nodes up. */
  converged(): boolean {
    const running = this.nodes.filter((n) => n.dist !== null).map((n) => n.name).sort();
    return running.every((n) => sameList(this.viewOf(n), running));
  }

  /** The server node `name` is connected to now (null while its link is down). */
  serverOf(name: string): string | null {
    const c = this.node(name).nats;
    return c === null || c.liveSession() === null ? null : c.lastServer;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
