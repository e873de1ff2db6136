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
