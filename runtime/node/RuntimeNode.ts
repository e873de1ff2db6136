/**
 * A node: N schedulers in one OS process (RT9). Scheduler 0 runs on the main thread (it hosts
 * listeners and control code); schedulers 1..N-1 run on worker threads. Every pair of
 * schedulers shares one MessagePort, so envelopes between two schedulers stay in order.
 * The node owns the dirty pool and the watchdog, restarts a scheduler thread that stays
 * blocked (its processes exit `killed`, so their supervisors restart them), and answers
 * introspection (process lists and metrics of every scheduler).
 *
 * With `cluster` options the node joins a cluster over NATS (runtime/Distribution.ts on the
 * main thread, runtime/node/NatsTransport.ts): pids of other node processes work like local
 * ones. Worker schedulers relay envelopes for other nodes to the main thread (one port per
 * pair keeps per-pair order), which batches them per destination node. Without `cluster` the
 * node is the embedded single node, as before. A cluster node's `env.streams` is a
 * JetStreamStore on the same NATS connection (replicated logs, runtime/node/JetStreamStore.ts).
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Env, Logger } from '../Env.js';
import { Kind } from '../Envelope.js';
import { Distribution } from '../Distribution.js';
import type { ExitReason } from '../ExitReason.js';
import { validNodeName, type Membership } from '../Membership.js';
import type { Pid } from '../Pid.js';
import type { ModuleSpec, ProcessBody, RemoteSpawnResult, SpawnOptions } from '../ProcessContext.js';
import { Scheduler, type SchedulerMetrics } from '../Scheduler.js';
import { DirtyPool } from './DirtyPool.js';
import { JetStreamStore } from './JetStreamStore.js';
import { connectNats, type NatsTlsOptions, type NatsTransport } from './NatsTransport.js';
import { cryptoRandom, newIncarnation, newNodeIncarnation, realClock, realTimers } from './ProductionEnv.js';
import { ThreadHost } from './ThreadHost.js';
import { HB_CELLS, HB_TICKS, HB_TICK_MS, Watchdog } from './Watchdog.js';
import type { ControlFromWorker, ControlToWorker, SchedulerWorkerData } from './control.js';
import { createLogger } from './logger.js';

const WORKER_ENTRY = new URL('./schedulerWorker.js', import.meta.url);

export interface RuntimeNodeOptions {
  /** Node name used in every pid (default `iris@local`). */
  name?: string;
  /** Total schedulers including the main thread's (default: one per core). */
  schedulers?: number;
  /** Dirty pool threads (default: half the cores). */
  dirtyThreads?: number;
  logger?: Logger;
  /** Log level for scheduler threads (default IRIS_LOG_LEVEL or info). */
  logLevel?: string;
  /** Watchdog overrides (defaults in runtime/defaults.ts). */
  handlerBudgetMs?: number;
  hardLimitMs?: number;
  /** Join a cluster over NATS; absent: a single node. */
  cluster?: ClusterOptions;
}

/**
 * How a node joins its cluster. Node names must be unique within a cluster (`name` of the
 * node options); defaults of the timings are in runtime/defaults.ts.
 */
export interface ClusterOptions {
  /** Cluster name: subjects are `iris.<cluster>.…`, so clusters can share NATS servers. */
  cluster: string;
  /** NATS servers (`nats://host:port`); the client also learns the cluster's other servers. */
  servers: readonly string[];
  /** Roles this node announces (for example `edge`, `core`). */
  roles?: readonly string[];
  /** Addresses this node announces (for example `{tcp: '10.0.0.5:8085'}`). */
  addresses?: Readonly<Record<string, string>>;
  user?: string;
  pass?: string;
  token?: string;
  /** A NATS `.creds` file. */
  credsFile?: string;
  tls?: NatsTlsOptions;
  /** Heartbeat interval (CLUSTER_HEARTBEAT_MS). */
  heartbeatMs?: number;
  /** Silence after which a node is down (CLUSTER_DOWN_AFTER_MS). */
  downAfterMs?: number;
  /** Wait between NATS reconnect attempts (NATS_RECONNECT_WAIT_MS). */
  reconnectWaitMs?: number;
  /** Client ping interval to the NATS server (NATS_PING_INTERVAL_MS). */
  pingIntervalMs?: number;
  /** Use only `servers`, ignoring the servers the NATS cluster advertises. */
  ignoreClusterUpdates?: boolean;
  /** Try `servers` in order rather than shuffled. */
  noRandomize?: boolean;
}

interface WorkerSlot {
  id: number;
  inc: number;
  worker: Worker;
  hb: Int32Array;
  ready: Promise<void>;
  stopping: boolean;
}

export class RuntimeNode {
  readonly name: string;
  readonly main: Scheduler;
  readonly env: Env;
  readonly log: Logger;
  private readonly host: ThreadHost;
  private readonly workers: (WorkerSlot | undefined)[] = [];
  private readonly dirty: DirtyPool;
  private readonly watchdog: Watchdog;
  private readonly mainHb: Int32Array;
  private readonly mainTick: ReturnType<typeof setInterval>;
  private querySeq = 0;
  private readonly queries = new Map<number, (v: unknown) => void>();
  private placeCursor = 0;
  private stopped = false;
  /** Schedulers restarted by the watchdog, for metrics and tests. */
  restarts = 0;
  /** The distribution layer when the node is part of a cluster (membership API included). */
  readonly cluster: Distribution | null = null;
  /** The NATS transport when the node is part of a cluster. */
  readonly transport: NatsTransport | null;

  private constructor(private readonly opts: RuntimeNodeOptions, readonly schedulerCount: number, transport: NatsTransport | null, log: Logger) {
    this.name = opts.name ?? 'iris@local';
    this.log = log;
    this.transport = transport;
    this.dirty = new DirtyPool(opts.dirtyThreads);
    this.env = {
      clock: realClock,
      timers: realTimers,
      random: cryptoRandom(),
      log: this.log,
      dirty: this.dirty,
      ...(transport !== null ? { transport, streams: new JetStreamStore(transport.connection, { log }) } : {}),
    };
    this.host = new ThreadHost(this.name);
    this.mainHb = new Int32Array(new SharedArrayBuffer(HB_CELLS * 4));
    this.main = new Scheduler({ node: this.name, id: 0, inc: newIncarnation(), env: this.env, host: this.host, heartbeat: this.mainHb });
    this.host.bind(this.main);
    this.main.installCanonicaliser();
    this.mainTick = setInterval(() => Atomics.add(this.mainHb, HB_TICKS, 1), HB_TICK_MS);
    this.mainTick.unref();
    this.watchdog = new Watchdog({
      handlerBudgetMs: opts.handlerBudgetMs,
      hardLimitMs: opts.hardLimitMs,
      onOverBudget: (sched, slot, ms) => this.log.warn({ sched, slot, ms }, 'handler running over its time budget'),
      onStuck: (sched, ms) => {
        this.log.error({ sched, ms }, 'scheduler blocked past the hard limit; restarting it');
        void this.restartScheduler(sched);
      },
    });
  }

  /**
   * Start the node. With `cluster`, it connects to NATS first and throws when the cluster
   * cannot be reached or the options are wrong (a node that cannot join is a start-up error).
   */
  static async start(opts: RuntimeNodeOptions = {}): Promise<RuntimeNode> {
    const n = Math.max(1, opts.schedulers ?? availableParallelism());
    const name = opts.name ?? 'iris@local';
    const log = opts.logger ?? createLogger({ node: name, sched: 0 }, opts.logLevel);
    let transport: NatsTransport | null = null;
    const c = opts.cluster;
    if (c !== undefined) {
      if (!validNodeName(name)) throw new Error(`cluster: node name ${JSON.stringify(name)} must be 1-255 printable characters without spaces`);
      if (!validNodeName(c.cluster)) throw new Error(`cluster: cluster name ${JSON.stringify(c.cluster)} must be 1-255 printable characters without spaces`);
      const r = await connectNats({ ...c, name, log });
      if (!r.ok) throw new Error(`cluster: cannot connect (${r.error}): ${r.message}`);
      transport = r.transport;
    }
    const node = new RuntimeNode(opts, n, transport, log);
    for (let id = 1; id < n; id++) node.startWorker(id);
    for (let id = 1; id < n; id++) node.connectAll(id);
    const ready: Promise<void>[] = [];
    for (let id = 1; id < n; id++) ready.push(node.whenReady(id));
    await Promise.all(ready);
    if (c !== undefined && transport !== null) node.joinCluster(c, transport);
    return node;
  }

  private joinCluster(c: ClusterOptions, transport: NatsTransport): void {
    const dist = new Distribution({
      env: this.env,
      transport,
      cluster: c.cluster,
      self: {
        name: this.name,
        incarnation: newNodeIncarnation(),
        roles: c.roles ?? [],
        addresses: c.addresses ?? {},
        schedulers: this.schedulerCount,
      },
      local: {
        deliver: (sched, env) => {
          if (sched === 0) this.main.receiveEnvelope(env);
          else this.host.route(this.name, sched, env);
        },
        canonical: (pid) => this.main.canonical(pid),
      },
      heartbeatMs: c.heartbeatMs,
      downAfterMs: c.downAfterMs,
    });
    (this as { cluster: Distribution | null }).cluster = dist;
    this.host.remoteNode = (node, sched, env) => dist.route(node, sched, env);
    dist.start();
  }

  /** The cluster's membership (null on a single node). */
  get membership(): Membership | null {
    return this.cluster;
  }

  private startWorker(id: number): WorkerSlot {
    const hbBuf = new SharedArrayBuffer(HB_CELLS * 4);
    const inc = newIncarnation();
    const data: SchedulerWorkerData = { node: this.name, id, inc, heartbeat: hbBuf, logLevel: this.opts.logLevel };
    const worker = new Worker(WORKER_ENTRY, { workerData: data });
    let onReady!: () => void;
    const slot: WorkerSlot = { id, inc, worker, hb: new Int32Array(hbBuf), ready: new Promise((r) => (onReady = r)), stopping: false };
    worker.on('message', (m: ControlFromWorker) => {
      switch (m.t) {
        case 'ready':
          // Watched from here on: a thread still loading its modules (slow under load) has no
          // event loop to tick yet and must not be taken for a blocked one.
          if (!slot.stopping && this.workers[id] === slot) this.watchdog.watch(id, slot.hb);
          onReady();
          break;
        case 'dirty':
          this.dirty.run(m.module, m.fn, m.arg).then(
            (value) => this.post(slot, { t: 'dirtyResult', id: m.id, ok: true, value }),
            (err: unknown) => this.post(slot, { t: 'dirtyResult', id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
          );
          break;
        case 'reply': {
          const q = this.queries.get(m.id);
          if (q !== undefined) {
            this.queries.delete(m.id);
            q(m.value);
          }
          break;
        }
        case 'stopped':
          break;
      }
    });
    worker.on('error', (err) => {
      if (slot.stopping || this.stopped) return;
      this.log.error({ sched: id, err: err.message }, 'scheduler thread failed; restarting it');
      void this.restartScheduler(id);
    });
    worker.on('exit', () => {
      if (!slot.stopping && !this.stopped && this.workers[id] === slot) void this.restartScheduler(id);
    });
    this.workers[id] = slot;
    return slot;
  }

  /** Resolves once scheduler `id` runs, following it through restarts before it was ready. */
  private async whenReady(id: number): Promise<void> {
    for (;;) {
      const slot = this.workers[id];
      if (slot === undefined || this.stopped) return;
      await slot.ready;
      if (this.workers[id] === slot) return;
    }
  }

  private post(slot: WorkerSlot, m: ControlToWorker): void {
    if (!slot.stopping) slot.worker.postMessage(m, m.t === 'connect' ? [m.port] : []);
  }

  /** Give scheduler `id` a fresh port to every other scheduler (main included). */
  private connectAll(id: number): void {
    const me = this.workers[id];
    if (me === undefined) return;
    {
      const { port1, port2 } = new MessageChannel();
      this.host.attach(id, port1);
      this.post(me, { t: 'connect', id: 0, port: port2 });
    }
    for (let other = 1; other < this.schedulerCount; other++) {
      if (other === id) continue;
      const peer = this.workers[other];
      if (peer === undefined) continue;
      if (other < id && !this.restarting.has(id)) continue; // pair already wired from the other side
      const { port1, port2 } = new MessageChannel();
      this.post(me, { t: 'connect', id: other, port: port1 });
      this.post(peer, { t: 'connect', id, port: port2 });
    }
  }

  private readonly restarting = new Set<number>();

  /** Replace a scheduler thread; its processes are gone and seen as exiting `killed`. */
  async restartScheduler(id: number): Promise<void> {
    const old = this.workers[id];
    if (old === undefined || this.stopped || this.restarting.has(id)) return;
    this.restarting.add(id);
    old.stopping = true;
    this.watchdog.unwatch(id);
    this.restarts++;
    this.host.detach(id);
    for (let other = 1; other < this.schedulerCount; other++) {
      const peer = this.workers[other];
      if (other !== id && peer !== undefined) this.post(peer, { t: 'detach', id });
    }
    await old.worker.terminate();
    const reason: ExitReason = 'killed';
    this.main.peerDown(this.name, id, old.inc, reason);
    for (let other = 1; other < this.schedulerCount; other++) {
      const peer = this.workers[other];
      if (other !== id && peer !== undefined) this.post(peer, { t: 'peerDown', node: this.name, sched: id, inc: old.inc, reason });
    }
    const fresh = this.startWorker(id);
    this.connectAll(id);
    // The new thread's view of the cluster starts empty: tell it who is up.
    for (const m of this.cluster?.peers() ?? []) this.host.route(this.name, id, [Kind.NodeUp, null, null, m, null, 0]);
    await fresh.ready;
    this.restarting.delete(id);
    this.log.warn({ sched: id, inc: fresh.inc }, 'scheduler restarted');
  }

  /** Incarnation of scheduler `id` (changes when it is restarted). */
  incarnationOf(id: number): number | undefined {
    return id === 0 ? this.main.inc : this.workers[id]?.inc;
  }

  // ---- spawning and messaging from outside any process ----------------------------------

  spawn(body: ProcessBody, opts?: SpawnOptions): Pid {
    return this.main.spawn(body, opts);
  }

  /** Next scheduler in round-robin order (placement for module-named spawns). */
  place(): number {
    const id = this.placeCursor % this.schedulerCount;
    this.placeCursor++;
    return id;
  }

  /**
   * Start a module-named body on scheduler `sched` ('any' = round robin) of this node, or of
   * another node of the cluster (`node`; 'any' is then scheduler 0).
   */
  spawnOn(sched: number | 'any', spec: ModuleSpec, opts?: SpawnOptions, node?: string): Promise<RemoteSpawnResult> {
    const remote = node !== undefined && node !== this.name;
    const target = sched === 'any' ? (remote ? 0 : this.place()) : sched;
    if (target === 0 && !remote) return this.main.spawnOn(0, spec, opts, undefined);
    return new Promise((resolve) => {
      // A short-lived requester process carries the request (link/monitor options apply to it).
      this.main.spawn(async (ctx) => {
        resolve(await ctx.spawnOn(target, spec, { ...opts, link: false, monitor: false }, node));
      });
    });
  }

  send(to: Pid, msg: unknown): void {
    this.main.send(to, msg, null);
  }

  kill(pid: Pid, reason: ExitReason = 'kill'): void {
    this.main.kill(pid, reason);
  }

  // ---- introspection --------------------------------------------------------------------

  private query(id: number, what: 'metrics' | 'processes'): Promise<unknown> {
    const slot = this.workers[id];
    if (slot === undefined || slot.stopping) return Promise.resolve(null);
    const qid = ++this.querySeq;
    return new Promise((resolve) => {
      this.queries.set(qid, resolve);
      this.post(slot, { t: 'query', id: qid, what });
    });
  }

  /** Metrics of every scheduler, index = scheduler id. */
  async metrics(): Promise<(SchedulerMetrics | null)[]> {
    const out: Promise<unknown>[] = [Promise.resolve(this.main.metrics())];
    for (let id = 1; id < this.schedulerCount; id++) out.push(this.query(id, 'metrics'));
    return (await Promise.all(out)) as (SchedulerMetrics | null)[];
  }

  /** The live process list of the whole node (plain data, pids as strings). */
  async processes(): Promise<Array<Record<string, unknown>>> {
    const mainList = this.main.processes().map((pid) => {
      const i = this.main.info(pid)!;
      return { ...i, pid: pid.toString(), links: i.links.map(String) } as Record<string, unknown>;
    });
    const rest: Promise<unknown>[] = [];
    for (let id = 1; id < this.schedulerCount; id++) rest.push(this.query(id, 'processes'));
    const lists = (await Promise.all(rest)) as (Array<Record<string, unknown>> | null)[];
    return mainList.concat(...lists.map((l) => l ?? []));
  }

  /**
   * Stop the node: processes on the main scheduler exit `shutdown` (their exit signals still
   * reach other nodes), the node says goodbye to its cluster, then threads and NATS close.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchdog.stop();
    clearInterval(this.mainTick);
    this.main.shutdown('shutdown');
    if (this.cluster !== null) {
      await this.cluster.stop();
      this.host.remoteNode = null;
    }
    await this.transport?.close();
    const exits: Promise<unknown>[] = [];
    for (const slot of this.workers) {
      if (slot === undefined) continue;
      slot.stopping = true;
      exits.push(slot.worker.terminate());
    }
    await Promise.all(exits);
    for (let id = 1; id < this.schedulerCount; id++) this.host.detach(id);
    await this.dirty.close();
  }
}
