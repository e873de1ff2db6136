/**
 * Starting and stopping behaviour processes (OTP's proc_lib and sys:terminate), shared by
 * GenServer and StateMachine. `start` returns only after the child's init ran; a failed start
 * never leaves a live child, a monitor or an EXIT message behind in the starter.
 *
 * Start protocol. The starter spawns the child with an atomic monitor (and link, for
 * `startLink`), then waits for the child's acknowledgement `{$gen: 'ack', tag, outcome}`:
 *
 * - `ok`            → `{ok: true, pid}`; the child runs on.
 * - `ignore`        → the child exits `normal`; `{ok: false, reason: 'ignore'}`.
 * - `{stop: R}`     → the child exits with R; `{ok: false, reason: R}`.
 * - init crashed    → no ack; the DOWN gives `{ok: false, reason: <crash reason>}`.
 * - name taken      → `{ok: false, reason: {already_started: pid}}`, nothing spawned.
 * - `timeoutMs` (default Infinity) passed → the child is killed; `{ok: false, reason: 'timeout'}`.
 *
 * A failed start returns after the child is dead. With `startLink`, a starter that traps exits
 * has the child's EXIT removed from its mailbox; a starter that does not trap exits is killed
 * by the link when init fails with an abnormal reason, exactly as in OTP (so supervisors, which
 * trap exits, are the natural callers of `startLink`).
 *
 * Parent. A child started with `startLink` has the starter as its parent: if it traps exits
 * and receives the parent's EXIT, the behaviour runs `terminate` with that reason and exits
 * with it (OTP). A child started with `start` has no parent.
 *
 * Stop. `stop(ctx, server, reason)` asks the behaviour to run `terminate(reason)` and exit with
 * `reason`; it waits (default for ever) for the DOWN: `{ok: true}` when the server exited with
 * `reason`, `noproc` if it was not running, `timeout`, or the other reason it exited with.
 */
import { describeReason, isDownMessage, isExitMessage, type DownMessage, type ExitMessage, type ExitReason } from '../runtime/ExitReason.js';
import { pidEquals, refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import { TIMEOUT, type MailboxLimit, type ProcessBody, type ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { genTag, inTemporaryProcess, isContext, type ServerRef } from './Call.js';
import { badReturn } from './internal/callbacks.js';

// ---- public types ----------------------------------------------------------------------

export interface StartOptions {
  /** Register the process under this local name before init runs. */
  name?: string;
  /** Bound the mailbox (unbounded by default). */
  mailbox?: MailboxLimit;
  /** Behaviour label shown in process info (defaults to the behaviour's name). */
  label?: string;
  /** Trap exits from the start (init may also call `ctx.trapExit(true)`). */
  trapExit?: boolean;
  /** Give up on init after this many ms and kill the child (default Infinity, as in OTP). */
  timeoutMs?: number;
  /** Hibernate after this many ms without a message (between 1x and 2x; default never). */
  idleHibernateMs?: number;
}

/**
 * `{ok: true, pid}` once init succeeded. Failures: `'ignore'` (init ignored), `'timeout'`,
 * `{already_started: pid}`, or the reason init stopped or crashed with.
 */
export type StartResult = { ok: true; pid: Pid } | { ok: false; reason: ExitReason };

export type StopResult = { ok: true } | { ok: false; reason: 'noproc' | 'timeout' | ExitReason };

/** What a child knows about who started it. */
export interface StartedBy {
  readonly starter: Pid;
  readonly tag: Ref;
  /** The linked starter; null for `start`. */
  readonly parent: Pid | null;
}

/** How init ended, as the child reports it to the starter. */
export type InitOutcome = 'ok' | 'ignore' | { stop: ExitReason };

interface AckMessage {
  readonly $gen: 'ack';
  readonly tag: Ref;
  readonly outcome: InitOutcome;
}

export interface StopRequest {
  readonly $gen: 'stop';
  readonly reason: ExitReason;
}

// ---- starter side ----------------------------------------------------------------------

/** Start a child running `makeBody(startedBy)` and wait for its init (see file header). */
export function startBehaviour(
  where: ProcessContext | Scheduler,
  link: boolean,
  opts: StartOptions,
  defaultLabel: string,
  makeBody: (by: StartedBy) => ProcessBody,
): Promise<StartResult> {
  if (isContext(where)) return startIn(where, link, opts, defaultLabel, makeBody);
  return inTemporaryProcess(where, (ctx) => startIn(ctx, false, opts, defaultLabel, makeBody), 'starter');
}

async function startIn(
  ctx: ProcessContext,
  link: boolean,
  opts: StartOptions,
  defaultLabel: string,
  makeBody: (by: StartedBy) => ProcessBody,
): Promise<StartResult> {
  if (opts.name !== undefined) {
    const existing = ctx.whereis(opts.name);
    if (existing !== undefined) return { ok: false, reason: { already_started: existing } };
  }
  const tag = ctx.makeRef();
  const by: StartedBy = { starter: ctx.self, tag, parent: link ? ctx.self : null };
  const [pid, mref] = ctx.spawnMonitor(makeBody(by), {
    link,
    name: opts.name,
    mailbox: opts.mailbox,
    label: opts.label ?? defaultLabel,
    trapExit: opts.trapExit,
  });
  const isDown = (m: unknown): m is DownMessage => isDownMessage(m) && refEquals(m.ref, mref);
  const isAck = (m: unknown): m is AckMessage => genTag(m) === 'ack' && refEquals((m as AckMessage).tag, tag);
  const got = await ctx.receive((m) => isAck(m) || isDown(m), opts.timeoutMs ?? Infinity);

  if (got === TIMEOUT) {
    if (link) ctx.unlink(pid);
    ctx.demonitor(mref, { flush: true });
    ctx.sendExit(pid, 'kill');
    await ctx.receive(isAck, 0);
    return { ok: false, reason: 'timeout' };
  }
  if (isAck(got) && got.outcome === 'ok') {
    ctx.demonitor(mref, { flush: true });
    return { ok: true, pid };
  }
  // Init failed: wait for the child to be gone, then clear its EXIT if we trap exits.
  const down = isDown(got) ? got : ((await ctx.receive(isDown)) as DownMessage);
  if (link) await ctx.receive((m) => isExitMessage(m) && pidEquals(m.from, pid), 0);
  if (isAck(got)) return { ok: false, reason: got.outcome === 'ignore' ? 'ignore' : (got.outcome as { stop: ExitReason }).stop };
  return { ok: false, reason: down.reason };
}

// ---- child side ------------------------------------------------------------------------

/** Report init's outcome to the starter; on failure the child must exit right after. */
export function ackInit(ctx: ProcessContext, by: StartedBy, outcome: InitOutcome): void {
  ctx.send(by.starter, { $gen: 'ack', tag: by.tag, outcome } satisfies AckMessage);
}

/**
 * Handles an init result that does not start the behaviour: a malformed value (exit
 * `{bad_return_value}`), `{ignore: true}` (exit normal) or `{stop: reason}`. It acknowledges
 * the starter and exits the process; true means the caller must not start. `started` tells
 * the behaviour's own success shape.
 */
export function refuseInit(ctx: ProcessContext, by: StartedBy, r: unknown, started: (x: object) => boolean): boolean {
  if (typeof r !== 'object' || r === null || !('ignore' in r || 'stop' in r || started(r))) {
    const reason = badReturn(r);
    ackInit(ctx, by, { stop: reason });
    ctx.exit(reason);
    return true;
  }
  if ('ignore' in r) {
    ackInit(ctx, by, 'ignore');
    ctx.exit('normal');
    return true;
  }
  if ('stop' in r) {
    const reason = (r as { stop: ExitReason }).stop;
    ackInit(ctx, by, { stop: reason });
    ctx.exit(reason);
    return true;
  }
  return false;
}

/** The EXIT of the linked parent, which makes a trapping behaviour terminate with its reason. */
export function isParentExit(msg: unknown, parent: Pid | null): msg is ExitMessage {
  return parent !== null && isExitMessage(msg) && pidEquals(msg.from, parent);
}

// ---- stop ------------------------------------------------------------------------------

/** Orderly stop: the server runs `terminate(reason)` and exits with `reason` (see header). */
export async function stop(ctx: ProcessContext, server: ServerRef, reason: ExitReason = 'normal', timeoutMs = Infinity): Promise<StopResult> {
  const mref = ctx.monitor(server);
  ctx.send(server, { $gen: 'stop', reason } satisfies StopRequest);
  const got = await ctx.receive<DownMessage>((m) => isDownMessage(m) && refEquals(m.ref, mref), timeoutMs);
  if (got === TIMEOUT) {
    ctx.demonitor(mref, { flush: true });
    return { ok: false, reason: 'timeout' };
  }
  if (describeReason(got.reason) === describeReason(reason)) return { ok: true };
  return { ok: false, reason: got.reason };
}

/** `stop` from outside any process. */
export function stopFrom(scheduler: Scheduler, server: ServerRef, reason: ExitReason = 'normal', timeoutMs = Infinity): Promise<StopResult> {
  return inTemporaryProcess(scheduler, (ctx) => stop(ctx, server, reason, timeoutMs), 'stopper');
}
