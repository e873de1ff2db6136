/**
 * One simulated Iris node: its schedulers as in-thread domains (envelopes between them are
 * encoded and decoded with the production codec and delivered as kernel events), a
 * simulated storage engine on the node's disk, and, as configured, the unchanged messaging
 * service (server/IrisService.ts) on scheduler 0 and/or the distribution layer
 * (runtime/Distribution.ts) on a client connection to the simulated NATS servers, with the
 * JetStream model as the Env's `streams`. A cluster node runs either the bare clustered core
 * (`core`) or the whole service in cluster mode (`service`: edge and clustered core, assembled
 * as a node process assembles them, with client links to its edge). A crash drops every scheduler, the engine (and its
 * unflushed writes), the NATS connection (its server sees a reset) and every client link; a
 * restart boots a new incarnation on the same disk with a fresh, larger distribution
 * incarnation, the way `iris start` after SIGKILL does.
 */
import type { IrisConfig } from '../server/NodeConfig.js';
import type { Inbox } from '../core/Inbox.js';
import { startClusterCore, type ClusterCore } from '../core/cluster/ClusterCore.js';
import type { ControlPlaneSettings } from '../core/cluster/ControlPlane.js';
import type { ClusterCore as ServerClusterCore } from '../server/ClusterCore.js';
import { startIrisService, type IrisService } from '../server/IrisService.js';
import { Distribution } from '../runtime/Distribution.js';
import type { Env } from '../runtime/Env.js';
import type { Envelope } from '../runtime/Envelope.js';
import { describeReason } from '../runtime/ExitReason.js';
import type { MembershipEvent } from '../runtime/Membership.js';
import { Scheduler, type SchedulerHost } from '../runtime/Scheduler.js';
import { domainHost } from './DomainHost.js';
import type { SimOwner } from './EventQueue.js';
import { simEnv, SimLog, type NodeClock } from './SimEnv.js';
import type { SimJetStream } from './SimJetStream.js';
import { SimLink, type LinkClientSide, type LinkProfile } from './SimLink.js';
import type { SimNats } from './SimNats.js';
import type { SimNatsClient } from './SimNatsClient.js';
import { SimDisk, SimStorageEngine } from './SimStorage.js';
import type { SimWorld } from './SimWorld.js';

export type NodeStatus = 'down' | 'booting' | 'up';

export interface CrashReport {
  at: number;
  node: string;
  label: string | null;
  reason: string;
}

/** How a node joins the simulated cluster. */
export interface SimNodeCluster {
  readonly nats: SimNats;
  /** Bound to the Env's `streams`; absent: the node has none. */
  readonly jetstream?: SimJetStream;
  /** Cluster name: subjects are `iris.<cluster>.…`. */
  readonly cluster: string;
  /** The server the node connects to first (it moves on when that one is lost). */
  readonly server?: string;
  readonly roles: readonly string[];
  /** Distribution timings (defaults CLUSTER_HEARTBEAT_MS, CLUSTER_DOWN_AFTER_MS). */
  readonly heartbeatMs?: number;
  readonly downAfterMs?: number;
  /** Run the clustered core (core/cluster/ClusterCore.ts) on scheduler 0. */
  readonly core?: SimNodeCore;
  /** Run the whole service in cluster mode on scheduler 0 instead (edge and core); `core` is then ignored. */
  readonly service?: SimNodeService;
}

/**
 * The whole messaging service of a cluster node: `startIrisService(…, {cluster: {membership}})`
 * on the node's Env and storage, as server/IrisNode.ts starts it, so v1 clients connect to the
 * node's edge. The node's `core` is then the clustered core the service is built on.
 */
export interface SimNodeService {
  /** The service's configuration; `node_name` and `cluster_name` are set to the node's. */
  readonly config: IrisConfig;
  /** Wraps each group's inbox on this node (the simulation's white-box view). */
  readonly wrapInbox?: (inner: Inbox, group: number, node: SimNode) => Inbox;
  /** A service that fails to start stops the node, which boots again after this many ms (a service manager's restart). */
  readonly restartAfterFailureMs: number;
}

/** The clustered core of a simulated node: what `startClusterCore` is given besides the node's own parts. */
export interface SimNodeCore {
  readonly expectedNodes: number;
  readonly graceMs: number;
  readonly settings: ControlPlaneSettings;
  readonly startupSettleMs?: number;
  /** Wraps each group's inbox on this node (the simulation's white-box view). */
  readonly wrapInbox?: (inner: Inbox, group: number, node: SimNode) => Inbox;
  /** A core that fails to start stops the node, which boots again after this many ms (a service manager's restart). */
  readonly restartAfterFailureMs: number;
}

export interface SimNodeOptions {
  name: string;
  schedulers: number;
  /** The service's configuration (required when `service` is on). */
  config?: IrisConfig;
  /** Run the messaging service on scheduler 0 (default: on, unless the node is in a cluster). */
  service?: boolean;
  /** Join the simulated cluster: NATS, the distribution layer, JetStream. */
  cluster?: SimNodeCluster;
  /** Watches the node's inbox (what the service reports durable and acknowledged). */
  wrapInbox?: (inner: Inbox) => Inbox;
  keepLogLines?: boolean;
}

/** A membership event as one node saw it, with when and in which of its incarnations. */
export interface SeenMembership {
  readonly at: number;
  readonly incarnation: number;
  readonly event: MembershipEvent;
}

export class SimNode {
  readonly name: string;
  readonly disk = new SimDisk();
  readonly clock: NodeClock = { skewMs: 0, wallJumpMs: 0 };
  readonly log: SimLog;
  status: NodeStatus = 'down';
  owner: SimOwner;
  schedulers: Scheduler[] = [];
  service: IrisService | null = null;
  storage: SimStorageEngine | null = null;
  /** The distribution layer of the current incarnation (cluster nodes). */
  dist: Distribution | null = null;
  /** The NATS client connection of the current incarnation (cluster nodes). */
  nats: SimNatsClient | null = null;
  /** The clustered core of the current incarnation, once started. */
  core: ClusterCore | null = null;
  /** Why the clustered core failed to start, with when (each failure restarts the node). */
  readonly coreFailures: Array<{ at: number; message: string }> = [];
  /** Kept down on purpose: a pending service-manager restart does not boot it. */
  heldDown = false;
  /** The Env of the current incarnation. */
  env: Env | null = null;
  /** Every membership event this node saw, across incarnations. */
  readonly membership: SeenMembership[] = [];
  readonly crashes: CrashReport[] = [];
  incarnations = 0;
  /** When the current incarnation booted. */
  bootedAt = 0;
  /** Every pause: from when until when (virtual ms). */
  readonly pauses: Array<{ from: number; until: number }> = [];
  private links = new Set<SimLink>();
  private nextLinkId = 0;

  constructor(
    private readonly world: SimWorld,
    private readonly opts: SimNodeOptions,
    private readonly nextInc: () => number,
  ) {
    this.name = opts.name;
    this.owner = { name: opts.name, alive: false, pausedUntil: 0, backlog: [] };
    this.log = new SimLog(world, opts.name, opts.keepLogLines === true);
  }

  /** Start a new incarnation on the node's disk; it is up once its service (if any) is. */
  boot(): void {
    if (this.status !== 'down') return;
    this.incarnations++;
    this.bootedAt = this.world.now;
    const owner: SimOwner = { name: this.name, alive: true, pausedUntil: 0, backlog: [] };
    this.owner = owner;
    this.status = 'booting';
    const storage = new SimStorageEngine(this.world, owner, this.disk, this.world.random(`${this.name}/disk/${this.incarnations}`));
    this.storage = storage;
    const random = this.world.random(`${this.name}/env/${this.incarnations}`);
    const c = this.opts.cluster;
    // A cluster node's Env carries its storage too (the single-node service gets it directly).
    let env = simEnv(this.world, owner, this.clock, random, this.log, c !== undefined ? storage : undefined);
    let dist: Distribution | null = null;
    if (c !== undefined) {
      const client = c.nats.connectClient(this.name, owner, c.server);
      this.nats = client;
      env = { ...env, transport: client.transport, ...(c.jetstream !== undefined ? { streams: c.jetstream.storeFor(client) } : {}) };
    }
    this.env = env;
    const scheds: Scheduler[] = [];
    const hosts: SchedulerHost[] = [];
    const remote = (node: string, sched: number, e: Envelope): void => dist?.route(node, sched, e);
    for (let i = 0; i < this.opts.schedulers; i++) {
      const host = domainHost(this.world, owner, this.name, i, (d) => this.schedulers[d], remote);
      hosts.push(host);
      const s = new Scheduler({ node: this.name, id: i, inc: this.nextInc(), env, host });
      s.onCrash = (_pid, reason, label) => this.crashes.push({ at: this.world.now, node: this.name, label, reason: describeReason(reason) });
      scheds.push(s);
    }
    this.schedulers = scheds;
    if (c !== undefined) {
      const incarnation = this.nextInc();
      dist = new Distribution({
        env,
        transport: env.transport!,
        cluster: c.cluster,
        self: { name: this.name, incarnation, roles: [...c.roles], addresses: {}, schedulers: this.opts.schedulers },
        local: {
          // Scheduler 0 shares the distribution's thread; the others are reached as threads are.
          deliver: (sched, e) => {
            if (sched === 0) scheds[0]!.receiveEnvelope(e);
            else hosts[0]!.route(this.name, sched, e);
          },
          canonical: (pid) => scheds[0]!.canonical(pid),
        },
        ...(c.heartbeatMs !== undefined ? { heartbeatMs: c.heartbeatMs } : {}),
        ...(c.downAfterMs !== undefined ? { downAfterMs: c.downAfterMs } : {}),
      });
      this.dist = dist;
      dist.subscribe((event) => this.membership.push({ at: this.world.now, incarnation, event }));
      dist.start();
      if (c.service !== undefined) {
        this.startClusterService(c.service, scheds[0]!, env, storage, dist, owner, c.cluster);
        return;
      }
      if (c.core !== undefined) {
        this.startCore(c.core, scheds[0]!, env, dist, owner, c.cluster);
        return;
      }
    }
    const wantService = this.opts.service ?? c === undefined;
    if (!wantService) {
      this.status = 'up';
      return;
    }
    const config = this.opts.config;
    if (config === undefined) {
      this.world.failures.push(`${this.name}: the service needs a configuration`);
      return;
    }
    void startIrisService(scheds[0]!, env, storage, config, this.opts.wrapInbox !== undefined ? { wrapInbox: this.opts.wrapInbox } : {}).then((r) => {
      if (!owner.alive) return;
      if (!r.ok) {
        this.world.failures.push(`${this.name}: service failed to start: ${r.message}`);
        return;
      }
      this.service = r.service;
      this.status = 'up';
    });
  }

  private startCore(o: SimNodeCore, sched: Scheduler, env: Env, dist: Distribution, owner: SimOwner, cluster: string): void {
    const incarnation = this.incarnations;
    const wrap = o.wrapInbox;
    void startClusterCore(sched, {
      env,
      membership: dist,
      self: dist.self,
      cluster,
      expectedNodes: o.expectedNodes,
      graceMs: o.graceMs,
      settings: o.settings,
      ...(o.startupSettleMs !== undefined ? { startupSettleMs: o.startupSettleMs } : {}),
      ...(wrap !== undefined ? { services: { wrapInbox: (inner: Inbox, group: number) => wrap(inner, group, this) } } : {}),
    }).then((r) => {
      if (!owner.alive) return;
      if (!r.ok) {
        this.coreFailures.push({ at: this.world.now, message: r.message });
        this.crash();
        this.world.after(o.restartAfterFailureMs, 'core_restart', () => {
          if (this.incarnations === incarnation && !this.heldDown) this.boot();
        });
        return;
      }
      this.core = r.core;
      this.status = 'up';
    });
  }

  private startClusterService(o: SimNodeService, sched: Scheduler, env: Env, storage: SimStorageEngine, dist: Distribution, owner: SimOwner, cluster: string): void {
    const incarnation = this.incarnations;
    const wrap = o.wrapInbox;
    const config: IrisConfig = { ...o.config, node_name: this.name, cluster_name: cluster };
    void startIrisService(sched, env, storage, config, {
      cluster: { membership: dist },
      ...(wrap !== undefined ? { wrapInbox: (inner: Inbox, group?: number) => wrap(inner, group ?? 0, this) } : {}),
    }).then((r) => {
      if (!owner.alive) return;
      const core = r.ok ? (r.service.core as Partial<ServerClusterCore>).parts : undefined;
      if (!r.ok || core === undefined) {
        this.coreFailures.push({ at: this.world.now, message: r.ok ? 'the service started without a clustered core' : r.message });
        this.crash();
        this.world.after(o.restartAfterFailureMs, 'core_restart', () => {
          if (this.incarnations === incarnation && !this.heldDown) this.boot();
        });
        return;
      }
      this.service = r.service;
      this.core = core;
      this.status = 'up';
    });
  }

  /** Kill the node like SIGKILL: processes, unflushed writes and connections are gone. */
  crash(): void {
    if (this.status === 'down') return;
    this.owner.alive = false;
    this.status = 'down';
    this.core = null;
    this.service = null;
    this.storage = null;
    this.schedulers = [];
    this.dist = null;
    this.env = null;
    const links = [...this.links];
    this.links.clear();
    for (const l of links) l.reset();
  }

  /** Stop the world for `ms`: the node's events wait (clients and disks keep going). */
  pause(ms: number): void {
    if (this.status === 'down') return;
    this.pauses.push({ from: this.world.now, until: this.world.now + ms });
    this.world.pause(this.owner, this.world.now + ms);
  }

  /** A client connects; null when the node is not accepting (down or booting). */
  connect(client: LinkClientSide, remoteAddress: string, profile: LinkProfile, clientName: string): SimLink | null {
    if (this.status !== 'up' || this.service === null) return null;
    const link = new SimLink(this.world, this.world.random(`link/${clientName}/${this.nextLinkId}`), profile, this.owner, remoteAddress, {
      onData: (b) => client.onData(b),
      onClose: () => {
        this.links.delete(link);
        client.onClose();
      },
    }, this.nextLinkId++);
    this.links.add(link);
    link.attach(this.service.accept);
    return link;
  }

  openLinks(): SimLink[] {
    return [...this.links];
  }
}
