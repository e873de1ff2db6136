/**
 * The configuration keys of the core layer (what holds state: mailboxes, router, groups, key
 * directory), with their bounds and defaults declared here once. The composition root merges
 * them into the node configuration; core code reads defaults from CORE_DEFAULTS, never a copy.
 */
import { defaultsOf, type SettingsOf } from '../runtime/Settings.js';
import { CLUSTER_STREAM_REPLICAS } from './defaults.js';

export const CORE_SETTINGS = {
  inbox_cap: { kind: 'int', default: 10_000, min: 1, max: 10_000_000, doc: 'Messages one user may have stored; a message beyond it is refused inbox_full (the sender hears).' },
  inbox_max_bytes: {
    kind: 'int',
    default: 64 * 1024 * 1024,
    min: 64 * 1024,
    max: 64 * 1024 * 1024 * 1024,
    doc: 'Payload bytes one user may have stored; a message beyond it is refused inbox_full.',
  },
  receipt_inbox_cap: { kind: 'int', default: 1_000, min: 1, max: 1_000_000, doc: 'Read receipts kept per offline user, apart from messages; further receipts are dropped and counted.' },
  router_pool_size: { kind: 'int', default: 8, min: 1, max: 4096, doc: 'Router shards on this node.' },
  inbox_page_messages: { kind: 'int', default: 256, min: 1, max: 100_000, doc: 'Stored messages read per page when a session loads its inbox.' },
  inbox_page_bytes: { kind: 'int', default: 1024 * 1024, min: 64 * 1024, max: 256 * 1024 * 1024, doc: 'Payload bytes read per page when a session loads its inbox (at least one message per page).' },
  group_fanout_per_s: { kind: 'int', default: 2_000, min: 1, max: 100_000_000, doc: 'Group deliveries (message × recipients) one sender may cause per second, sustained.' },
  group_fanout_burst: { kind: 'int', default: 10_000, min: 1, max: 100_000_000, doc: 'Group deliveries one sender may cause in a burst.' },
  // ---- the cluster (core/cluster/, docs/cluster.md); a node without NATS ignores them ----
  shard_groups: {
    kind: 'int',
    default: 16,
    min: 1,
    max: 256,
    doc: 'Shard groups of a cluster (users, groups and key-directory entries are hashed over them); fixed when the cluster is created, a node configured otherwise refuses to start.',
  },
  durability: {
    kind: 'enum',
    default: 'quorum',
    values: ['local', 'quorum'],
    doc: 'In a cluster, when a write counts as done: local = in the shard stream and fsync\'d by the owner; quorum = also fsync\'d by a standby. A single node is always local.',
  },
  stream_replicas: {
    kind: 'int',
    default: CLUSTER_STREAM_REPLICAS,
    min: 1,
    max: 5,
    doc: 'Copies JetStream keeps of the control and shard streams (3: survives the loss of one NATS server; 1 only for a single NATS server in development).',
  },
  ownership_refresh_ms: { kind: 'int', default: 2_000, min: 100, max: 600_000, doc: 'How often a node re-reads the ownership records (a missed change notice costs at most this long).' },
  rebalance_max_moves: { kind: 'int', default: 2, min: 1, max: 256, doc: 'Shard groups moving between owners at a time (rebalancing, drain), cluster-wide.' },
  stream_trim_interval_ms: {
    kind: 'int',
    default: 60_000,
    min: 0,
    max: 86_400_000,
    doc: 'How often the owner of a shard group purges the entries of its shard stream that it and every recorded standby have applied (less stream_keep_entries); 0 never trims. A replica the stream no longer continues (new node, old backup) is then sent a snapshot by a peer.',
  },
  stream_keep_entries: {
    kind: 'int',
    default: 10_000,
    min: 0,
    max: 1_000_000_000,
    doc: 'Entries a trim leaves below the lowest position applied by a shard group\'s replicas (a standby a little behind catches up from the stream rather than by snapshot).',
  },
  partition_grace_ms: {
    kind: 'int',
    // Short: the membership's down-after (cluster_down_after_ms, 2 s) already debounces a silent
    // peer, so safe mode comes ~2.3 s after a cut (measured; requirement C5: ~2 s).
    default: 250,
    min: 0,
    max: 60_000,
    doc: 'How long a node may see fewer than a majority of expected_cluster_nodes before it enters safe mode (writes refused cluster_unavailable).',
  },
} as const;

export type CoreSettings = SettingsOf<typeof CORE_SETTINGS>;
export const CORE_DEFAULTS = defaultsOf(CORE_SETTINGS);
