/**
 * The Env door: the only way runtime, actor, edge and core code reaches time, timers,
 * randomness, the cluster transport, storage and logging.
 *
 * Production binds it to real clocks, timers, NATS and LMDB (runtime/node/ProductionEnv.ts);
 * the simulator binds it to a discrete-event kernel. Code above the Env must never call
 * Date.now, Math.random, setTimeout or touch sockets/files directly (a lint rule enforces it),
 * so the same code runs unchanged and deterministically under simulation.
 */

export interface Clock {
  /** Monotonic milliseconds (fractional allowed), for durations and deadlines. */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the Unix epoch, for timestamps shown to users. */
  wallMs(): number;
}

export type TimerHandle = unknown;

export interface Timers {
  /** Run `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  /** Run `fn` soon, after pending I/O (the scheduler's run loop uses this). */
  defer(fn: () => void): void;
}

export interface Random {
  /** Uniform in [0, 1). */
  float(): number;
  /** Uniform unsigned 32-bit integer. */
  uint32(): number;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

/** Structured log sink; production uses pino. Fields are plain data. */
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Cluster messaging with NATS semantics (core NATS: at most once, per-publisher order). */
export interface ClusterTransport {
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string) => void, opts?: { queue?: string }): { unsubscribe(): void };
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Transactional key-value storage that tells "committed" from "durably flushed".
 * `put`/`remove` batches are applied in order; the returned promise resolves only once the
 * batch is on stable storage (group commit with fsync in production).
 */
export interface StorageEngine {
  openTable(name: string): StorageTable;
  close(): Promise<void>;
}

export interface StorageTable {
  get(key: StorageKey): Uint8Array | undefined;
  put(key: StorageKey, value: Uint8Array): Promise<boolean>;
  remove(key: StorageKey): Promise<boolean>;
  range(opts: { start?: StorageKey; end?: StorageKey; limit?: number; reverse?: boolean }): Iterable<{ key: StorageKey; value: Uint8Array }>;
}

export type StorageKey = string | number | Array<string | number>;

export interface Env {
  readonly clock: Clock;
  readonly timers: Timers;
  readonly random: Random;
  readonly log: Logger;
  /** Pool for CPU-heavy jobs; the simulator runs them inline. */
  readonly dirty: DirtyWork;
  /** Present when the node is part of a cluster; absent for the embedded single node. */
  readonly transport?: ClusterTransport;
  /** Present when the node stores data; the runtime itself never needs it. */
  readonly storage?: StorageEngine;
}

/** A logger that drops everything; handy default for tests of pure logic. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * CPU-heavy work off the schedulers (BEAM's dirty schedulers). `module` is an importable
 * URL or path and `fn` a named export taking one serialisable argument.
 */
export interface DirtyWork {
  run<T = unknown>(module: string, fn: string, arg: unknown): Promise<T>;
}
