/**
 * Every runtime limit, timeout and size in one place, with its default.
 * Config keys and other modules refer to these names; never repeat the numbers.
 */

/** Messages one process may handle before the scheduler moves to the next runnable process. */
export const REDUCTIONS_PER_SLICE = 64;
/** Messages a scheduler handles in one run-loop turn before yielding to I/O. */
export const MESSAGES_PER_TURN = 20_000;
/** GenServer.call default timeout (OTP: 5 s). */
export const DEFAULT_CALL_TIMEOUT_MS = 5_000;
/** Supervisor restart intensity: more than this many restarts ... (OTP default 1) */
export const DEFAULT_MAX_RESTARTS = 1;
/** ... within this many seconds shuts the supervisor down (OTP default 5). */
export const DEFAULT_MAX_SECONDS = 5;
/** Default shutdown time for a worker child before it is killed. */
export const DEFAULT_WORKER_SHUTDOWN_MS = 5_000;
/** A handler running longer than this is reported by the watchdog. */
export const HANDLER_BUDGET_MS = 100;
/** A scheduler blocked longer than this is restarted; its processes exit `killed`. */
export const SCHEDULER_HARD_LIMIT_MS = 2_000;
/** How often the watchdog samples scheduler heartbeats. */
export const WATCHDOG_INTERVAL_MS = 50;
/** Mailbox length at which a process is reported above the high watermark. */
export const MAILBOX_HIGH_WATERMARK = 10_000;
/** Maximum envelopes packed into one cross-scheduler batch. */
export const CROSS_BATCH_MAX = 4_096;
/** Bytes of a pid/ref/Map entry used in memory estimates. */
export const ESTIMATED_SLOT_BYTES = 8;

/** Named tables (LMDB databases) one storage environment can hold. */
export const STORAGE_MAX_TABLES = 32;

// ---- distribution (runtime/Distribution.ts, runtime/node/NatsTransport.ts) ----------------

/** How often a node announces itself on the cluster's heartbeat subject. */
export const CLUSTER_HEARTBEAT_MS = 500;
/** A node heard nothing from for this long is declared down (RT11: at most 3 s). */
export const CLUSTER_DOWN_AFTER_MS = 2_000;
/** Most envelopes one NATS publish to another node carries (a turn's batch is split beyond it). */
export const NODE_BATCH_MAX = 4_096;
/** Down peers remembered (to recognise them when they come back with the same incarnation). */
export const CLUSTER_MAX_DOWN_RECORDS = 1_024;
/** Wait between reconnect attempts to NATS (plus up to the same again of jitter). */
export const NATS_RECONNECT_WAIT_MS = 250;
/** Time allowed for the first connection to NATS before a node start fails. */
export const NATS_CONNECT_TIMEOUT_MS = 5_000;
/** Client pings to the NATS server; two unanswered ones mark the link down (a silent server). */
export const NATS_PING_INTERVAL_MS = 5_000;

/** How long a global name registration keeps retrying while another node holds the name's lock. */
export const GLOBAL_LOCK_DEADLINE_MS = 3_000;
/** Upper bound of the random pause before a registration retries a contended lock. */
export const GLOBAL_LOCK_BACKOFF_MS = 40;

// ---- replicated logs (runtime/node/JetStreamStore.ts, the Env's StreamStore) -------------

/** How long an append waits for its ack when the caller gives no timeoutMs (JetStream's client default). */
export const STREAM_APPEND_TIMEOUT_MS = 5_000;
/** How long a direct get or a stream info waits for an answer when the caller gives none. */
export const STREAM_READ_TIMEOUT_MS = 2_000;
/** How long a stream create/validate waits for the JetStream API (the meta leader) before `timeout`. */
export const STREAM_API_TIMEOUT_MS = 5_000;
/** Servers holding a copy of each stream in production (R3: survives the loss of one). */
export const STREAM_REPLICAS = 3;
/** Msg-Id duplicate window of a stream (JetStream's default; retries of unknown outcomes must land within it). */
export const STREAM_DUPLICATE_WINDOW_MS = 120_000;
