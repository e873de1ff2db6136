/**
 * What actor code sees of its own process: the public API of the kernel.
 *
 * A process is started from a `ProcessBody`: a function of the context that either returns a
 * message handler (handler style, the hot path: the scheduler calls it once per message) or
 * runs to completion as an async body using selective `receive` (process style). Either way
 * one process runs one handler at a time and never on two threads.
 */
import type { Env } from './Env.js';
import type { ExitReason } from './ExitReason.js';
import type { NodeMember } from './Membership.js';
import type { Pid, Ref } from './Pid.js';

/** Handles one message; returning a promise keeps the process busy until it settles. */
export type MessageHandler = (msg: unknown) => void | Promise<void>;

/**
 * Starts a process. Return a handler to receive messages one by one; return nothing (or a
 * promise of nothing) to exit `normal` when the body completes.
 */
export type ProcessBody = (ctx: ProcessContext) => MessageHandler | void | Promise<MessageHandler | void>;

/** A process body named by module so it can be started on another thread or node. */
export interface ModuleSpec {
  /** Absolute file URL (or path) of an ES module. */
  module: string;
  /** Named export: a function `(...args) => ProcessBody`. */
  fn: string;
  args?: unknown[];
}

export type OverflowPolicy = 'drop_newest' | 'drop_oldest' | 'reject' | 'stop';

export interface MailboxLimit {
  /** Most user messages the mailbox holds (system signals are never dropped). */
  capacity: number;
  /** What happens to a message that arrives when the mailbox is full. */
  overflow: OverflowPolicy;
}

export interface SpawnOptions {
  /** Link parent and child atomically at spawn. */
  link?: boolean;
  /** Monitor the child atomically at spawn (`spawnMonitor` sets it). */
  monitor?: boolean;
  /** Register the child under this local name before it runs. */
  name?: string;
  /** Bound the mailbox; unbounded by default. */
  mailbox?: MailboxLimit;
  /** Behaviour name shown in process info (for example `GenServer`). */
  label?: string;
  /** Start with trapExit already on. */
  trapExit?: boolean;
}

/** Result of spawning on another scheduler or node. */
export type RemoteSpawnResult = { ok: true; pid: Pid; ref?: Ref } | { ok: false; reason: ExitReason };

export type ProcessStatus = 'starting' | 'runnable' | 'running' | 'waiting' | 'busy' | 'exited';

export interface ProcessInfo {
  pid: Pid;
  status: ProcessStatus;
  name: string | null;
  behaviour: string | null;
  messageQueueLen: number;
  /** Highest mailbox length seen (the watermark). */
  queueHighWatermark: number;
  messagesHandled: number;
  /** Rough bytes held by the process (structure, queue, links, monitors). */
  memoryEstimate: number;
  links: Pid[];
  monitors: number;
  monitoredBy: number;
  trapExit: boolean;
  traceId: number;
}

export interface ReceiveOptions {
  /** Resolve with TIMEOUT after this many ms; `Infinity` (default) waits forever, 0 polls. */
  timeoutMs?: number;
}

/** Resolved by `receive` when its timeout passed. */
export const TIMEOUT: unique symbol = Symbol('receive timeout');
export type Timeout = typeof TIMEOUT;

export interface SendAfterOptions {
  /** Deliver in the system lane, ahead of queued user messages (behaviour timeouts use it). */
  system?: boolean;
}

export interface ProcessContext {
  readonly self: Pid;
  readonly env: Env;
  /** This node's name. */
  readonly node: string;
  /** Index of the scheduler running this process. */
  readonly schedulerId: number;

  /** Never blocks, never fails; a message to a dead pid or unknown name is dropped. */
  send(to: Pid | string, msg: unknown): void;
  /** Send to a process registered under `name` on scheduler `sched` of this node (or `node`). */
  sendNamed(name: string, sched: number, msg: unknown, node?: string): void;
  /**
   * Selective receive: the first message (system lane first, then mailbox order) for which
   * `match` is true. Resolves TIMEOUT after `timeoutMs`. Use only from async bodies/handlers.
   */
  receive<T = unknown>(match?: (msg: unknown) => boolean, timeoutMs?: number): Promise<T | Timeout>;

  spawn(body: ProcessBody, opts?: SpawnOptions): Pid;
  spawnLink(body: ProcessBody, opts?: SpawnOptions): Pid;
  spawnMonitor(body: ProcessBody, opts?: SpawnOptions): [Pid, Ref];
  /**
   * Start a module-named body on scheduler `sched` of this node (any thread), or of `node`
   * (another node process: it imports the module by its URL). `link`/`monitor` are set up
   * atomically, as for a local spawn; a node that is not up answers `noconnection`.
   */
  spawnOn(sched: number, spec: ModuleSpec, opts?: SpawnOptions, node?: string): Promise<RemoteSpawnResult>;

  link(pid: Pid): void;
  unlink(pid: Pid): void;
  monitor(pid: Pid | string): Ref;
  /** Remove a monitor; with `flush`, also drop a DOWN for it already queued. False if it had fired. */
  demonitor(ref: Ref, opts?: { flush?: boolean }): boolean;
  /** Turn exit signals into EXIT messages; returns the previous setting. */
  trapExit(on: boolean): boolean;
  /** Stop this process with `reason` when the current handler returns. */
  exit(reason: ExitReason): void;
  /** Send an exit signal to `pid` (erlang:exit/2). `kill` cannot be trapped. */
  sendExit(pid: Pid, reason: ExitReason): void;

  /** Deliver `msg` to `to` (default self) after `ms`; returns a ref for cancelTimer. */
  sendAfter(ms: number, msg: unknown, to?: Pid, opts?: SendAfterOptions): Ref;
  /** Cancel a timer: the ms it had left, or false if it already fired or is unknown. */
  cancelTimer(ref: Ref): number | false;
  makeRef(): Ref;

  /** Replace the message handler (become). */
  setHandler(handler: MessageHandler): void;
  /** Release memory held while idle (empty queue storage); state is the behaviour's to shrink. */
  hibernate(): void;

  register(name: string): boolean;
  unregister(name: string): boolean;
  whereis(name: string): Pid | undefined;
  /** The other nodes of the cluster that are up now (Erlang's `nodes()`), by name. */
  nodes(): NodeMember[];
  /**
   * Receive a NODE_UP / NODE_DOWN message (runtime/Membership.ts) whenever another node comes
   * up or goes down (net_kernel:monitor_nodes); `false` stops them.
   */
  monitorNodes(on: boolean): void;
  /** Whether a pid on this scheduler is alive (false for pids elsewhere: monitor them). */
  isAlive(pid: Pid): boolean;
  info(pid?: Pid): ProcessInfo | undefined;

  /** Trace id of the message being handled; sends inherit it. */
  readonly traceId: number;
  setTraceId(id: number): void;
}
