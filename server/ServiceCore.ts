/**
 * The core half of a node's service as the edge and the node's HTTP pages see it, one shape for
 * both arrangements: a single node (server/SingleNodeCore.ts: the per-node router and the
 * node-wide groups and key-directory servers on local storage) and a cluster node
 * (server/ClusterCore.ts: shard groups owned across nodes, reached through the ownership
 * table). server/IrisService.ts builds the connections on top of whichever it is given and
 * never asks which one it is. Types only.
 */
import type { CoreCounters } from '../core/CoreCounters.js';
import type { PresenceTable } from '../core/Presence.js';
import type { Router, ServiceAddress } from '../core/Router.js';
import type { ConnectionDeps } from '../edge/ConnectionDeps.js';

/** What connections get from the core: addresses per key, the inbox (single node) and cluster routing. */
export type CoreRouting = Pick<ConnectionDeps, 'shardFor' | 'groupsFor' | 'groupsForNewGroup' | 'keysFor' | 'inbox' | 'cluster'>;

/** The cluster fields of `/health` (a single node reports itself as a healthy cluster of one). */
export interface CoreHealth {
  cluster: string | null;
  roles: readonly string[];
  /** A majority of expected_cluster_nodes is visible. */
  quorum: boolean;
  safe_mode: boolean;
  /** Nodes visible now, this one included. */
  node_count: number;
  expected_nodes: number;
  /** Shard groups this node serves as owner (null on a single node: it has no shard groups). */
  shard_groups_owned: number | null;
}

/** One member of `/cluster/status`. */
export interface MemberStatus {
  name: string;
  incarnation: number;
  roles: readonly string[];
  addresses: Readonly<Record<string, string>>;
  /** This node (the one answering). */
  self: boolean;
  /** Being drained (`iris node drain`): its shard groups move away and nothing is placed on it. */
  draining: boolean;
}

/** One shard group of `/cluster/status`. */
export interface GroupStatus {
  group: number;
  owner: string | null;
  owner_incarnation: number | null;
  epoch: number | null;
  standbys: readonly string[];
  successor: string | null;
  reason: string | null;
  /** The owner's last stream sequence, as the owner reports it (null: it did not answer). */
  head_seq: number | null;
  /** Entries each standby is behind the owner (null for a standby the owner has no report of yet). */
  standby_lag: Record<string, number | null>;
}

export interface ClusterStatusBody {
  cluster: string;
  node: string;
  safe_mode: boolean;
  shard_groups: number;
  members: MemberStatus[];
  groups: GroupStatus[];
}

/** Cluster gauges and counters for /metrics. */
export interface ClusterMetrics {
  safeMode: boolean;
  nodesVisible: number;
  groupsOwned: number;
  routesResent: number;
  routesGivenUp: number;
  acksResent: number;
}

export interface ServiceCore {
  readonly presence: PresenceTable;
  readonly counters: CoreCounters;
  readonly routing: CoreRouting;
  /** The per-node router of a single node (null in a cluster, where shards belong to shard groups). */
  readonly router: Router | null;
  /** The groups server holding `gid` (the admin API calls it). */
  groupsServer(gid: string): ServiceAddress;
  /** Read receipts for offline users dropped because their receipt store was full (this node's stores). */
  droppedReceipts(): number;
  health(): CoreHealth;
  /** The body of `/cluster/status` (null on a single node). */
  clusterStatus(): Promise<ClusterStatusBody | null>;
  clusterMetrics(): ClusterMetrics | null;
  /** Stop what runs outside processes (subscriptions, timers); processes stop with their scheduler. */
  stop(): void;
}
