/**
 * The clustered core of one node, assembled in one place: the partition guard on the node's
 * membership, the control plane (ownership table, replicas, the groups' services) and the
 * presence feed, on scheduler 0 of a node whose Env carries `transport`, `streams` and
 * `storage` (an engine sized with `clusterStorageTables(shard_groups)`). What a node process
 * runs (server/ClusterCore.ts builds the edge's view on it), what the integration tests run on real NATS (test/support/clusterCore.ts)
 * and what the simulator runs on every simulated node (sim/SimNode.ts) — the same function, so
 * the three cannot drift apart.
 *
 * It also answers where a group's services are: the address of a user's router shard, a chat
 * group's groups server and a user's key-directory entry on the group's owner node now (read
 * from the local ownership table, no call): a local name when that is this node. A group
 * without an owner yet gets its local name, which a send to drops like any send to a missing
 * process. It never waits on a remote answer
 * and never starts anything before the control plane has loaded the table.
 */
import type { Env, StorageEngine } from '../../runtime/Env.js';
import type { Membership, NodeMember } from '../../runtime/Membership.js';
import type { ProcessContext } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { newCoreCounters, type CoreCounters } from '../CoreCounters.js';
import type { CoreSettings } from '../CoreSettings.js';
import { PresenceTable } from '../Presence.js';
import type { ServiceAddress } from '../Router.js';
import type { UserKey } from '../UserId.js';
import { startControlPlane, type ControlPlaneHandle, type ControlPlaneSettings } from './ControlPlane.js';
import type { GroupServicesDeps, StartGroupServicesResult } from './GroupServices.js';
import { PartitionGuard } from './PartitionGuard.js';
import { PresenceFeed } from './PresenceFeed.js';
import { groupsServerName, keyDirectoryName, routerShardName } from './ShardGroups.js';

export interface ClusterCoreOptions {
  /** The node's Env: `transport` and `streams` must be set, and `storage` unless given below. */
  env: Env;
  /** The node's storage engine (default `env.storage`), sized with `clusterStorageTables`. */
  storage?: StorageEngine;
  /** The node's distribution layer (its membership feeds the partition guard). */
  membership: Membership;
  /** This node as the membership knows it (name, incarnation, roles). */
  self: NodeMember;
  /** cluster_name. */
  cluster: string;
  /** expected_cluster_nodes. */
  expectedNodes: number;
  /** partition_grace_ms. */
  graceMs: number;
  settings: ControlPlaneSettings;
  /** Inbox caps, the fan-out budget, how groups fan out and the inbox wrapper (the simulator's white-box view). */
  services?: Partial<Pick<GroupServicesDeps, 'fanoutAllowed' | 'inboxCap' | 'inboxMaxBytes' | 'receiptInboxCap' | 'fanOutByRequester' | 'wrapInbox'>>;
  /** The node's counters (new ones when not given). */
  counters?: CoreCounters;
  /** The node's presence table (a new one when not given). */
  presence?: PresenceTable;
  /** Control-plane timings (tests shorten them; defaults from core/defaults.ts). */
  startupSettleMs?: number;
  handoffTimeoutMs?: number;
  streamReplicas?: number;
  startServices?: (ctx: ProcessContext, group: number, storage: StorageEngine, deps: GroupServicesDeps) => Promise<StartGroupServicesResult>;
}

/** The clustered core's part of a node's configuration, from its core settings (core/CoreSettings.ts). */
export function clusterCoreSettings(
  c: Pick<CoreSettings, 'shard_groups' | 'durability' | 'ownership_refresh_ms' | 'rebalance_max_moves' | 'partition_grace_ms' | 'stream_trim_interval_ms' | 'stream_keep_entries'>,
): { settings: ControlPlaneSettings; graceMs: number } {
  return {
    settings: {
      shardGroups: c.shard_groups,
      durability: c.durability,
      ownershipRefreshMs: c.ownership_refresh_ms,
      rebalanceMaxMoves: c.rebalance_max_moves,
      streamTrimIntervalMs: c.stream_trim_interval_ms,
      streamKeepEntries: c.stream_keep_entries,
    },
    graceMs: c.partition_grace_ms,
  };
}

/** A node's running clustered core. */
export interface ClusterCore {
  readonly guard: PartitionGuard;
  readonly plane: ControlPlaneHandle;
  readonly presence: PresenceTable;
  readonly feed: PresenceFeed;
  readonly counters: CoreCounters;
  /** The router shard of `user` on its group's owner now (a local name when that is this node). */
  shardOf(user: UserKey): ServiceAddress;
  /** The router shard of group `g` on its owner now; null while the group has no owner. */
  shardOfGroup(g: number): ServiceAddress | null;
  /** The groups server of chat group `gid` on its group's owner now. */
  groupsServerOf(gid: string): ServiceAddress;
  /** The groups server of the group a user's new chat groups go to (the user's own group). */
  groupsServerForNewGroup(user: UserKey): ServiceAddress;
  /** The key directory holding `user`'s entry, on its group's owner now. */
  keyDirectoryOf(user: UserKey): ServiceAddress;
  /** Stop the feed and the guard (the control plane stops with its scheduler). */
  stop(): void;
}

export type StartClusterCoreResult = { ok: true; core: ClusterCore } | { ok: false; message: string };

/** The scheduler a group's services run on, on its owner node. */
const SERVICES_SCHEDULER = 0;

/**
 * Start the clustered core on `where` (scheduler 0 of the node): guard, control plane, feed.
 * Resolves once the control plane has its streams and has loaded the ownership table; on
 * failure the guard is stopped again and nothing keeps running.
 */
export async function startClusterCore(where: Scheduler | ProcessContext, o: ClusterCoreOptions): Promise<StartClusterCoreResult> {
  const { env } = o;
  const storage = o.storage ?? env.storage;
  if (env.transport === undefined || env.streams === undefined || storage === undefined) return { ok: false, message: 'a clustered core needs the Env\'s transport and streams and a storage engine (nats_servers)' };
  const guard = new PartitionGuard({ env, membership: o.membership, expectedNodes: o.expectedNodes, graceMs: o.graceMs });
  const presence = o.presence ?? new PresenceTable();
  const counters = o.counters ?? newCoreCounters();
  const self = o.self.name;
  // The table exists once the plane has started; routing asks it only after that. An address
  // on another node is made once per (service, owner): a route looks one up per message.
  let plane: ControlPlaneHandle | null = null;
  const remote = new Map<string, { owner: string; addr: ServiceAddress }>();
  const at = (g: number, name: string): ServiceAddress => {
    const owner = plane?.table.ownerOf(g);
    if (owner === undefined || owner === self) return name;
    const hit = remote.get(name);
    if (hit !== undefined && hit.owner === owner) return hit.addr;
    const addr = { name, node: owner, sched: SERVICES_SCHEDULER };
    remote.set(name, { owner, addr });
    return addr;
  };
  let shardNames: string[] = [];
  const shardOfGroup = (g: number): ServiceAddress => at(g, shardNames[g] ?? routerShardName(g));
  const shardOf = (u: UserKey): ServiceAddress => shardOfGroup(plane!.groups.ofUser(u));
  const sv = o.services ?? {};
  const started = await startControlPlane(where, {
    cluster: o.cluster,
    self: o.self,
    streams: env.streams,
    transport: env.transport,
    storage,
    guard,
    settings: o.settings,
    services: {
      presence,
      counters,
      shardFor: shardOf,
      fanoutAllowed: sv.fanoutAllowed ?? (() => true),
      ...(sv.inboxCap !== undefined ? { inboxCap: sv.inboxCap } : {}),
      ...(sv.inboxMaxBytes !== undefined ? { inboxMaxBytes: sv.inboxMaxBytes } : {}),
      ...(sv.receiptInboxCap !== undefined ? { receiptInboxCap: sv.receiptInboxCap } : {}),
      ...(sv.fanOutByRequester !== undefined ? { fanOutByRequester: sv.fanOutByRequester } : {}),
      ...(sv.wrapInbox !== undefined ? { wrapInbox: sv.wrapInbox } : {}),
    },
    ...(o.startupSettleMs !== undefined ? { startupSettleMs: o.startupSettleMs } : {}),
    ...(o.handoffTimeoutMs !== undefined ? { handoffTimeoutMs: o.handoffTimeoutMs } : {}),
    ...(o.streamReplicas !== undefined ? { streamReplicas: o.streamReplicas } : {}),
    ...(o.startServices !== undefined ? { startServices: o.startServices } : {}),
  });
  if (!started.ok) {
    guard.stop();
    return started;
  }
  const p = started.plane;
  plane = p;
  shardNames = p.groups.all().map(routerShardName);
  const feed = new PresenceFeed({ env, transport: env.transport, names: p.names, node: self, table: presence, groups: p.groups, ownership: p.table });
  feed.start();
  return {
    ok: true,
    core: {
      guard,
      plane: p,
      presence,
      feed,
      counters,
      shardOf,
      shardOfGroup: (g) => (p.table.ownerOf(g) === undefined ? null : shardOfGroup(g)),
      groupsServerOf: (gid) => {
        const g = p.groups.ofChatGroup(gid);
        return at(g, groupsServerName(g));
      },
      groupsServerForNewGroup: (u) => {
        const g = p.groups.ofUser(u);
        return at(g, groupsServerName(g));
      },
      keyDirectoryOf: (u) => {
        const g = p.groups.ofKeyEntry(u);
        return at(g, keyDirectoryName(g));
      },
      stop: () => {
        feed.stop();
        guard.stop();
      },
    },
  };
}
