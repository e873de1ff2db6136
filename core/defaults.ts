/**
 * Tuning constants of the core layer that are not configuration keys (sizes of caches and id
 * blocks), named once. Configuration keys and their defaults are in core/CoreSettings.ts.
 */

/** Longest user id (raw bytes) an offline mailbox accepts; protocol v1 allows 256. */
export const OFFLINE_MAILBOX_MAX_USER_BYTES = 512;
/** Message ids reserved per durable write of the mailbox id counter (a restart skips the rest). */
export const OFFLINE_MAILBOX_ID_BLOCK = 65_536;
/**
 * Stored messages read from storage at a time when a page is bounded by bytes: at most this
 * many values beyond the page are ever read for it (messages may be up to 256 KiB).
 */
export const OFFLINE_MAILBOX_LIST_CHUNK = 16;
/** Users whose mailbox size is cached in memory; idle entries beyond it are dropped and recounted. */
export const OFFLINE_MAILBOX_COUNT_CACHE_USERS = 100_000;
/**
 * Latest appends an offline mailbox remembers until acked (a power of two), so the ACK of a
 * message delivered live needs no storage read to know it is stored: a ring of 25 bytes per
 * slot, allocated when the mailbox opens (1.6 MB).
 */
export const OFFLINE_MAILBOX_KNOWN_IDS = 65_536;
/** Restart intensity of the core's supervisors (router shards, groups, key directory): more than this many restarts ... */
export const CORE_SUPERVISOR_INTENSITY = 10;
/** ... within this many seconds shuts the supervisor down. */
export const CORE_SUPERVISOR_PERIOD_S = 10;
/**
 * Refusals a router shard remembers per connection lane (core/RouteLanes.ts), so a repeat of a
 * refused route is refused again rather than taken for accepted; at least the largest
 * route_window (a connection never has more routes waiting).
 */
export const ROUTE_LANE_REFUSALS_KEPT = 4_096;
/** A connection lane unused this long is forgotten by its shard (memory and row): far beyond any route's retry horizon. */
export const ROUTE_LANES_KEEP_MS = 10 * 60_000;
/** How often a router shard that keeps lanes prunes them. */
export const ROUTE_LANES_SWEEP_MS = 60_000;
/** Groups and key-directory entries kept in memory; the least recently used beyond it are dropped (storage is the truth). */
export const STATE_CACHE_ENTRIES = 10_000;

// ---- the cluster (core/cluster/, docs/cluster.md) ------------------------------------------

/** Copies JetStream keeps of the control and shard streams (R3: one NATS server may fail). */
export const CLUSTER_STREAM_REPLICAS = 3;
/**
 * Msg-Id dedup window of the control and shard streams (JetStream's default): an append whose
 * outcome is unknown is settled by appending it again, with the same Msg-Id, within it.
 */
export const SHARD_STREAM_DUPLICATE_WINDOW_MS = 120_000;
/** Largest shard-stream entry (below NATS's default 1 MiB max_payload, with room for headers). */
export const SHARD_ENTRY_MAX_BYTES = 960 * 1024;
/** A turn's writes are cut into entries of about this size (a single write call is never cut). */
export const SHARD_ENTRY_TARGET_BYTES = 256 * 1024;
/**
 * Entries of one shard group appended and not yet answered, at most. Past it, a turn's writes
 * join the entry still open (bigger entries, the same number of appends) until one is answered:
 * the owner's memory stays bounded however far the stream falls behind, and settling unknown
 * outcomes (appended again one at a time) takes at most this many round trips.
 */
export const SHARD_PIPELINE_MAX_ENTRIES = 32;
/** How long an append waits for its ack before its outcome counts as unknown. */
export const SHARD_APPEND_TIMEOUT_MS = 5_000;
/** Unknown outcomes are settled within this long, or the owner gives the group up (well inside the dedup window). */
export const SHARD_SETTLE_DEADLINE_MS = 60_000;
/** Pause between attempts to settle an unknown outcome, or to reach an unavailable stream. */
export const SHARD_RETRY_MS = 200;
/** Reads of the streams (get, info, last on subject) give up after this long. */
export const STREAM_READ_TIMEOUT_MS = 2_000;
/** Gets in flight while a replica catches up from the stream. */
export const CATCHUP_PARALLEL_GETS = 32;
/** Entries a standby applies in one local transaction at most. */
export const REPLICA_APPLY_BATCH_ENTRIES = 512;
/** An idle owner tells its standbys its last sequence this often (a lost entry is noticed within it). */
export const REPLICA_HEAD_BEAT_MS = 1_000;
/**
 * A group snapshot (core/cluster/GroupSnapshot.ts) goes out in chunks of about this many bytes
 * (a single record bigger than it goes alone; records are at most an entry's size, so a chunk
 * stays below NATS's 1 MiB max_payload).
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
/** Each request of a snapshot transfer (its header, one chunk) waits this long for the peer's answer. */
export const SNAPSHOT_REQUEST_TIMEOUT_MS = 5_000;
/** A snapshot taken for a peer and not fully sent is dropped this long after its last chunk was asked for. */
export const SNAPSHOT_HOLD_MS = 30_000;
/** Snapshots a replica holds for peers at once (the oldest is dropped for a new one). */
export const SNAPSHOT_HELD_MAX = 2;
/** Attempts of a takeover (catch up, claim, marker) before it gives up and the control plane tries again. */
export const TAKEOVER_ATTEMPTS = 20;
/** After a takeover was given up, the control plane waits this long before trying again. */
export const TAKEOVER_BACKOFF_MS = 1_000;
/** A hand-off the successor has not taken over within this long is taken back by the owner. */
export const HANDOFF_TIMEOUT_MS = 10_000;
/** A standby this many entries (or fewer) behind the owner may be handed the group. */
export const MOVE_MAX_LAG_ENTRIES = 64;
/**
 * After a router shard starts on a new owner, users of its group still shown online with no
 * session registered here after this long are set offline (their sessions died with the old
 * owner's node; live ones re-register within route_retry_ms of their shard going down).
 */
export const PRESENCE_SWEEP_AFTER_MS = 5_000;
/**
 * A router shard tells a session on another node how many deliveries it sent it (`delivered`),
 * this long after the last one and again later: core NATS may lose a delivery without either
 * node noticing (a cut shorter than the membership's down-after), and a session that hears of
 * one it never got has its connection read the inbox again. The last note comes after the
 * default down-after (2 s) has passed twice: a cut that lost the delivery without taking the
 * node down is over by then.
 */
export const DELIVERY_NOTE_DELAYS_MS: readonly number[] = [1_000, 4_000];
/** How often a router shard looks for sessions owed a delivery note. */
export const DELIVERY_NOTE_TICK_MS = 500;
/** A session's read of its inbox from the shard on another node is asked again after this long without an answer. */
export const SESSION_READ_TIMEOUT_MS = 2_000;
/** How long /cluster/status waits for each node's report of its replicas. */
export const CLUSTER_STATUS_TIMEOUT_MS = 1_000;
/** Presence snapshot entries per reply message. */
export const PRESENCE_SNAPSHOT_CHUNK = 2_000;
/** A presence snapshot request gives up after this long. */
export const PRESENCE_SNAPSHOT_TIMEOUT_MS = 2_000;
/** A presence snapshot that could not be had (no answer, or not from the owner asked) is asked again after this long. */
export const PRESENCE_SNAPSHOT_RETRY_MS = 1_000;
/**
 * A node that published no presence change for this long publishes an empty numbered batch, so
 * a node that lost its last change (core NATS is at most once) sees the gap within this long
 * and asks that node's groups for a snapshot.
 */
export const PRESENCE_BEAT_MS = 1_000;
/** Reads of a control record that a compare-and-append was told is a duplicate (a lagging replica may not have it yet). */
export const CONTROL_DUPLICATE_READS = 5;
