/**
 * Supervisor: a process that starts child processes, watches them through links and
 * restarts them by a strategy (OTP supervisor.erl semantics). It never does a child's work
 * and never runs two copies of one child at once.
 *
 * ## Starting
 *
 * `startLink(ctx, spec, {name?})` starts a supervisor linked to the calling process (its
 * parent) and resolves once every child has started: `{ok: true, pid}`, or
 * `{ok: false, reason}` when a child failed to start (the supervisor then stopped the
 * children it had started, in reverse order, and exited with
 * `{shutdown: {failed_to_start_child: id, reason}}`; a parent that does not trap exits dies
 * of that reason, as in OTP; see Lifecycle.ts for the start protocol). A spec that fails
 * validation is refused before any process starts: `{ok: false, reason: {bad_start_spec}}`;
 * a taken name gives `{already_started: pid}`. `start(ctxOrScheduler, spec)` starts an
 * unlinked supervisor (a root, or from a test). The supervisor traps exits. An EXIT from
 * its parent makes it stop every child and exit with the parent's reason; that is how a
 * parent supervisor shuts it down.
 *
 * ## Flags (`SupervisorFlags`), with defaults
 *
 * - `strategy` (default `one_for_one`)
 *   - `one_for_one`: only the child that exited is restarted.
 *   - `one_for_all`: every other child is stopped (reverse start order) and then every child
 *     is started again (start order). Children stopped with `terminateChild` are started
 *     again too, exactly as OTP does.
 *   - `rest_for_one`: the children started after the one that exited are stopped (reverse
 *     order), then it and they are started again (start order).
 *   - `simple_one_for_one`: one child spec is a template; no child starts at init; each
 *     `startChild(extraArgs)` starts one more child with `template.start(ctx, ...extraArgs)`.
 *     Restarts are one_for_one. All its children are stopped together (not one by one) with
 *     the template's shutdown.
 * - `intensity` (default `DEFAULT_MAX_RESTARTS` = 1) and `period` in seconds (default
 *   `DEFAULT_MAX_SECONDS` = 5): a restart counts while it is at most `period` seconds old
 *   (by `ctx.env.clock`). When a restart would make the count exceed `intensity`, the
 *   supervisor does not restart: it stops all children (reverse start order) and exits with
 *   reason `shutdown`. Its parent sees a child that exited `shutdown`: a permanent child,
 *   so the parent restarts it (or, past its own intensity, gives up in turn): escalation.
 *   `intensity: 0` means any restart shuts the supervisor down.
 * - `backoff` (default none: restart at once): `{minMs, maxMs, jitter}`. A restart first
 *   stops the children the strategy would stop, marks the exited child `restarting`, and
 *   starts them after `min(maxMs, minMs * 2^n) * (1 + jitter * r)` ms, where `n` is how many
 *   times this child was already restarted within the last `period` seconds and `r` is
 *   uniform in [0, 1) from `ctx.env.random`. The intensity check happens when the child
 *   exits, not when the delay ends.
 *
 * ## Child spec (`ChildSpec`), field by field
 *
 * - `id`: unique name of the child within the supervisor (ignored for simple_one_for_one
 *   children, which are named by pid).
 * - `start(ctx, ...extra)`: called in the supervisor's process with the supervisor's
 *   context. It must start the child *linked to the supervisor* (`ctx.spawnLink`, a
 *   behaviour's `startLink(ctx, ...)`, `ctx.spawnOn(..., {link: true})`) and return
 *   `{ok: true, pid}`, `{ok: false, reason}` or `{ignore: true}`. A start that throws counts as
 *   `{ok: false, reason}`; `{ok: false, reason: 'ignore'}` (what a behaviour's `startLink`
 *   returns when its init ignores) counts as `{ignore: true}`. `extra` is empty except for
 *   simple_one_for_one children. `ignore` keeps the spec without a process
 *   (`pid: undefined`), except for a temporary child, which is dropped.
 * - `restart` (default `permanent`): `permanent` is always restarted; `transient` only after
 *   an abnormal exit (anything but `normal`, `shutdown` or `{shutdown: _}`); `temporary` is
 *   never restarted and its spec is removed once it exits or is stopped. A transient child
 *   that exits normally keeps its spec with `pid: undefined`.
 * - `shutdown` (default `DEFAULT_WORKER_SHUTDOWN_MS` for a worker, `infinity` for a
 *   supervisor): how the child is stopped. A number: send exit `shutdown`, wait that many
 *   ms for it to exit, then send `kill`. `brutal_kill`: send `kill` at once. `infinity`:
 *   send `shutdown` and wait as long as it takes (meant for child supervisors).
 * - `type` (default `worker`): `worker` or `supervisor`; reported by `whichChildren` and
 *   `countChildren`, and chooses the default shutdown.
 *
 * A child that exits unexpectedly is reported through `ctx.env.log` (`child_terminated`),
 * as are start failures during a restart (`start_error`), shutdowns that did not end as
 * expected (`shutdown_error`) and giving up (`reached_max_restart_intensity`).
 *
 * ## Dynamic API
 *
 * Every function is a call to the supervisor process (Call.ts protocol), from a process
 * (`ctx`, in async code) or from outside any process (a `Scheduler`: a short-lived process
 * makes the call). Calls wait as long as the supervisor needs (it may be stopping a child
 * with a long shutdown). If the supervisor is not alive, or dies during the call, the
 * result is `{ok: false, error: 'call_failed', reason}` (`noproc`, or its exit reason); a
 * supervisor's own start function must not call it (`calling_self`). A request the
 * supervisor does not know gets `{ok: false, error: 'unknown_request'}`. Child specs hold
 * functions, so `startChild` with a spec only works from the supervisor's own scheduler
 * thread; the extra arguments of a simple_one_for_one child must be serialisable when the
 * caller is on another thread.
 *
 * - `startChild(via, sup, spec | extraArgs)`: adds a child, started last (stopped first).
 *   Errors: `already_started` (with its pid), `already_present` (spec kept without a
 *   process: use `restartChild` or `deleteChild`), `start_failed`, `invalid_child_spec`.
 * - `terminateChild(via, sup, id | pid)`: stops the child with its shutdown and keeps its
 *   spec (`pid: undefined`) unless temporary. A pending restart is cancelled. Takes an id,
 *   or for simple_one_for_one a pid (and the child is then forgotten). Errors: `not_found`,
 *   `simple_one_for_one` (an id given to a simple_one_for_one supervisor).
 * - `restartChild(via, sup, id)`: starts a stopped child again; does not count toward the
 *   intensity. Errors: `running`, `restarting`, `not_found`, `start_failed`,
 *   `simple_one_for_one`.
 * - `deleteChild(via, sup, id)`: removes a stopped child's spec. Errors: `running`,
 *   `restarting`, `not_found`, `simple_one_for_one`.
 * - `whichChildren(via, sup)`: `[{id, pid, type}]` in start order; `pid` is `undefined` for
 *   a stopped child and `'restarting'` while a restart is pending; `id` is `undefined` for
 *   simple_one_for_one children.
 * - `countChildren(via, sup)`: `{specs, active, supervisors, workers}` as OTP counts them
 *   (for simple_one_for_one: `specs` is 1, `supervisors`/`workers` count the children).
 * - `stop(via, sup, reason = 'normal')`: stops every child (reverse order) and makes the
 *   supervisor exit with `reason`; resolves once it has exited.
 *
 * ## Races to know about
 *
 * - A child is stopped by monitor + exit signal + wait for DOWN, then its EXIT is flushed
 *   from the mailbox, so an EXIT already queued for a child being stopped (it crashed at
 *   the same moment) is consumed and not restarted twice; the crash reason is reported as
 *   a `shutdown_error`.
 * - A replacement is started only after the old process's exit has been received, so two
 *   copies never run at once, even across scheduler threads.
 * - EXITs and calls that arrive while the supervisor is starting or stopping a child wait
 *   in its mailbox (selective receive) and are handled afterwards, in order.
 * - A restart whose start fails marks the child `restarting` and retries later through the
 *   mailbox (after queued calls and exits, so a `terminateChild` or a shutdown can cut the
 *   loop short); each retry counts toward the intensity, so a child that keeps failing to
 *   start ends in the supervisor shutting down.
 * - An EXIT from a pid that is neither the parent nor a current child (an old incarnation,
 *   a process that linked itself) is ignored.
 */
import { crashReason, describeReason, isDownMessage, isExitMessage, isNormalExit, ProcessExit } from '../runtime/ExitReason.js';
import type { DownMessage, ExitMessage, ExitReason } from '../runtime/ExitReason.js';
import { pidEquals, refEquals, isPid, type Pid, type Ref } from '../runtime/Pid.js';
import { TIMEOUT, type ProcessBody, type ProcessContext, type Timeout } from '../runtime/ProcessContext.js';
import { DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SECONDS, DEFAULT_WORKER_SHUTDOWN_MS } from '../runtime/defaults.js';
import { call, callFrom, genTag, isContext, reply, type CallFailure, type CallMessage, type Sender } from './Call.js';
import { ackInit, isParentExit, startBehaviour, stop as stopBehaviour, stopFrom, type StartedBy, type StopRequest } from './Lifecycle.js';

// ---- public types -------------------------------------------------------------------------

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one' | 'simple_one_for_one';
export type RestartType = 'permanent' | 'transient' | 'temporary';
export type Shutdown = 'brutal_kill' | number | 'infinity';
export type ChildType = 'worker' | 'supervisor';

/** What a child's start function returns. */
export type StartResult = { ok: true; pid: Pid } | { ok: false; reason: ExitReason } | { ignore: true };

/** Exponential restart delay; see the module header for the exact formula. */
export interface RestartBackoff {
  /** Delay of the first restart within a period, in ms. */
  minMs: number;
  /** Largest delay before jitter, in ms. */
  maxMs: number;
  /** Up to this fraction is added at random (0 = none, 0.2 = up to +20 %). */
  jitter: number;
}

export interface SupervisorFlags {
  /** Default `one_for_one`. */
  strategy?: Strategy;
  /** Most restarts allowed within `period`; default DEFAULT_MAX_RESTARTS. */
  intensity?: number;
  /** Seconds; default DEFAULT_MAX_SECONDS. */
  period?: number;
  /** Delay restarts exponentially; default: restart at once. */
  backoff?: RestartBackoff;
}

export interface ChildSpec {
  id: string;
  /** Starts the child linked to the supervisor (`ctx` is the supervisor's context). */
  start(ctx: ProcessContext, ...extra: unknown[]): StartResult | Promise<StartResult>;
  /** Default `permanent`. */
  restart?: RestartType;
  /** Default DEFAULT_WORKER_SHUTDOWN_MS for a worker, `infinity` for a supervisor. */
  shutdown?: Shutdown;
  /** Default `worker`. */
  type?: ChildType;
}

export interface SupervisorSpec {
  flags?: SupervisorFlags;
  /** Started in this order, stopped in reverse. Exactly one (the template) for simple_one_for_one. */
  children: readonly ChildSpec[];
}

export interface SupervisorOptions {
  /** Register the supervisor under this local name. */
  name?: string;
}

/** A supervisor by pid or by local registered name. */
export type SupervisorRef = Pid | string;

/** Who makes a call: a process (from async code) or, from outside any process, a scheduler. */
export type Caller = Sender;

export type StartSupervisorResult = { ok: true; pid: Pid } | { ok: false; reason: ExitReason };

/**
 * The call got no answer: `reason` is `noproc` (no such supervisor), `calling_self` (a
 * supervisor's own start function called it) or the reason the supervisor died with.
 */
export interface SupervisorDown {
  ok: false;
  error: 'call_failed';
  reason: CallFailure;
}

export type StartChildResult =
  | { ok: true; pid: Pid | undefined }
  | { ok: false; error: 'already_started'; pid: Pid }
  | { ok: false; error: 'already_present' }
  | { ok: false; error: 'start_failed'; reason: ExitReason }
  | { ok: false; error: 'invalid_child_spec'; reason: string }
  | SupervisorDown;

export type TerminateChildResult = { ok: true } | { ok: false; error: 'not_found' | 'simple_one_for_one' } | SupervisorDown;

export type RestartChildResult =
  | { ok: true; pid: Pid | undefined }
  | { ok: false; error: 'running' | 'restarting' | 'not_found' | 'simple_one_for_one' }
  | { ok: false; error: 'start_failed'; reason: ExitReason }
  | SupervisorDown;

export type DeleteChildResult = { ok: true } | { ok: false; error: 'running' | 'restarting' | 'not_found' | 'simple_one_for_one' } | SupervisorDown;

export interface ChildInfo {
  /** Undefined for simple_one_for_one children. */
  id: string | undefined;
  /** Undefined when stopped; `'restarting'` while a restart is pending. */
  pid: Pid | undefined | 'restarting';
  type: ChildType;
}

export interface ChildCount {
  /** Child specs, running or not (1 for simple_one_for_one). */
  specs: number;
  /** Children with a running process. */
  active: number;
  /** Specs (or, for simple_one_for_one, children) of type supervisor. */
  supervisors: number;
  /** Specs (or, for simple_one_for_one, children) of type worker. */
  workers: number;
}

export type WhichChildrenResult = { ok: true; children: ChildInfo[] } | SupervisorDown;
export type CountChildrenResult = { ok: true; count: ChildCount } | SupervisorDown;
export type StopResult = { ok: true } | { ok: false; reason: 'noproc' | ExitReason };

/** Exit reason of a supervisor whose init could not start a child. */
export interface FailedToStartChild {
  shutdown: { failed_to_start_child: string; reason: ExitReason };
}

// ---- public API: starting -------------------------------------------------------------

/** Start a supervisor linked to the calling process; resolves once all children started. */
export function startLink(ctx: ProcessContext, spec: SupervisorSpec, opts: SupervisorOptions = {}): Promise<StartSupervisorResult> {
  return startSupervisor(ctx, spec, opts, true);
}

/** Start a supervisor not linked to anyone (a root supervisor, or from outside a process). */
export function start(via: Caller, spec: SupervisorSpec, opts: SupervisorOptions = {}): Promise<StartSupervisorResult> {
  return startSupervisor(via, spec, opts, false);
}

/** A child spec for a nested supervisor (type `supervisor`, shutdown `infinity`). */
export function supervisorChild(id: string, spec: SupervisorSpec, overrides: Pick<ChildSpec, 'restart' | 'shutdown'> = {}): ChildSpec {
  return { id, type: 'supervisor', shutdown: 'infinity', ...overrides, start: (ctx) => startLink(ctx, spec) };
}

/** A child spec for a plain process started with `ctx.spawnLink(body)`. */
export function workerChild(id: string, body: ProcessBody, overrides: Pick<ChildSpec, 'restart' | 'shutdown'> = {}): ChildSpec {
  return { id, type: 'worker', ...overrides, start: (ctx) => ({ ok: true, pid: ctx.spawnLink(body) }) };
}

// ---- public API: dynamic children -----------------------------------------------------

/** Add a child (a spec; or, for simple_one_for_one, the extra start arguments). */
export function startChild(via: Caller, sup: SupervisorRef, child: ChildSpec | readonly unknown[]): Promise<StartChildResult> {
  const request: Request = Array.isArray(child) ? { op: 'start_child', extra: [...(child as readonly unknown[])] } : { op: 'start_child', spec: child as ChildSpec };
  return supervisorCall<StartChildResult>(via, sup, request);
}

export function terminateChild(via: Caller, sup: SupervisorRef, child: string | Pid): Promise<TerminateChildResult> {
  return supervisorCall<TerminateChildResult>(via, sup, { op: 'terminate_child', child });
}

export function restartChild(via: Caller, sup: SupervisorRef, id: string): Promise<RestartChildResult> {
  return supervisorCall<RestartChildResult>(via, sup, { op: 'restart_child', id });
}

export function deleteChild(via: Caller, sup: SupervisorRef, id: string): Promise<DeleteChildResult> {
  return supervisorCall<DeleteChildResult>(via, sup, { op: 'delete_child', id });
}

export function whichChildren(via: Caller, sup: SupervisorRef): Promise<WhichChildrenResult> {
  return supervisorCall<WhichChildrenResult>(via, sup, { op: 'which_children' });
}

export function countChildren(via: Caller, sup: SupervisorRef): Promise<CountChildrenResult> {
  return supervisorCall<CountChildrenResult>(via, sup, { op: 'count_children' });
}

/**
 * Stop every child and make the supervisor exit with `reason`; resolves once it is gone:
 * `{ok: true}`, or `{ok: false, reason}` with `noproc` or the other reason it exited with.
 */
export function stop(via: Caller, sup: SupervisorRef, reason: ExitReason = 'normal'): Promise<StopResult> {
  return isContext(via) ? stopBehaviour(via, sup, reason) : stopFrom(via, sup, reason);
}

// ---- internal: the call protocol (Call.ts) ----------------------------------------------

const RETRY = 'supervisor.retry';

type Request =
  | { op: 'start_child'; spec?: ChildSpec; extra?: unknown[] }
  | { op: 'terminate_child'; child: string | Pid }
  | { op: 'restart_child'; id: string }
  | { op: 'delete_child'; id: string }
  | { op: 'which_children' }
  | { op: 'count_children' };

const OPS: ReadonlySet<string> = new Set(['start_child', 'terminate_child', 'restart_child', 'delete_child', 'which_children', 'count_children']);

/** A restart to run now: a retry after a failed start, or the end of a backoff delay. */
interface RetryMessage {
  type: typeof RETRY;
  token: number;
}

function isRetry(m: unknown): m is RetryMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === RETRY;
}

/** Supervisor calls wait as long as the supervisor needs (OTP uses `infinity` too). */
async function supervisorCall<T>(via: Caller, sup: SupervisorRef, request: Request): Promise<T> {
  const r = isContext(via) ? await call<T>(via, sup, request, Infinity) : await callFrom<T>(via, sup, request, Infinity);
  if (r.ok) return r.value;
  return { ok: false, error: 'call_failed', reason: r.reason } satisfies SupervisorDown as T;
}

function startSupervisor(via: Caller, spec: SupervisorSpec, opts: SupervisorOptions, link: boolean): Promise<StartSupervisorResult> {
  const checked = checkSpec(spec);
  if (typeof checked === 'string') return Promise.resolve({ ok: false, reason: { bad_start_spec: checked } });
  return startBehaviour(via, link, { ...opts, trapExit: true }, 'Supervisor', (by) => supervisorBody(checked, by));
}

// ---- internal: validation -------------------------------------------------------------

interface CheckedChildSpec {
  id: string;
  spec: ChildSpec;
  restart: RestartType;
  shutdown: Shutdown;
  type: ChildType;
}

interface CheckedSpec {
  strategy: Strategy;
  intensity: number;
  periodMs: number;
  backoff: RestartBackoff | undefined;
  children: CheckedChildSpec[];
}

const STRATEGIES: readonly Strategy[] = ['one_for_one', 'one_for_all', 'rest_for_one', 'simple_one_for_one'];
const RESTARTS: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const TYPES: readonly ChildType[] = ['worker', 'supervisor'];

/** A checked spec, or what is wrong with it. */
function checkSpec(spec: SupervisorSpec): CheckedSpec | string {
  const f = spec.flags ?? {};
  const strategy = f.strategy ?? 'one_for_one';
  if (!STRATEGIES.includes(strategy)) return `unknown strategy ${String(strategy)}`;
  const intensity = f.intensity ?? DEFAULT_MAX_RESTARTS;
  if (!Number.isInteger(intensity) || intensity < 0) return `intensity must be an integer >= 0, got ${intensity}`;
  const period = f.period ?? DEFAULT_MAX_SECONDS;
  if (!(typeof period === 'number' && period > 0 && Number.isFinite(period))) return `period must be a positive number of seconds, got ${period}`;
  const b = f.backoff;
  if (b !== undefined) {
    if (!(b.minMs >= 0 && b.maxMs >= b.minMs && Number.isFinite(b.maxMs))) return 'backoff needs 0 <= minMs <= maxMs (finite)';
    if (!(b.jitter >= 0 && Number.isFinite(b.jitter))) return 'backoff jitter must be >= 0';
  }
  if (!Array.isArray(spec.children)) return 'children must be an array';
  if (strategy === 'simple_one_for_one' && spec.children.length !== 1) return 'simple_one_for_one needs exactly one child spec (the template)';
  const children: CheckedChildSpec[] = [];
  const ids = new Set<string>();
  for (const c of spec.children) {
    const r = checkChildSpec(c);
    if (typeof r === 'string') return r;
    if (ids.has(r.id)) return `duplicate child id ${r.id}`;
    ids.add(r.id);
    children.push(r);
  }
  return { strategy, intensity, periodMs: period * 1000, backoff: b === undefined ? undefined : { ...b }, children };
}

function checkChildSpec(c: ChildSpec): CheckedChildSpec | string {
  if (typeof c !== 'object' || c === null) return 'a child spec must be an object';
  if (typeof c.id !== 'string') return 'child id must be a string';
  if (typeof c.start !== 'function') return `child ${c.id}: start must be a function`;
  const restart = c.restart ?? 'permanent';
  if (!RESTARTS.includes(restart)) return `child ${c.id}: unknown restart ${String(restart)}`;
  const type = c.type ?? 'worker';
  if (!TYPES.includes(type)) return `child ${c.id}: unknown type ${String(type)}`;
  const shutdown = c.shutdown ?? (type === 'supervisor' ? 'infinity' : DEFAULT_WORKER_SHUTDOWN_MS);
  if (!(shutdown === 'brutal_kill' || shutdown === 'infinity' || (typeof shutdown === 'number' && shutdown >= 0 && Number.isFinite(shutdown)))) {
    return `child ${c.id}: shutdown must be brutal_kill, infinity or ms >= 0`;
  }
  return { id: c.id, spec: c, restart, shutdown, type };
}

// ---- internal: the supervisor process -------------------------------------------------

interface ChildRecord {
  readonly child: CheckedChildSpec;
  pid: Pid | undefined | 'restarting';
  /** Extra start arguments (simple_one_for_one). */
  readonly extra: unknown[];
  /** When this child was restarted (monotonic ms, newest last), within the period; for backoff. */
  restarts: number[];
  /** Token of a pending retry or backoff restart (0 = none). */
  pending: number;
  /** Timer of a pending backoff restart. */
  timer: Ref | undefined;
}

function supervisorBody(spec: CheckedSpec, by: StartedBy): ProcessBody {
  return async (ctx) => {
    const sup = new SupervisorProcess(ctx, spec, by.parent);
    try {
      await sup.init();
    } catch (err) {
      if (err instanceof ProcessExit && ctx.isAlive(ctx.self)) ackInit(ctx, by, { stop: err.reason });
      throw err;
    }
    ackInit(ctx, by, 'ok');
    for (;;) await sup.handle(await ctx.receive());
  };
}

class SupervisorProcess {
  private readonly strategy: Strategy;
  private readonly simple: boolean;
  /** Children in start order (for simple_one_for_one: the dynamic children). */
  private children: ChildRecord[] = [];
  /** Running children by pid key. */
  private readonly byPid = new Map<string, ChildRecord>();
  /** Children waiting for a retry or a backoff restart, by token. */
  private readonly pending = new Map<number, ChildRecord>();
  private nextToken = 1;
  /** Times of the restarts within the period (monotonic ms, newest last). */
  private restarts: number[] = [];

  constructor(
    private readonly ctx: ProcessContext,
    private readonly spec: CheckedSpec,
    private readonly parent: Pid | null,
  ) {
    this.strategy = spec.strategy;
    this.simple = spec.strategy === 'simple_one_for_one';
  }

  /** Start every child in order; on a failure stop the started ones and exit. */
  async init(): Promise<void> {
    if (this.simple) return;
    this.children = this.spec.children.map((child) => newRecord(child, []));
    const failed = await this.startAll(this.children);
    if (failed !== null) {
      await this.terminateChildren(this.children);
      const reason: FailedToStartChild = { shutdown: { failed_to_start_child: failed.rec.child.id, reason: failed.reason } };
      throw new ProcessExit(reason);
    }
  }

  async handle(msg: unknown): Promise<void> {
    if (isParentExit(msg, this.parent)) return this.exit(msg.reason);
    if (isExitMessage(msg)) {
      const rec = this.byPid.get(msg.from.key);
      if (rec !== undefined) await this.childExited(rec, msg.reason);
      return;
    }
    const tag = genTag(msg);
    if (tag === 'call') {
      await this.handleCall(msg as CallMessage);
      return;
    }
    if (tag === 'stop') return this.exit((msg as StopRequest).reason);
    if (isRetry(msg)) {
      const rec = this.pending.get(msg.token);
      if (rec === undefined || rec.pid !== 'restarting') return;
      const afterBackoff = rec.timer !== undefined;
      this.clearPending(rec);
      rec.timer = undefined;
      // The end of a backoff delay was already counted; a retry after a failed start counts
      // as a new restart (OTP try_again_restart).
      if (afterBackoff) await this.restartNow(rec);
      else await this.restart(rec);
      return;
    }
    // Anything else (a stray DOWN, a late reply, an unknown message) is dropped, as OTP does.
  }

  // ---- child exits and restarts ---------------------------------------------------------

  private async childExited(rec: ChildRecord, reason: ExitReason): Promise<void> {
    this.setPid(rec, undefined);
    const restart = rec.child.restart;
    if (restart === 'permanent') {
      this.report('child_terminated', rec, reason);
      await this.restart(rec);
    } else if (isNormalExit(reason)) {
      this.forget(rec);
    } else if (restart === 'transient') {
      this.report('child_terminated', rec, reason);
      await this.restart(rec);
    } else {
      this.report('child_terminated', rec, reason);
      this.forget(rec);
    }
  }

  /** Count a restart and perform it (now, or after the backoff delay); give up past the intensity. */
  private async restart(rec: ChildRecord): Promise<void> {
    const now = this.ctx.env.clock.monotonicMs();
    this.restarts = withinPeriod(this.restarts, now, this.spec.periodMs);
    this.restarts.push(now);
    if (this.restarts.length > this.spec.intensity) {
      this.ctx.env.log.error(
        { supervisor: this.ctx.self.toString(), child: rec.child.id, intensity: this.spec.intensity, periodMs: this.spec.periodMs },
        'reached_max_restart_intensity',
      );
      this.forget(rec);
      return this.exit('shutdown');
    }
    const backoff = this.spec.backoff;
    if (backoff === undefined) {
      await this.restartNow(rec);
      return;
    }
    rec.restarts = withinPeriod(rec.restarts, now, this.spec.periodMs);
    const n = rec.restarts.length;
    rec.restarts.push(now);
    // Stop what the strategy would stop, so no sibling runs alongside a dead dependency.
    const group = this.group(rec).filter((c) => c !== rec);
    await this.terminateChildren(group);
    if (!this.isPresent(rec)) return;
    const delay = Math.min(backoff.maxMs, backoff.minMs * 2 ** n) * (1 + backoff.jitter * this.ctx.env.random.float());
    const token = this.markRestarting(rec);
    rec.timer = this.ctx.sendAfter(delay, { type: RETRY, token } satisfies RetryMessage);
  }

  /** OTP restart(Strategy, Child): start the child again, with its group for one_for_all/rest_for_one. */
  private async restartNow(rec: ChildRecord): Promise<void> {
    if (this.strategy === 'one_for_one' || this.simple) {
      const r = await this.startRecord(rec);
      if ('ignore' in r) {
        if (this.simple || rec.child.restart === 'temporary') this.remove(rec);
        else this.setPid(rec, undefined);
      } else if (r.ok) {
        this.setPid(rec, r.pid);
      } else {
        this.report('start_error', rec, r.reason);
        this.retryLater(rec);
      }
      return;
    }
    const group = this.group(rec);
    await this.terminateChildren(group);
    const failed = await this.startAll(group.filter((c) => this.isPresent(c)));
    if (failed !== null) {
      this.report('start_error', failed.rec, failed.reason);
      this.retryLater(failed.rec);
    }
  }

  /** The children a restart of `rec` stops and starts again, in start order. */
  private group(rec: ChildRecord): ChildRecord[] {
    if (this.strategy === 'one_for_all') return [...this.children];
    if (this.strategy === 'rest_for_one') {
      const i = this.children.indexOf(rec);
      return i < 0 ? [rec] : this.children.slice(i);
    }
    return [rec];
  }

  private retryLater(rec: ChildRecord): void {
    const token = this.markRestarting(rec);
    this.ctx.send(this.ctx.self, { type: RETRY, token } satisfies RetryMessage);
  }

  private markRestarting(rec: ChildRecord): number {
    this.cancelPending(rec);
    this.setPid(rec, 'restarting');
    const token = this.nextToken++;
    rec.pending = token;
    this.pending.set(token, rec);
    return token;
  }

  private clearPending(rec: ChildRecord): void {
    if (rec.pending !== 0) {
      this.pending.delete(rec.pending);
      rec.pending = 0;
    }
  }

  private cancelPending(rec: ChildRecord): void {
    this.clearPending(rec);
    if (rec.timer !== undefined) {
      this.ctx.cancelTimer(rec.timer);
      rec.timer = undefined;
    }
  }

  // ---- starting -------------------------------------------------------------------------

  /** Start children in order; stops at the first failure and returns it. */
  private async startAll(recs: ChildRecord[]): Promise<{ rec: ChildRecord; reason: ExitReason } | null> {
    for (const rec of recs) {
      const r = await this.startRecord(rec);
      if ('ignore' in r) {
        if (rec.child.restart === 'temporary') this.remove(rec);
        else this.setPid(rec, undefined);
      } else if (r.ok) {
        this.setPid(rec, r.pid);
      } else {
        return { rec, reason: r.reason };
      }
    }
    return null;
  }

  /** Call the child's start function; a throw or a malformed result is a failed start. */
  private async startRecord(rec: ChildRecord): Promise<StartResult> {
    let r: StartResult;
    try {
      r = await rec.child.spec.start(this.ctx, ...rec.extra);
    } catch (err) {
      if (!this.ctx.isAlive(this.ctx.self)) throw err;
      return { ok: false, reason: crashReason(err) };
    }
    if (typeof r === 'object' && r !== null) {
      if ('ignore' in r && r.ignore === true) return r;
      if ('ok' in r && r.ok === true && isPid(r.pid)) return r;
      if ('ok' in r && r.ok === false) return r.reason === 'ignore' ? { ignore: true } : r;
    }
    return { ok: false, reason: { bad_return_value: describeReason(r as unknown as ExitReason) } };
  }

  // ---- stopping -------------------------------------------------------------------------

  /** Stop every child and exit with `reason`. */
  private async exit(reason: ExitReason): Promise<never> {
    if (this.simple) await this.terminateDynamic([...this.children]);
    else await this.terminateChildren(this.children);
    throw new ProcessExit(reason);
  }

  /** OTP terminate_children: stop in reverse order; temporary specs go, others keep `pid: undefined`. */
  private async terminateChildren(recs: ChildRecord[]): Promise<void> {
    if (this.simple) {
      await this.terminateDynamic(recs);
      return;
    }
    for (const rec of [...recs].reverse()) {
      await this.terminate(rec);
      if (rec.child.restart === 'temporary') this.remove(rec);
    }
  }

  /** Stop one child (if running) and cancel any pending restart; leaves `pid: undefined`. */
  private async terminate(rec: ChildRecord): Promise<void> {
    this.cancelPending(rec);
    const pid = rec.pid;
    this.setPid(rec, undefined);
    if (!isPid(pid)) return;
    const ctx = this.ctx;
    const mon = ctx.monitor(pid);
    const shutdown = rec.child.shutdown;
    let down = TIMEOUT as DownMessage | Timeout;
    let killedAfterTimeout = false;
    if (shutdown === 'brutal_kill') {
      ctx.sendExit(pid, 'kill');
    } else {
      ctx.sendExit(pid, 'shutdown');
      down = await this.awaitDown(mon, shutdown === 'infinity' ? Infinity : shutdown);
      if (down === TIMEOUT) {
        killedAfterTimeout = true;
        ctx.sendExit(pid, 'kill');
      }
    }
    if (down === TIMEOUT) down = await this.awaitDown(mon, Infinity);
    const reason = await this.unlinkFlush(pid, (down as DownMessage).reason);
    if (!killedAfterTimeout && this.shutdownAsExpected(rec, reason)) return;
    this.report('shutdown_error', rec, reason);
  }

  /** OTP terminate_dynamic_children: stop all together, one shutdown timer for all. */
  private async terminateDynamic(recs: ChildRecord[]): Promise<void> {
    const ctx = this.ctx;
    const shutdown = this.spec.children[0].shutdown;
    const waiting = new Map<string, { rec: ChildRecord; pid: Pid; mon: Ref }>();
    for (const rec of recs) {
      this.cancelPending(rec);
      const pid = rec.pid;
      this.remove(rec);
      if (!isPid(pid)) continue;
      const mon = ctx.monitor(pid);
      waiting.set(mon.key, { rec, pid, mon });
      ctx.sendExit(pid, shutdown === 'brutal_kill' ? 'kill' : 'shutdown');
    }
    const collect = async (deadline: number, killed: boolean): Promise<void> => {
      while (waiting.size > 0) {
        const left = deadline === Infinity ? Infinity : Math.max(0, deadline - ctx.env.clock.monotonicMs());
        const m = await ctx.receive<DownMessage>((x) => isDownMessage(x) && waiting.has(x.ref.key), left);
        if (m === TIMEOUT) return;
        const w = waiting.get(m.ref.key)!;
        waiting.delete(m.ref.key);
        const reason = await this.unlinkFlush(w.pid, m.reason);
        if (killed || !this.shutdownAsExpected(w.rec, reason)) this.report('shutdown_error', w.rec, reason);
      }
    };
    await collect(typeof shutdown === 'number' ? ctx.env.clock.monotonicMs() + shutdown : Infinity, false);
    if (waiting.size === 0) return;
    for (const w of waiting.values()) ctx.sendExit(w.pid, 'kill');
    await collect(Infinity, true);
  }

  private shutdownAsExpected(rec: ChildRecord, reason: ExitReason): boolean {
    const expected = rec.child.shutdown === 'brutal_kill' ? 'killed' : 'shutdown';
    if (reason === expected) return true;
    return rec.child.restart !== 'permanent' && isNormalExit(reason);
  }

  private async awaitDown(mon: Ref, timeoutMs: number): Promise<DownMessage | Timeout> {
    return this.ctx.receive<DownMessage>((x) => isDownMessage(x) && refEquals(x.ref, mon), timeoutMs);
  }

  /** Drop the link and take the child's EXIT if it is already queued: its reason is the real one. */
  private async unlinkFlush(pid: Pid, fallback: ExitReason): Promise<ExitReason> {
    this.ctx.unlink(pid);
    const m = await this.ctx.receive<ExitMessage>((x) => isExitMessage(x) && pidEquals(x.from, pid), 0);
    return m === TIMEOUT ? fallback : m.reason;
  }

  // ---- calls ----------------------------------------------------------------------------

  private async handleCall(msg: CallMessage): Promise<void> {
    const req = msg.request as Request;
    const answer =
      typeof req === 'object' && req !== null && OPS.has(req.op) ? await this.answer(req) : { ok: false, error: 'unknown_request' };
    reply(this.ctx, msg.from, answer);
  }

  private async answer(req: Request): Promise<unknown> {
    switch (req.op) {
      case 'which_children':
        return { ok: true, children: this.children.map((r) => ({ id: this.simple ? undefined : r.child.id, pid: r.pid, type: r.child.type })) } satisfies WhichChildrenResult;
      case 'count_children':
        return { ok: true, count: this.count() } satisfies CountChildrenResult;
      case 'start_child':
        return this.startChild(req);
      case 'terminate_child':
        return this.terminateChild(req.child);
      case 'restart_child':
        return this.restartChild(req.id);
      case 'delete_child':
        return this.deleteChild(req.id);
    }
  }

  private count(): ChildCount {
    const active = this.children.filter((r) => isPid(r.pid)).length;
    if (this.simple) {
      const n = this.children.length;
      const sup = this.spec.children[0].type === 'supervisor';
      return { specs: 1, active, supervisors: sup ? n : 0, workers: sup ? 0 : n };
    }
    const supervisors = this.children.filter((r) => r.child.type === 'supervisor').length;
    return { specs: this.children.length, active, supervisors, workers: this.children.length - supervisors };
  }

  private async startChild(req: { spec?: ChildSpec; extra?: unknown[] }): Promise<StartChildResult> {
    let rec: ChildRecord;
    if (this.simple) {
      if (req.extra === undefined) return { ok: false, error: 'invalid_child_spec', reason: 'simple_one_for_one takes extra start arguments, not a spec' };
      rec = newRecord(this.spec.children[0], req.extra);
    } else {
      if (req.spec === undefined) return { ok: false, error: 'invalid_child_spec', reason: 'a child spec is required' };
      const checked = checkChildSpec(req.spec);
      if (typeof checked === 'string') return { ok: false, error: 'invalid_child_spec', reason: checked };
      const existing = this.find(checked.id);
      if (existing !== undefined) {
        return isPid(existing.pid) ? { ok: false, error: 'already_started', pid: existing.pid } : { ok: false, error: 'already_present' };
      }
      rec = newRecord(checked, []);
    }
    const r = await this.startRecord(rec);
    if ('ignore' in r) {
      if (!this.simple && rec.child.restart !== 'temporary') this.children.push(rec);
      return { ok: true, pid: undefined };
    }
    if (!r.ok) return { ok: false, error: 'start_failed', reason: r.reason };
    this.children.push(rec);
    this.setPid(rec, r.pid);
    return { ok: true, pid: r.pid };
  }

  private async terminateChild(target: string | Pid): Promise<TerminateChildResult> {
    if (this.simple) {
      if (!isPid(target)) return { ok: false, error: 'simple_one_for_one' };
      const rec = this.byPid.get(target.key);
      if (rec === undefined) return { ok: false, error: 'not_found' };
      await this.terminateDynamic([rec]);
      return { ok: true };
    }
    const rec = isPid(target) ? undefined : this.find(target);
    if (rec === undefined) return { ok: false, error: 'not_found' };
    await this.terminate(rec);
    if (rec.child.restart === 'temporary') this.remove(rec);
    return { ok: true };
  }

  private async restartChild(id: string): Promise<RestartChildResult> {
    if (this.simple) return { ok: false, error: 'simple_one_for_one' };
    const rec = this.find(id);
    if (rec === undefined) return { ok: false, error: 'not_found' };
    if (rec.pid === 'restarting') return { ok: false, error: 'restarting' };
    if (rec.pid !== undefined) return { ok: false, error: 'running' };
    const r = await this.startRecord(rec);
    if ('ignore' in r) return { ok: true, pid: undefined };
    if (!r.ok) return { ok: false, error: 'start_failed', reason: r.reason };
    this.setPid(rec, r.pid);
    return { ok: true, pid: r.pid };
  }

  private deleteChild(id: string): DeleteChildResult {
    if (this.simple) return { ok: false, error: 'simple_one_for_one' };
    const rec = this.find(id);
    if (rec === undefined) return { ok: false, error: 'not_found' };
    if (rec.pid === 'restarting') return { ok: false, error: 'restarting' };
    if (rec.pid !== undefined) return { ok: false, error: 'running' };
    this.remove(rec);
    return { ok: true };
  }

  // ---- bookkeeping ----------------------------------------------------------------------

  private find(id: string): ChildRecord | undefined {
    return this.children.find((r) => r.child.id === id);
  }

  private isPresent(rec: ChildRecord): boolean {
    return this.children.includes(rec);
  }

  private setPid(rec: ChildRecord, pid: Pid | undefined | 'restarting'): void {
    if (isPid(rec.pid) && this.byPid.get(rec.pid.key) === rec) this.byPid.delete(rec.pid.key);
    rec.pid = pid;
    if (isPid(pid)) this.byPid.set(pid.key, rec);
  }

  /** OTP del_child: after an exit that is not restarted. */
  private forget(rec: ChildRecord): void {
    if (this.simple || rec.child.restart === 'temporary') this.remove(rec);
    else this.setPid(rec, undefined);
  }

  private remove(rec: ChildRecord): void {
    this.cancelPending(rec);
    this.setPid(rec, undefined);
    const i = this.children.indexOf(rec);
    if (i >= 0) this.children.splice(i, 1);
  }

  private report(what: 'child_terminated' | 'start_error' | 'shutdown_error', rec: ChildRecord, reason: ExitReason): void {
    this.ctx.env.log.error(
      { supervisor: this.ctx.self.toString(), child: this.simple ? rec.extra : rec.child.id, reason: describeReason(reason) },
      what,
    );
  }
}

function newRecord(child: CheckedChildSpec, extra: unknown[]): ChildRecord {
  return { child, pid: undefined, extra, restarts: [], pending: 0, timer: undefined };
}

/** The times (newest last) that are at most `periodMs` old at `now`. */
function withinPeriod(times: number[], now: number, periodMs: number): number[] {
  let i = 0;
  while (i < times.length && now - times[i] > periodMs) i++;
  return i === 0 ? times : times.slice(i);
}
