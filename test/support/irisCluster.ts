/**
 * A cluster of real Iris node processes (`iris start` children, test/support/irisChild.ts) on a
 * real 3-server NATS cluster (test/support/natsCluster.ts), loopback only. Each node reaches
 * NATS through its own pausable proxy (test/support/tcpProxy.ts) pinned to one server, so a test
 * can cut one node off (`isolate`) and let it back (`heal`) without telling it. Nodes are
 * killed (SIGKILL) or stopped (SIGTERM) by pid, or leave by themselves (a drained node exits:
 * `exited`), and start again on their data directory (`restart`); `close` stops every process
 * it started and removes every directory. Waits poll the nodes' HTTP pages with deadlines.
 *
 * The cluster bench (bench/cluster.ts) uses the same cluster as it would run in production:
 * `timings: 'production'` leaves every timing, `shard_groups` and `schedulers` at their
 * defaults, and `direct: true` gives each node every NATS server (discovery on) with no proxy
 * (no isolate/heal then; nothing of the nodes' traffic passes through the calling process).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterStatusBody } from '../../server/ServiceCore.js';
import type { ServiceHealth } from '../../server/IrisService.js';
import { startIrisChild, type IrisChild } from './irisChild.js';
import { NatsCluster } from './natsCluster.js';
import { httpText } from './nodeHttp.js';
import { TcpProxy } from './tcpProxy.js';

/** The admin API's bearer token on every node of a test cluster. */
export const TEST_ADMIN_TOKEN = 'test-cluster-admin-token-0123456789abcdef';

export interface ClusterNodeProcess {
  readonly name: string;
  readonly child: IrisChild;
  /** The node's pausable link to NATS; null when the cluster is `direct`. */
  readonly proxy: TcpProxy | null;
  readonly dir: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  alive: boolean;
}

export interface IrisClusterOptions {
  /** Cluster settings every node gets (`key=value`), after the defaults below. */
  sets?: readonly string[];
  /** The NATS servers nodes connect through, in turn (default: all); the others carry no node (a test may kill one). */
  pinTo?: readonly number[];
  /**
   * `test` (default): the short timings below, 6 shard groups, one scheduler per node.
   * `production`: every timing, `shard_groups` and `schedulers` left at their defaults.
   */
  timings?: 'test' | 'production';
  /**
   * Nodes connect straight to every NATS server (discovery on) instead of through a pausable
   * proxy pinned to one server; `isolate`/`heal` are then unavailable (default false).
   */
  direct?: boolean;
}

/** What every node of a test or bench cluster gets. */
const COMMON_SETS = ['cluster_name=itest', 'expected_cluster_nodes=3', `admin_token=${TEST_ADMIN_TOKEN}`];

/** Timings short enough for tests (the defaults are for production). */
const TEST_TIMING_SETS = [
  'shard_groups=6',
  'cluster_heartbeat_ms=200',
  'cluster_down_after_ms=1000',
  'partition_grace_ms=300',
  'ownership_refresh_ms=500',
  'route_retry_ms=300',
  'schedulers=1',
];

const POLL_MS = 20;
const START_MS = 30_000;

export class IrisCluster {
  readonly nodes: ClusterNodeProcess[] = [];
  private placed = 0;
  private readonly dirs: string[] = [];

  private constructor(
    readonly nats: NatsCluster,
    private readonly sets: readonly string[],
    private readonly pinTo: readonly number[],
    private readonly direct: boolean,
  ) {}

  static async start(o: IrisClusterOptions = {}): Promise<IrisCluster> {
    const nats = await NatsCluster.start();
    const timings = (o.timings ?? 'test') === 'test' ? TEST_TIMING_SETS : [];
    const direct = o.direct ?? false;
    const link = direct ? [`nats_servers=${nats.urls.join(',')}`] : ['nats_discover_servers=false'];
    const pinTo = o.pinTo ?? Array.from({ length: nats.size }, (_, i) => i);
    return new IrisCluster(nats, [...COMMON_SETS, ...timings, ...link, ...(o.sets ?? [])], pinTo, direct);
  }

  get live(): ClusterNodeProcess[] {
    return this.nodes.filter((n) => n.alive);
  }

  node(name: string): ClusterNodeProcess {
    const n = this.nodes.find((x) => x.name === name && x.alive);
    if (n === undefined) throw new Error(`no live node ${name}`);
    return n;
  }

  /** Start node `name` (a fresh data directory unless `dir` is given) and wait until it serves. */
  async startNode(name: string, extra: readonly string[] = [], dir?: string): Promise<ClusterNodeProcess> {
    const proxy = this.direct ? null : await TcpProxy.start(this.nats.port(this.pinTo[this.placed++ % this.pinTo.length]!));
    const data = dir ?? mkdtempSync(join(tmpdir(), `iris-cluster-${name}-`));
    if (dir === undefined) this.dirs.push(data);
    const log = process.env['CLUSTER_TEST_LOG'] !== undefined ? ['log_level=info'] : [];
    const link = proxy === null ? [] : [`nats_servers=${proxy.url}`];
    const child = await startIrisChild(data, [...this.sets, `node_name=${name}`, ...link, ...log, ...extra], START_MS).catch(async (err: unknown) => {
      await proxy?.close();
      throw err;
    });
    const n: ClusterNodeProcess = { name, child, proxy, dir: data, tcpPort: child.tcpPort, httpPort: child.httpPort, alive: true };
    this.nodes.push(n);
    return n;
  }

  /** SIGKILL `name` by pid (its NATS connections drop with it). */
  async kill(name: string): Promise<void> {
    const n = this.node(name);
    n.alive = false;
    await n.child.kill();
    await n.proxy?.close();
  }

  /** SIGTERM `name` by pid (a cluster node drains first when it may); resolves with its exit code. */
  async stop(name: string, timeoutMs = 30_000): Promise<number | null> {
    const n = this.node(name);
    const code = await n.child.stop(timeoutMs);
    n.alive = false;
    await n.proxy?.close();
    return code;
  }

  /** Wait until `name` exits by itself (a drained node does); resolves with its exit code. */
  async exited(name: string, timeoutMs = 30_000): Promise<number | null> {
    const n = this.node(name);
    const code = await n.child.waitExit(timeoutMs);
    n.alive = false;
    await n.proxy?.close();
    return code;
  }

  /** Start `name` again on the data directory of its last life. */
  async restart(name: string): Promise<ClusterNodeProcess> {
    const last = this.nodes.filter((x) => x.name === name).pop();
    if (last === undefined || last.alive) throw new Error(`${name} is running or was never started`);
    return this.startNode(name, [], last.dir);
  }

  /** Cut `name` off from NATS: its proxy stops forwarding, nobody is told. */
  isolate(name: string): void {
    this.proxyOf(name).pause();
  }

  heal(name: string): void {
    this.proxyOf(name).resume();
  }

  private proxyOf(name: string): TcpProxy {
    const p = this.node(name).proxy;
    if (p === null) throw new Error('isolate/heal: this cluster\'s nodes have no proxy (direct)');
    return p;
  }

  async health(name: string): Promise<ServiceHealth> {
    return JSON.parse(await httpText(this.node(name).httpPort, '/health')) as ServiceHealth;
  }

  async status(name: string): Promise<ClusterStatusBody> {
    return JSON.parse(await httpText(this.node(name).httpPort, '/cluster/status')) as ClusterStatusBody;
  }

  /**
   * Every live node sees every other, none is in safe mode, and every node's /cluster/status
   * shows each group owned by a live node that serves it (head reported), with the same owner
   * and epoch everywhere. Resolves with one node's status.
   */
  async waitSettled(timeoutMs = 30_000): Promise<ClusterStatusBody> {
    return this.waitFor('every shard group served by a live owner, seen alike by every node', async () => {
      const live = this.live;
      const names = new Set(live.map((n) => n.name));
      let first: ClusterStatusBody | null = null;
      for (const n of live) {
        const h = await this.health(n.name).catch(() => null);
        if (h === null || h.safe_mode || h.node_count !== live.length) return null;
        const s = await this.status(n.name).catch(() => null);
        if (s === null || s.members.length !== live.length) return null;
        for (const g of s.groups) if (g.owner === null || !names.has(g.owner) || g.head_seq === null) return null;
        if (first === null) first = s;
        else if (s.groups.some((g, i) => g.owner !== first!.groups[i]!.owner || g.epoch !== first!.groups[i]!.epoch)) return null;
      }
      return first;
    }, timeoutMs);
  }

  /** Resolve with the first truthy `probe()`, polled until `timeoutMs`. */
  async waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.outputs()}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** The last lines each node wrote (for failure messages). */
  outputs(): string {
    return this.nodes.map((n) => `--- ${n.name}${n.alive ? '' : ' (dead)'}:\n${n.child.output().split('\n').slice(-15).join('\n')}`).join('\n');
  }

  async close(): Promise<void> {
    for (const n of this.nodes) {
      if (n.alive) {
        n.alive = false;
        await n.child.kill();
      }
      await n.proxy?.close();
    }
    await this.nats.stopAll();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}
