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
/** Groups and key-directory entries kept in memory; the least recently used beyond it are dropped (storage is the truth). */
export const STATE_CACHE_ENTRIES = 10_000;
