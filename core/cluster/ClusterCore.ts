/**
 * The clustered core of one node, assembled in one place: the partition guard on the node's
 * membership, the control plane (ownership table, replicas, the groups' services) and the
 * presence feed, on scheduler 0 of a node whose Env carries `transport`, `streams` and
 * `storage` (an engine sized with `clusterStorageTables(shard_groups)`). What server/ wires on
 * a clustered node, what the integration tests run on real NATS (test/support/clusterCore.ts)
 * and what the simulator runs on every simulated node (sim/SimNode.ts) — the same function, so
 * the three cannot drift apart.
 *
 * It also answers where a group's services are: the address of a user's router shard, a chat
 * group's groups server and a user's key-directory entry on the group's owner node now (read
 * from the local ownership table, no call). A group without an owner yet gets its local name,
 * which a send to drops like any send to a missing process. It never waits on a remote answer
 * and never starts anything before the control plane has loaded the table.
 */
import type { Env } from '../../runtime/Env.js';
import type { Membership, NodeMember } from '../../runtime/Membership.js';
import type { ProcessContext } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { newCoreCounters, type CoreCounters } from '../CoreCounters.js';
import type { CoreSettings } from '../CoreSettings.js';
import { PresenceTable } from '../Presence.js';
import type { NamedOnNode } from '../Router.js';
import type { UserKey } from '../UserId.js';
import { startControlPlane, type ControlPlaneHandle, type ControlPlaneSettings } from './ControlPlane.js';
import type { GroupServicesDeps, StartGroupServicesResult } from './GroupServices.js';
import { PartitionGuard } from './PartitionGuard.js';
import { PresenceFeed } from './PresenceFeed.js';
import { groupsServerName, keyDirectoryName, routerShardName } from './ShardGroups.js';
import type { StorageEngine } from '../../runtime/Env.js';

export interface ClusterCoreOptions {
  /** The node's Env: `transport`, `streams` and `storage` must be set. */
  env: Env;
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
  /** Inbox caps, the fan-out budget and the inbox wrapper (the simulator's white-box view). */
  services?: Partial<Pick<GroupServicesDeps, 'fanoutAllowed' | 'inboxCap' | 'inboxMaxBytes' | 'receiptInboxCap' | 'wrapInbox'>>;
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
export function clusterCoreSettings(c: Pick<CoreSettings, 'shard_groups' | 'durability' | 'ownership_refresh_ms' | 'rebalance_max_moves' | 'partition_grace_ms'>): { settings: ControlPlaneSettings; graceMs: number } {
  return {
    settings: { shardGroups: c.shard_groups, durability: c.durability, ownershipRefreshMs: c.ownership_refresh_ms, rebalanceMaxMoves: c.rebalance_max_moves },
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
  /** The router shard of `user` on its group's owner now. */
  shardOf(user: UserKey): NamedOnNode;
  /** The groups server of chat group `gid` on its group's owner now. */
  groupsServerOf(gid: string): NamedOnNode;
  /** The key directory holding `user`'s entry, on its group's owner now. */
  keyDirectoryOf(user: UserKey): NamedOnNode;
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
  if (env.transport === undefined || env.streams === undefined || env.storage === undefined) return { ok: false, message: 'a clustered core needs the Env\'s transport, streams and storage' };
  const guard = new PartitionGuard({ env, membership: o.membership, expectedNodes: o.expectedNodes, graceMs: o.graceMs });
  const presence = o.presence ?? new PresenceTable();
  const counters = o.counters ?? newCoreCounters();
  // The table exists once the plane has started; routing asks it only after that.
  let plane: ControlPlaneHandle | null = null;
  const at = (name: (g: number) => string, g: number): NamedOnNode => ({ name: name(g), node: plane?.table.ownerOf(g) ?? o.self.name, sched: SERVICES_SCHEDULER });
  const shardOfGroup = (g: number): NamedOnNode => at(routerShardName, g);
  const started = await startControlPlane(where, {
    cluster: o.cluster,
    self: o.self,
    streams: env.streams,
    transport: env.transport,
    storage: env.storage,
    guard,
    settings: o.settings,
    services: {
      presence,
      counters,
      shardFor: (u) => shardOfGroup(plane!.groups.ofUser(u)),
      fanoutAllowed: o.services?.fanoutAllowed ?? (() => true),
      ...(o.services?.inboxCap !== undefined ? { inboxCap: o.services.inboxCap } : {}),
      ...(o.services?.inboxMaxBytes !== undefined ? { inboxMaxBytes: o.services.inboxMaxBytes } : {}),
      ...(o.services?.receiptInboxCap !== undefined ? { receiptInboxCap: o.services.receiptInboxCap } : {}),
      ...(o.services?.wrapInbox !== undefined ? { wrapInbox: o.services.wrapInbox } : {}),
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
  const feed = new PresenceFeed({ env, transport: env.transport, names: p.names, node: o.self.name, table: presence, groups: p.groups, ownership: p.table });
  feed.start();
  return {
    ok: true,
    core: {
      guard,
      plane: p,
      presence,
      feed,
      counters,
      shardOf: (u) => shardOfGroup(p.groups.ofUser(u)),
      groupsServerOf: (gid) => at(groupsServerName, p.groups.ofChatGroup(gid)),
      keyDirectoryOf: (u) => at(keyDirectoryName, p.groups.ofKeyEntry(u)),
      stop: () => {
        feed.stop();
        guard.stop();
      },
    },
  };
}
