/**
 * One process: its mailbox (a system-signal lane ahead of the user queue), its links and
 * monitors, and the context object its code runs with.
 *
 * Kept deliberately small: every field an idle process does not need is null until used, so
 * an idle handler-style process costs a few hundred bytes. All the rules (who runs when,
 * what an exit signal does) live in Scheduler.ts; this file holds data and thin delegations.
 */
import type { Env } from './Env.js';
import type { ExitReason } from './ExitReason.js';
import type { NodeMember } from './Membership.js';
import type { Pid, Ref } from './Pid.js';
import type {
  MailboxLimit,
  MessageHandler,
  ModuleSpec,
  ProcessBody,
  ProcessContext,
  ProcessInfo,
  RemoteSpawnResult,
  SendAfterOptions,
  SpawnOptions,
  Timeout,
} from './ProcessContext.js';
import type { Scheduler } from './Scheduler.js';
import type { SmallMap } from './SmallMap.js';

/** Process flag bits. */
export const F_QUEUED = 1; // in the run queue
export const F_BUSY = 2; // an async handler/body is in flight
export const F_STARTING = 4; // body not run yet
export const F_DEAD = 8;
export const F_TRAP = 16;
export const F_STOPPING = 32; // exit(reason) requested by the process itself
export const F_RUNNING = 64;

export interface Waiter {
  match: ((m: unknown) => boolean) | undefined;
  /**
   * Made while a synchronous handler ran (an error: the handler cannot await it), rather than by
   * an async continuation of the process (a job awaiting a reply while the handler takes the
   * other messages).
   */
  inHandler: boolean;
  resolve: (m: unknown) => void;
  reject: (e: unknown) => void;
  timer: unknown;
}

export interface MonitorEntry {
  ref: Ref;
  pid: Pid;
}

export class Process implements ProcessContext {
  flags = F_STARTING;
  /** The body until started, then the message handler. */
  handler: MessageHandler | ProcessBody | null;
  /** User mailbox as [msg, trace, msg, trace, ...] between indexes qh (head) and qt (tail). */
  q: unknown[] | null = null;
  qh = 0;
  qt = 0;
  /** System lane: EXIT/DOWN/MAILBOX_FULL and system timers, delivered before user messages. */
  sig: unknown[] | null = null;
  waiter: Waiter | null = null;
  /** Linked pids by key. */
  links: SmallMap<Pid> | null = null;
  /** Monitors this process holds, by ref key. */
  monitors: SmallMap<MonitorEntry> | null = null;
  /** Monitors others hold on this process, by ref key (entry.pid is the watcher). */
  monitoredBy: SmallMap<MonitorEntry> | null = null;
  /** Pending timers whose message is for this process, by ref key (cancelled when it exits). */
  timers: SmallMap<true> | null = null;
  handled = 0;
  traceId = 0;
  /** The behaviour label given at spawn (usually a shared constant, so kept here, not in `extra`). */
  label: string | null = null;
  /** Rare fields (name, mailbox limit, exit reason, watermark) live here when set. */
  extra: ProcessExtra | null = null;

  constructor(
    readonly self: Pid,
    readonly s: Scheduler,
    body: ProcessBody,
  ) {
    this.handler = body;
  }

  // ---- ProcessContext: delegations to the scheduler -------------------------------------

  get env(): Env {
    return this.s.env;
  }
  get node(): string {
    return this.s.node;
  }
  get schedulerId(): number {
    return this.s.id;
  }
  send(to: Pid | string, msg: unknown): void {
    if ((this.flags & F_DEAD) === 0) this.s.send(to, msg, this);
  }
  sendNamed(name: string, sched: number, msg: unknown, node?: string): void {
    if ((this.flags & F_DEAD) === 0) this.s.sendNamed(name, sched, msg, this, node);
  }
  receive<T = unknown>(match?: (msg: unknown) => boolean, timeoutMs?: number): Promise<T | Timeout> {
    return this.s.receive(this, match, timeoutMs) as Promise<T | Timeout>;
  }
  spawn(body: ProcessBody, opts?: SpawnOptions): Pid {
    return this.s.spawn(body, opts, this);
  }
  spawnLink(body: ProcessBody, opts?: SpawnOptions): Pid {
    return this.s.spawn(body, { ...opts, link: true }, this);
  }
  spawnMonitor(body: ProcessBody, opts?: SpawnOptions): [Pid, Ref] {
    const pid = this.s.spawn(body, { ...opts, monitor: true }, this);
    return [pid, this.s.lastSpawnMonitorRef as Ref];
  }
  spawnOn(sched: number, spec: ModuleSpec, opts?: SpawnOptions, node?: string): Promise<RemoteSpawnResult> {
    return this.s.spawnOn(sched, spec, opts, this, node);
  }
  link(pid: Pid): void {
    this.s.link(this, pid);
  }
  unlink(pid: Pid): void {
    this.s.unlink(this, pid);
  }
  monitor(pid: Pid | string): Ref {
    return this.s.monitor(this, pid);
  }
  demonitor(ref: Ref, opts?: { flush?: boolean }): boolean {
    return this.s.demonitor(this, ref, opts?.flush === true);
  }
  trapExit(on: boolean): boolean {
    const was = (this.flags & F_TRAP) !== 0;
    if (on) this.flags |= F_TRAP;
    else this.flags &= ~F_TRAP;
    return was;
  }
  exit(reason: ExitReason): void {
    this.s.requestStop(this, reason);
  }
  sendExit(pid: Pid, reason: ExitReason): void {
    this.s.sendExit(this, pid, reason);
  }
  sendAfter(ms: number, msg: unknown, to?: Pid, opts?: SendAfterOptions): Ref {
    return this.s.sendAfter(ms, msg, to ?? this.self, opts?.system === true, this);
  }
  cancelTimer(ref: Ref): number | false {
    return this.s.cancelTimer(ref);
  }
  makeRef(): Ref {
    return this.s.makeRef();
  }
  setHandler(handler: MessageHandler): void {
    this.handler = handler;
  }
  hibernate(): void {
    if (this.q !== null && this.qt === this.qh) {
      this.q = null;
      this.qh = this.qt = 0;
    }
    if (this.sig !== null && this.sig.length === 0) this.sig = null;
  }
  register(name: string): boolean {
    return this.s.register(name, this.self);
  }
  unregister(name: string): boolean {
    return this.s.unregister(name);
  }
  whereis(name: string): Pid | undefined {
    return this.s.whereis(name);
  }
  nodes(): NodeMember[] {
    return this.s.nodes();
  }
  monitorNodes(on: boolean): void {
    this.s.monitorNodes(this, on);
  }
  isAlive(pid: Pid): boolean {
    return this.s.isAlive(pid);
  }
  info(pid?: Pid): ProcessInfo | undefined {
    return this.s.info(pid ?? this.self);
  }
  setTraceId(id: number): void {
    this.traceId = id;
  }

  // ---- mailbox helpers used by the scheduler --------------------------------------------

  queueLength(): number {
    return ((this.qt - this.qh) >> 1) + (this.sig === null ? 0 : this.sig.length);
  }

  /** Drop consumed slots at the head once they outweigh the live ones. */
  compact(): void {
    const q = this.q;
    if (q === null) return;
    if (this.qh === this.qt) {
      this.qh = this.qt = 0;
      q.length = 0;
    } else if (this.qh * 2 > this.qt) {
      q.copyWithin(0, this.qh, this.qt);
      this.qt -= this.qh;
      this.qh = 0;
      q.length = this.qt;
    }
  }

  /** Remove the message at index i (selective receive). */
  removeAt(i: number): void {
    const q = this.q as unknown[];
    if (i === this.qh) {
      q[i] = undefined;
      this.qh += 2;
      if (this.qh === this.qt) this.qh = this.qt = 0;
      return;
    }
    q.copyWithin(i, i + 2, this.qt);
    this.qt -= 2;
    q[this.qt] = undefined;
    q[this.qt + 1] = undefined;
  }

  ext(): ProcessExtra {
    return (this.extra ??= new ProcessExtra());
  }
}

export class ProcessExtra {
  name: string | null = null;
  limit: MailboxLimit | null = null;
  exitReason: ExitReason | undefined = undefined;
  highWatermark = 0;
  /** Exit reason requested through ctx.exit, applied when the handler returns. */
  stopReason: ExitReason | undefined = undefined;
}
