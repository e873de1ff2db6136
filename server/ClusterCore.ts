/**
 * The core of a cluster node (docs/cluster.md, "Assembling a clustered node"): on scheduler 0
 * of a node whose Env carries the cluster transport and the JetStream store, and given the
 * node's membership (the distribution layer), it starts the partition guard, the control plane
 * (the ownership table, and on a core node the replicas and services of the shard groups it
 * owns or stands by for) and the presence feed, and answers the edge's questions: where a
 * user's shard, a group's groups server and a user's key directory are now (the owner node
 * the ownership table names, `shard.<g>`/`groups.<g>`/`keys.<g>` there), whether writes must be
 * refused (safe mode), and which connections to tell when ownership changes. It also answers
 * the other nodes' requests for its replicas' positions, from which `/cluster/status` shows
 * standby lag. For a drain (server/NodeDrain.ts) it says whether this node may leave
 * (core/cluster/LeaveCheck.ts), hands its shard groups off through the control plane and
 * counts what it still holds.
 *
 * Nothing here touches sockets, files or real time: the production node (server/IrisNode.ts),
 * the in-process test cluster (test/support/clusterCore.ts) and a simulated cluster assemble
 * the same thing on their own Env. It never blocks the edge: every answer is a local read.
 */
import { startClusterCore as startCoreParts, type ClusterCore as ClusterCoreParts } from '../core/cluster/ClusterCore.js';
import { CORE_ROLE, drain, type ControlPlaneHandle, type ControlPlaneOptions, type DrainResult } from '../core/cluster/ControlPlane.js';
import { leaveCheck, type LeaveCheckResult } from '../core/cluster/LeaveCheck.js';
import type { PartitionGuard } from '../core/cluster/PartitionGuard.js';
import type { PresenceFeed } from '../core/cluster/PresenceFeed.js';
import { CLUSTER_STATUS_TIMEOUT_MS, SESSION_READ_TIMEOUT_MS } from '../core/defaults.js';
import type { Inbox } from '../core/Inbox.js';
import { MailboxInbox } from '../core/MailboxInbox.js';
import type { UserKey } from '../core/UserId.js';
import type { ClusterRouting, OwnersChanged, RoutingStats } from '../edge/ConnectionDeps.js';
import { routeTiming } from '../edge/RouteLedger.js';
import type { Env, StorageEngine } from '../runtime/Env.js';
import { decodeValue, encodeValue } from '../runtime/Envelope.js';
import type { Membership } from '../runtime/Membership.js';
import type { Pid } from '../runtime/Pid.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import type { IrisConfig } from './NodeConfig.js';
import type { ClusterStatusBody, GroupStatus, ServiceCore } from './ServiceCore.js';

/** The configuration keys a cluster core reads. */
export type ClusterCoreConfig = Pick<
  IrisConfig,
  | 'cluster_name'
  | 'expected_cluster_nodes'
  | 'partition_grace_ms'
  | 'cluster_down_after_ms'
  | 'shard_groups'
  | 'durability'
  | 'ownership_refresh_ms'
  | 'rebalance_max_moves'
  | 'stream_trim_interval_ms'
  | 'stream_keep_entries'
  | 'stream_replicas'
  | 'inbox_cap'
  | 'inbox_max_bytes'
  | 'receipt_inbox_cap'
  | 'route_retry_ms'
  | 'route_window'
  | 'route_in_flight'
  | 'route_horizon_ms'
>;

export interface ClusterCoreOptions {
  /** The node's membership (RuntimeNode's distribution); its `self` is this node. */
  membership: Membership;
  /** Takes `n` group fan-out tokens of `user` (edge/limits/UserRates.ts). */
  fanoutAllowed: (user: UserKey, n: number) => boolean;
  /** Wraps each group's inbox (the simulator records what becomes durable). */
  wrapInbox?: (inner: Inbox, group: number) => Inbox;
  /** Starts a group's services (default core/cluster/GroupServices.ts; tests watch it). */
  startServices?: ControlPlaneOptions['startServices'];
}

/** A cluster node's core, with its parts for operations (drain, status) and tests. */
export interface ClusterCore extends ServiceCore {
  readonly guard: PartitionGuard;
  readonly plane: ControlPlaneHandle;
  readonly feed: PresenceFeed;
  readonly membership: Membership;
  /** Whether this node owns shard groups (role `core`). */
  readonly isCore: boolean;
  /** Whether this node may leave now without the cluster losing its majority or its writable core. */
  leaveCheck(): LeaveCheckResult;
  /** Record this node as drained and resolve once it owns, stands by for and takes over no group. */
  handOff(timeoutMs: number): Promise<DrainResult>;
  /** Shard groups this node owns, stands by for or is taking over. */
  groupsHeld(): number;
  /** The clustered core this is built on (core/cluster/ClusterCore.ts): what the simulator's checkers read. */
  readonly parts: ClusterCoreParts;
}

export type StartClusterCoreResult = { ok: true; core: ClusterCore } | { ok: false; message: string };

/** One replica's position as a node reports it: [group, phase, appliedSeq, headSeq, [[standby, applied], …]]. */
type ReplicaReport = [number, string, number, number, Array<[string, number]>];

/** Start a cluster node's core on `s` (scheduler 0); every failure names what to fix. */
export async function startClusterCore(s: Scheduler, env: Env, storage: StorageEngine, config: ClusterCoreConfig, opts: ClusterCoreOptions): Promise<StartClusterCoreResult> {
  const { transport, streams } = env;
  if (transport === undefined || streams === undefined) return { ok: false, message: 'cluster: the node has no NATS connection (nats_servers)' };
  const membership = opts.membership;
  const self = membership.self;
  /** The plain inboxes of the groups served here (for the dropped-receipt count). */
  const inboxes = new Map<number, MailboxInbox>();
  const started = await startCoreParts(s, {
    env,
    storage,
    membership,
    self,
    cluster: config.cluster_name,
    expectedNodes: config.expected_cluster_nodes,
    graceMs: config.partition_grace_ms,
    settings: {
      shardGroups: config.shard_groups,
      durability: config.durability,
      ownershipRefreshMs: config.ownership_refresh_ms,
      rebalanceMaxMoves: config.rebalance_max_moves,
      streamTrimIntervalMs: config.stream_trim_interval_ms,
      streamKeepEntries: config.stream_keep_entries,
    },
    services: {
      fanoutAllowed: opts.fanoutAllowed,
      inboxCap: config.inbox_cap,
      inboxMaxBytes: config.inbox_max_bytes,
      receiptInboxCap: config.receipt_inbox_cap,
      fanOutByRequester: true,
      wrapInbox: (inner, g) => {
        if (inner instanceof MailboxInbox) inboxes.set(g, inner);
        return opts.wrapInbox !== undefined ? opts.wrapInbox(inner, g) : inner;
      },
    },
    streamReplicas: config.stream_replicas,
    startupSettleMs: config.cluster_down_after_ms,
    ...(opts.startServices !== undefined ? { startServices: opts.startServices } : {}),
  });
  if (!started.ok) return { ok: false, message: started.message };
  const parts = started.core;
  const { guard, presence, counters, feed, shardOf: shardFor } = parts;
  const p = parts.plane;
  const names = p.names;

  // Connections with routes or acknowledgements waiting hear of every ownership change and of
  // the end of safe mode, so they send again at once rather than at their next retry.
  const watchers = new Map<string, Pid>();
  const tellWatchers = (): void => {
    for (const pid of watchers.values()) s.send(pid, { t: 'owners_changed' } satisfies OwnersChanged, null);
  };
  const stops: Array<() => void> = [];
  stops.push(
    p.table.subscribe((c) => {
      if (c.t === 'group' && c.record.owner !== c.previous?.owner) tellWatchers();
    }),
  );
  stops.push(
    guard.subscribe((safe) => {
      if (!safe) tellWatchers();
    }),
  );

  // This node's replicas' positions, for another node's /cluster/status.
  const report = (): ReplicaReport[] => [...p.replicas.values()].map((r) => [r.group, r.phase, r.appliedSeq, r.headSeq, [...r.standbyApplied]]);
  const statusSub = transport.subscribe(names.statusRequest(self.name), (_d, _subject, reply) => {
    if (reply !== undefined) transport.publish(reply, encodeValue(report()));
  });
  stops.push(() => statusSub.unsubscribe());

  const stats: RoutingStats = { routesResent: 0, routesGivenUp: 0, acksResent: 0 };
  const cluster: ClusterRouting = {
    groupOf: (u) => p.groups.ofUser(u),
    ownerOf: (g) => p.table.ownerOf(g),
    shardOfGroup: parts.shardOfGroup,
    safeMode: () => guard.safeMode(),
    watch: (conn) => void watchers.set(conn.key, conn),
    unwatch: (conn) => void watchers.delete(conn.key),
    following: { shardOf: shardFor, retryMs: config.route_retry_ms, readTimeoutMs: SESSION_READ_TIMEOUT_MS },
    retryMs: config.route_retry_ms,
    window: config.route_window,
    inFlight: config.route_in_flight,
    horizonMs: config.route_horizon_ms,
    timing: routeTiming(),
    stats,
  };
  const owned = (): number => p.table.all().filter((r) => r !== undefined && r.owner === self.name && r.ownerIncarnation === self.incarnation).length;
  const isDraining = (name: string, incarnation: number): boolean => p.table.isDraining(name, incarnation);

  const core: ClusterCore = {
    presence,
    counters,
    router: null,
    guard,
    plane: p,
    feed,
    membership,
    parts,
    routing: {
      shardFor,
      groupsFor: parts.groupsServerOf,
      groupsForNewGroup: parts.groupsServerForNewGroup,
      keysFor: parts.keyDirectoryOf,
      inbox: null,
      cluster,
    },
    groupsServer: parts.groupsServerOf,
    droppedReceipts: () => {
      let n = 0;
      for (const i of inboxes.values()) n += i.droppedNotices;
      return n;
    },
    health: () => {
      const q = guard.status();
      return {
        cluster: config.cluster_name,
        roles: self.roles,
        quorum: q.visible >= q.needed,
        safe_mode: q.safeMode,
        node_count: q.visible,
        expected_nodes: q.expected,
        shard_groups_owned: owned(),
      };
    },
    clusterStatus: async (): Promise<ClusterStatusBody> => {
      const members = membership.members();
      const reports = new Map<string, ReplicaReport[]>();
      await Promise.all(
        members.map(async (m) => {
          if (m.name === self.name) return void reports.set(m.name, report());
          const r = await transport.request(names.statusRequest(m.name), encodeValue(null), CLUSTER_STATUS_TIMEOUT_MS);
          if (!r.ok) return;
          try {
            const v = decodeValue(r.data);
            if (Array.isArray(v)) reports.set(m.name, v as ReplicaReport[]);
          } catch {
            /* a report that cannot be read shows as unknown lag */
          }
        }),
      );
      const groups: GroupStatus[] = p.table.all().map((r, g) => {
        if (r === undefined) return { group: g, owner: null, owner_incarnation: null, epoch: null, standbys: [], successor: null, reason: null, head_seq: null, standby_lag: {} };
        const mine = reports.get(r.owner)?.find((x) => x[0] === g && x[1] === 'owner');
        const head = mine === undefined ? null : mine[3];
        const applied = new Map(mine?.[4] ?? []);
        const lag: Record<string, number | null> = {};
        for (const sb of r.standbys) {
          const a = applied.get(sb);
          lag[sb] = head === null || a === undefined ? null : Math.max(0, head - a);
        }
        return { group: g, owner: r.owner, owner_incarnation: r.ownerIncarnation, epoch: r.epoch, standbys: r.standbys, successor: r.successor, reason: r.reason, head_seq: head, standby_lag: lag };
      });
      return {
        cluster: config.cluster_name,
        node: self.name,
        safe_mode: guard.safeMode(),
        shard_groups: p.groups.count,
        members: members.map((m) => ({ name: m.name, incarnation: m.incarnation, roles: m.roles, addresses: m.addresses, self: m.name === self.name, draining: isDraining(m.name, m.incarnation) })),
        groups,
      };
    },
    isCore: self.roles.includes(CORE_ROLE),
    leaveCheck: () =>
      leaveCheck({
        self,
        members: membership.members(),
        draining: p.table.draining,
        expectedNodes: config.expected_cluster_nodes,
        durability: config.durability,
        safeMode: guard.safeMode(),
        coreRole: CORE_ROLE,
      }),
    handOff: (timeoutMs) => drain(s, timeoutMs),
    groupsHeld: () => p.table.all().filter((r) => r !== undefined && (r.owner === self.name || r.standbys.includes(self.name) || r.successor === self.name)).length,
    clusterMetrics: () => ({
      safeMode: guard.safeMode(),
      nodesVisible: guard.status().visible,
      groupsOwned: owned(),
      routesResent: stats.routesResent,
      routesGivenUp: stats.routesGivenUp,
      acksResent: stats.acksResent,
    }),
    stop: () => {
      for (const stop of stops.splice(0)) stop();
      parts.stop();
    },
  };
  return { ok: true, core };
}
