/**
 * The call protocol shared by GenServer and StateMachine: synchronous `call` with a timeout,
 * `cast`, deferred `reply`, and calling from outside any process. Once a call has returned,
 * no monitor or DOWN of it is left in the caller, and a reply that comes later never reaches
 * a behaviour callback.
 *
 * Protocol. A call sends `{$gen: 'call', from: {pid, ref}, request}` where `ref` is a monitor
 * the caller holds on the server for the length of the call (OTP's `Mref` tag). The server
 * answers `{$gen: 'reply', ref, value}` to `from.pid`. The caller selectively receives the
 * reply or the monitor's DOWN:
 *
 * - reply            → `{ok: true, value}`
 * - DOWN noproc      → `{ok: false, reason: 'noproc'}` at once (dead pid, unregistered name)
 * - DOWN other       → `{ok: false, reason}`: the server's exit reason (it died in the call)
 * - nothing in time  → `{ok: false, reason: 'timeout'}`
 * - server is caller → `{ok: false, reason: 'calling_self'}` without sending anything
 *
 * After any outcome the monitor is removed with flush, and a reply that raced the DOWN or
 * the timeout (already queued) is taken and returned, so a server that replied and then
 * stopped still answers. The default timeout is DEFAULT_CALL_TIMEOUT_MS (5 s).
 *
 * Late replies. A reply that arrives after the caller gave up cannot be recalled: it is sent
 * to the caller's pid. It is dropped instead of surfacing:
 *
 * - in GenServer and StateMachine processes, the behaviour drops every reply-shaped message
 *   it is handed (`isCallReply`): replies the process awaits are taken by the selective
 *   receive inside `call`, so anything reaching the handler is late by construction and
 *   never reaches a callback;
 * - `callFrom` (tests, node code) runs the call in a temporary process that exits with the
 *   call, so a late reply is addressed to a dead pid and the kernel drops it;
 * - a plain handler-style process that calls must ignore messages for which
 *   `isCallReply(msg)` holds (the one place the rule is not automatic).
 *
 * `call` uses `receive`, so it must run in async code (an async callback or handler): the
 * process is busy for the length of the call, like a blocked Erlang process.
 */
import { isDownMessage, type DownMessage, type ExitReason } from '../runtime/ExitReason.js';
import { pidEquals, refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import { TIMEOUT, type ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../runtime/defaults.js';

// ---- public types ----------------------------------------------------------------------

/** Who is waiting for a reply: the caller's pid and the call's tag (OTP `From`). */
export interface From {
  readonly pid: Pid;
  readonly ref: Ref;
}

/** Why a call gave no reply: `timeout`, `noproc`, `calling_self`, or the server's exit reason. */
export type CallFailure = 'timeout' | 'noproc' | 'calling_self' | ExitReason;

export type CallResult<R = unknown> = { ok: true; value: R } | { ok: false; reason: CallFailure };

/** A server address: a pid or a name registered on this scheduler. */
export type ServerRef = Pid | string;

/** Where a message can be sent from: inside a process, or from outside through its scheduler. */
export type Sender = ProcessContext | Scheduler;

// ---- wire messages ---------------------------------------------------------------------

export interface CallMessage {
  readonly $gen: 'call';
  readonly from: From;
  readonly request: unknown;
}

export interface ReplyMessage {
  readonly $gen: 'reply';
  readonly ref: Ref;
  readonly value: unknown;
}

export interface CastMessage {
  readonly $gen: 'cast';
  readonly msg: unknown;
}

/** The `$gen` tag of a behaviour protocol message, or undefined for any other message. */
export function genTag(msg: unknown): string | undefined {
  if (typeof msg !== 'object' || msg === null) return undefined;
  const t = (msg as { $gen?: unknown }).$gen;
  return typeof t === 'string' ? t : undefined;
}

/** A reply to some call; outside the receive of its own call it is a late reply. */
export function isCallReply(msg: unknown): msg is ReplyMessage {
  return genTag(msg) === 'reply';
}

function isReplyTo(msg: unknown, ref: Ref): msg is ReplyMessage {
  return isCallReply(msg) && refEquals(msg.ref, ref);
}

function isDownFor(msg: unknown, ref: Ref): msg is DownMessage {
  return isDownMessage(msg) && refEquals(msg.ref, ref);
}

// ---- public API ------------------------------------------------------------------------

/**
 * Send `request` to `server` and wait for its reply, at most `timeoutMs` (Infinity waits for
 * ever; the monitor still ends the wait if the server dies). Only from async code.
 */
export async function call<R = unknown>(
  ctx: ProcessContext,
  server: ServerRef,
  request: unknown,
  timeoutMs: number = DEFAULT_CALL_TIMEOUT_MS,
): Promise<CallResult<R>> {
  if (isSelf(ctx, server)) return { ok: false, reason: 'calling_self' };
  const ref = ctx.monitor(server);
  const msg: CallMessage = { $gen: 'call', from: { pid: ctx.self, ref }, request };
  ctx.send(server, msg);
  const got = await ctx.receive((m) => isReplyTo(m, ref) || isDownFor(m, ref), timeoutMs);
  ctx.demonitor(ref, { flush: true });
  if (got !== TIMEOUT && isReplyTo(got, ref)) return { ok: true, value: got.value as R };
  // The server may have replied just before it died or just as the timeout fired: that reply
  // is the answer, and taking it keeps it from lingering as a late reply.
  const raced = await ctx.receive((m) => isReplyTo(m, ref), 0);
  if (raced !== TIMEOUT) return { ok: true, value: (raced as ReplyMessage).value as R };
  if (got === TIMEOUT) return { ok: false, reason: 'timeout' };
  return { ok: false, reason: (got as DownMessage).reason };
}

/** `call` from outside any process: runs in a temporary process that exits with the call. */
export function callFrom<R = unknown>(
  scheduler: Scheduler,
  server: ServerRef,
  request: unknown,
  timeoutMs: number = DEFAULT_CALL_TIMEOUT_MS,
): Promise<CallResult<R>> {
  return inTemporaryProcess(scheduler, (ctx) => call<R>(ctx, server, request, timeoutMs), 'call');
}

/** Fire-and-forget request; never fails (a cast to a dead server is dropped). */
export function cast(from: Sender, server: ServerRef, msg: unknown): void {
  send(from, server, { $gen: 'cast', msg } satisfies CastMessage);
}

/** Answer a call later (the callback returned `noreply` and kept `from`). */
export function reply(from: Sender, to: From, value: unknown): void {
  send(from, to.pid, { $gen: 'reply', ref: to.ref, value } satisfies ReplyMessage);
}

/**
 * Run `fn` inside a fresh, unlinked process on `scheduler` and resolve with its result
 * (reject if it throws or the process is killed). The process has exited by the time the
 * promise settles, so nothing sent to it afterwards (a late reply) can land anywhere.
 */
export function inTemporaryProcess<T>(scheduler: Scheduler, fn: (ctx: ProcessContext) => Promise<T>, label = 'temporary'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    scheduler.spawn(
      async (ctx) => {
        let settle: () => void;
        try {
          const value = await fn(ctx);
          settle = () => resolve(value);
        } catch (err) {
          settle = () => reject(err);
        }
        // exit(self(), normal): the process is gone now, not when this body's promise settles.
        ctx.sendExit(ctx.self, 'normal');
        settle();
      },
      { label },
    );
  });
}

// ---- for other behaviours ----------------------------------------------------------------

export function isContext(x: Sender): x is ProcessContext {
  return 'self' in x;
}

/** Send as the process, or from outside (no sender) through the scheduler. */
export function send(from: Sender, to: ServerRef, msg: unknown): void {
  if (isContext(from)) from.send(to, msg);
  else from.send(to, msg, null);
}

function isSelf(ctx: ProcessContext, server: ServerRef): boolean {
  if (typeof server === 'string') return pidEquals(ctx.whereis(server), ctx.self);
  return pidEquals(server, ctx.self);
}
