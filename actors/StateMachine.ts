/**
 * StateMachine: OTP gen_statem in handle_event_function mode on a handler-style process.
 * One callback sees every event with the current state and data; this module owns
 * postponing, state enter calls and the three kinds of timeouts, and guarantees that a
 * cancelled or superseded timeout never reaches the callback. It is cheap enough for one
 * machine per client connection (see Cost).
 *
 * Use it as `import * as StateMachine from './StateMachine.js'`.
 *
 * Starting:
 *
 * - `start(where, behaviour, args, opts?)` / `startLink(ctx, …)` resolve once init ran, with
 *   `{ok: true, pid}` or the reason it failed (every outcome and option: Lifecycle.ts).
 * - `body(behaviour, args, opts?)` is a ProcessBody for `spawn`, `spawnLink` or
 *   `spawnMonitor`: the pid is known at once, with no init acknowledgement round trip, so an
 *   acceptor can link, monitor and route to the new machine before init has run. Init runs
 *   as the process's first step; messages sent to the pid meanwhile wait in its mailbox and
 *   are handled, in order, after init and its actions. Init outcomes are exits: `{ignore:
 *   true}` exits `normal`, `{stop: reason}` exits with `reason`, a throw or rejection exits
 *   with the crash reason, a malformed result with `{bad_return_value}` (a linked spawner
 *   sees them as exit signals, a monitor as DOWN). Options: `parent` (OTP's parent, see
 *   terminate; default none) and `idleHibernateMs`; name, label (`LABEL`, as `start` gives),
 *   trapExit and mailbox are spawn options:
 *
 *       const pid = ctx.spawnLink(StateMachine.body(connection, socket, { parent: ctx.self }), { label: StateMachine.LABEL });
 *
 * Callbacks (any may return a promise; the process is busy until it settles):
 *
 * - `init(args, ctx)` → `{state, data, actions?}` | `{ignore: true}` | `{stop: reason}`.
 *   Actions other than postpone are allowed.
 * - `handleEvent(type, event, state, data, ctx)` → one of
 *   - `{nextState, data?, actions?}`: go to `nextState` (a state change when it differs from
 *     the current state, compared structurally, or with `stateEquals`);
 *   - `{keepState: true, data?, actions?}`: stay;
 *   - `{repeatState: true, data?, actions?}`: stay, but run the state enter call again;
 *   - `{stop: reason, data?, replies?}`: send the replies, run terminate, exit with reason.
 *   `data` absent means unchanged.
 * - `terminate(reason, state, data, ctx)`: on `stop(…)`, a `{stop}` result, a crash in a
 *   callback (the process then exits with the crash reason), or the parent's EXIT while
 *   trapping exits (the parent: the `startLink` caller, or `body`'s `parent` option); not
 *   when killed by an untrapped exit signal.
 *
 * Event types: `{call: from}` (answer with a `{reply: from, value}` action or
 * `reply(ctx, from, value)`), `'cast'`, `'info'` (any other message, including EXIT/DOWN),
 * `'enter'` (event = the previous state), `'state_timeout'`, `'timeout'` (the event timeout),
 * `{generic_timeout: name}`, and `'internal'` (for `nextEvent` actions).
 *
 * Actions, applied in order after the callback returns:
 *
 * - `{postpone: true}`: keep this event and retry it after the next state change; postponed
 *   events are retried in their original order, before any event not yet handled.
 * - `{reply: from, value}`: answer a call.
 * - `{nextEvent: type, event}`: handle this event next, before everything queued (several
 *   are handled in the order given).
 * - `{stateTimeout: ms, event?}`: deliver `state_timeout` after `ms` unless the state changes
 *   first; setting it again restarts it; Infinity cancels it.
 * - `{eventTimeout: ms, event?}`: deliver `timeout` after `ms` unless any event is handled
 *   first (it is not even started when events are already queued); Infinity cancels.
 * - `{genericTimeout: name, ms, event?}`: a named timeout that survives state changes;
 *   setting a name again restarts it; Infinity cancels it.
 * - `{hibernate: true}`: release idle mailbox storage when the queue of events is empty.
 *
 * A timeout of 0 ms is queued as an event at once (after the events already queued) and is
 * still cancelled by whatever would cancel a timer. Timers use the system lane, so a timeout
 * that has fired is handled before user messages still queued; an event timeout that fires
 * while messages are queued is dropped, since those messages cancel it. Option
 * `idleHibernateMs` hibernates a machine that handled no message for that long (between 1x
 * and 2x; whole ms; 2^30 ms or more counts as never).
 *
 * State enter calls (behaviour flag `stateEnter: true`) run after init and after every state
 * change or `repeatState`, before any other event. They may not change the state, postpone or
 * insert events (doing so exits with `{bad_state_enter_return}` or `{bad_state_enter_action}`);
 * they may set timeouts, reply and change data.
 *
 * Cost. An idle machine with no timeout armed and nothing postponed holds one object of ten
 * fields and its bound handler beside its process (about 100 bytes more than a plain handler
 * process on 64-bit Node, plus its state and data); the event queue, the postponed list and
 * the timeouts are allocated when first needed and dropped once empty. An event that arrives
 * with nothing queued goes straight to the callback (no queue entry, no closure), and a
 * result without actions allocates nothing more.
 */
import { crashReason, type ExitReason } from '../runtime/ExitReason.js';
import { isPid, isRef, pidEquals, refEquals, type Pid } from '../runtime/Pid.js';
import type { MessageHandler, ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { genTag, reply, type CallMessage, type CastMessage, type From } from './Call.js';
import { badReturn, isPromise, type Maybe } from './internal/callbacks.js';
import { MachineTimeouts, type TimeoutMessage } from './internal/MachineTimeouts.js';
import { ackInit, isParentExit, refuseInit, startBehaviour, type StartedBy, type StartOptions, type StartResult, type StopRequest } from './Lifecycle.js';

export { call, callFrom, cast, reply, isCallReply, type CallFailure, type CallResult, type From, type ServerRef } from './Call.js';
export { stop, stopFrom, type StartOptions, type StartResult, type StopResult } from './Lifecycle.js';

// ---- public types ----------------------------------------------------------------------
// `…Return` is what a callback returns; `…Result` is what an API call resolves with.

export type EventType =
  | { call: From }
  | 'cast'
  | 'info'
  | 'enter'
  | 'state_timeout'
  | 'timeout'
  | { generic_timeout: string }
  | 'internal';

export interface ReplyAction {
  reply: From;
  value: unknown;
}

export type Action =
  | { postpone: true }
  | ReplyAction
  | { nextEvent: Exclude<EventType, 'enter'>; event?: unknown }
  | { stateTimeout: number; event?: unknown }
  | { eventTimeout: number; event?: unknown }
  | { genericTimeout: string; ms: number; event?: unknown }
  | { hibernate: true };

export type InitReturn<S, D> = { state: S; data: D; actions?: Action[] } | { ignore: true } | { stop: ExitReason };

export type EventReturn<S, D> =
  | { nextState: S; data?: D; actions?: Action[] }
  | { keepState: true; data?: D; actions?: Action[] }
  | { repeatState: true; data?: D; actions?: Action[] }
  | { stop: ExitReason; data?: D; replies?: ReplyAction[] };

/** A state machine with states `S`, data `D` and init argument `A`. */
export interface Behaviour<S, D, A = void> {
  /** Run state enter calls (OTP callback mode `state_enter`). */
  readonly stateEnter?: boolean;
  init(args: A, ctx: ProcessContext): Maybe<InitReturn<S, D>>;
  handleEvent(type: EventType, event: unknown, state: S, data: D, ctx: ProcessContext): Maybe<EventReturn<S, D>>;
  terminate?(reason: ExitReason, state: S, data: D, ctx: ProcessContext): void | Promise<void>;
  /** State equality deciding what is a state change (default: structural, pids by value). */
  stateEquals?(a: S, b: S): boolean;
}

/** Options of `body`; the spawn options (link, monitor, name, label, trapExit, mailbox) go to the spawn call. */
export interface BodyOptions {
  /**
   * OTP's parent: while the machine traps exits, this process's EXIT makes it run terminate
   * and exit with the same reason. Default none: every EXIT is an info event.
   */
  parent?: Pid;
  /** Hibernate after this many ms without a message (between 1x and 2x; default never). */
  idleHibernateMs?: number;
}

/** The process label `start` gives a machine (process info `behaviour`); pass it when spawning a `body`. */
export const LABEL = 'StateMachine';

export function isCall(type: EventType): type is { call: From } {
  return typeof type === 'object' && 'call' in type;
}

export function isGenericTimeout(type: EventType): type is { generic_timeout: string } {
  return typeof type === 'object' && 'generic_timeout' in type;
}

// ---- public API ------------------------------------------------------------------------

/** Start an unlinked state machine; resolves once init ran. From outside, pass the scheduler. */
export function start<S, D, A>(where: ProcessContext | Scheduler, behaviour: Behaviour<S, D, A>, args: A, opts: StartOptions = {}): Promise<StartResult> {
  return startBehaviour(where, false, opts, LABEL, (by) => machineBody(behaviour, args, by, by.parent, opts.idleHibernateMs));
}

/** Start a state machine linked to the calling process (atomically); resolves once init ran. */
export function startLink<S, D, A>(ctx: ProcessContext, behaviour: Behaviour<S, D, A>, args: A, opts: StartOptions = {}): Promise<StartResult> {
  return startBehaviour(ctx, true, opts, LABEL, (by) => machineBody(behaviour, args, by, by.parent, opts.idleHibernateMs));
}

/**
 * The body of a state machine process, for `spawn`, `spawnLink` or `spawnMonitor` (from a
 * process or from the scheduler): the pid is known at once and nothing waits for init, which
 * runs as the process's first step; init failures are exits (see Starting, above).
 */
export function body<S, D, A>(behaviour: Behaviour<S, D, A>, args: A, opts: BodyOptions = {}): ProcessBody {
  return machineBody(behaviour, args, null, opts.parent ?? null, opts.idleHibernateMs);
}

// ---- the machine process ---------------------------------------------------------------

/** `by`: who waits for the init acknowledgement (null for `body`, which has no starter). */
function machineBody<S, D, A>(b: Behaviour<S, D, A>, args: A, by: StartedBy | null, parent: Pid | null, idleHibernateMs: number | undefined): ProcessBody {
  return (ctx) => {
    const r = b.init(args, ctx);
    return isPromise(r) ? r.then((x) => begin(ctx, x)) : begin(ctx, r);
  };

  function begin(ctx: ProcessContext, r: unknown): MessageHandler | void | Promise<MessageHandler | void> {
    if (by !== null ? refuseInit(ctx, by, r, isInitOk) : exitUnlessInitOk(ctx, r)) return;
    const x = r as { state: S; data: D; actions?: Action[] };
    const m = new Machine<S, D>(ctx, b as Behaviour<S, D, unknown>, parent, x.state, x.data, idleHibernateMs);
    if (by !== null) ackInit(ctx, by, 'ok');
    // Bound rather than a closure: one small object per machine instead of a closure and its context.
    const handler: MessageHandler = m.handle.bind(m);
    const after = m.begin(x.actions);
    return isPromise(after) ? after.then(() => handler) : handler;
  }
}

function isInitOk(x: object): boolean {
  return 'state' in x && 'data' in x;
}

/** Init outcomes for `body`, as Lifecycle's refuseInit without a starter to acknowledge: true if the machine must not start. */
function exitUnlessInitOk(ctx: ProcessContext, r: unknown): boolean {
  if (typeof r === 'object' && r !== null) {
    if ('ignore' in r) {
      ctx.exit('normal');
      return true;
    }
    if ('stop' in r) {
      ctx.exit((r as { stop: ExitReason }).stop);
      return true;
    }
    if (isInitOk(r)) return false;
  }
  ctx.exit(badReturn(r));
  return true;
}

interface QueuedEvent {
  readonly type: EventType;
  readonly event: unknown;
  /** A zero timeout's firing number, which must still be current when the event is reached; 0 otherwise. */
  readonly n: number;
}

interface ParsedActions {
  postpone: boolean;
  replies: ReplyAction[];
  nextEvents: QueuedEvent[];
  timeouts: Action[];
  hibernate: boolean;
}

const NO_ACTIONS: ParsedActions = { postpone: false, replies: [], nextEvents: [], timeouts: [], hibernate: false };

/** Any callback result, for reading its fields before it is validated. */
type AnyReturn<S, D> = Partial<{ nextState: S; keepState: true; repeatState: true; stop: ExitReason; data: D; actions: Action[]; replies: ReplyAction[] }>;

/** Longer idle hibernation times count as never (they would not fit a small integer). */
const MAX_IDLE_MS = 2 ** 30;

const DONE = 1;
/** A hibernate action, applied once the events queued after it are handled. */
const HIBERNATE = 2;

/**
 * One machine. Beside the context, behaviour, parent, state and data, every field is a flag,
 * a small integer or null while unused: with a machine per connection each byte counts
 * 20,000 times per process (see Cost in the header).
 */
class Machine<S, D> {
  private flags = 0;
  /** Events to handle before the next message: inserted, retried postponed, zero timeouts. */
  private queue: QueuedEvent[] | null = null;
  private postponed: QueuedEvent[] | null = null;
  private timeouts: MachineTimeouts | null = null;
  /** Idle hibernation after this many whole ms; -1: never (a small integer, never a boxed number). */
  private readonly idleMs: number;

  constructor(
    private readonly ctx: ProcessContext,
    private readonly b: Behaviour<S, D, unknown>,
    private readonly parent: Pid | null,
    private state: S,
    private data: D,
    idleHibernateMs: number | undefined,
  ) {
    this.idleMs = idleHibernateMs === undefined || !(idleHibernateMs < MAX_IDLE_MS) ? -1 : Math.max(0, Math.ceil(idleHibernateMs));
    if (this.idleMs >= 0) this.touchIdle();
  }

  /** After init: apply its actions, run the first enter call, handle queued events. */
  begin(actions: Action[] | undefined): void | Promise<void> {
    const a = this.parse(actions, 'init');
    if (!this.act(a)) return;
    if (this.b.stateEnter === true) {
      const r = this.enter(this.state);
      if (isPromise(r)) return r.then(() => this.drain());
    }
    return this.drain();
  }

  /** The process's message handler (bound once in machineBody). */
  handle(msg: unknown): void | Promise<void> {
    if ((this.flags & DONE) !== 0) return;
    let type: EventType = 'info';
    let event: unknown = msg;
    switch (genTag(msg)) {
      case 'call': {
        const m = msg as CallMessage;
        type = { call: m.from };
        event = m.request;
        break;
      }
      case 'cast':
        type = 'cast';
        event = (msg as CastMessage).msg;
        break;
      case 'state_timeout': {
        const a = this.timeouts?.fireState((msg as TimeoutMessage).n);
        if (a === undefined || a === null) return;
        type = 'state_timeout';
        event = a.event;
        break;
      }
      case 'event_timeout': {
        const a = this.timeouts?.fireEvent((msg as TimeoutMessage).n);
        if (a === undefined || a === null) return;
        // Messages that are already queued are events, and any event cancels this timeout.
        if ((this.ctx.info()?.messageQueueLen ?? 0) > 0) return;
        type = 'timeout';
        event = a.event;
        break;
      }
      case 'generic_timeout': {
        const name = (msg as TimeoutMessage).name as string;
        const a = this.timeouts?.fireGeneric(name, (msg as TimeoutMessage).n);
        if (a === undefined || a === null) return;
        type = { generic_timeout: name };
        event = a.event;
        break;
      }
      case 'idle':
        this.onIdleTimer((msg as TimeoutMessage).n);
        return;
      case 'reply': // a late reply to a call this process gave up on
      case 'ack': // the late ack of a start that timed out
        return;
      case 'stop':
        return this.terminate((msg as StopRequest).reason, null);
      default:
        if (isParentExit(msg, this.parent)) return this.terminate(msg.reason, null);
    }
    if (this.idleMs >= 0) this.touchIdle();
    return this.dispatch(type, event);
  }

  /**
   * Handle an event from the mailbox. The queue is always empty here (a run ends only once
   * it is drained), so the event goes straight to the callback; what it queued or armed is
   * handled after it.
   */
  private dispatch(type: EventType, event: unknown): void | Promise<void> {
    const r = this.handleEvent(type, event);
    if (isPromise(r)) return r.then(() => this.drain());
    if (this.queue !== null || this.timeouts !== null || this.flags !== 0) return this.drain();
  }

  /** Handle queued events until none is left, then start a pending event timeout. */
  private drain(): void | Promise<void> {
    while ((this.flags & DONE) === 0) {
      let type: EventType;
      let event: unknown;
      const q = this.queue;
      if (q !== null) {
        const ev = q.shift() as QueuedEvent;
        if (q.length === 0) this.queue = null;
        if (ev.n !== 0 && !this.claimZeroTimeout(ev)) continue;
        type = ev.type;
        event = ev.event;
      } else {
        const t = this.timeouts;
        const et = t === null ? null : t.pendingEvent;
        if (t === null || et === null) break;
        t.pendingEvent = null;
        if (et.ms > 0) {
          t.armEvent(this.ctx, et.ms, et.event);
          break;
        }
        // A zero event timeout: no event is queued that could cancel it, so it is handled now.
        type = 'timeout';
        event = et.event;
      }
      const r = this.handleEvent(type, event);
      if (isPromise(r)) return r.then(() => this.drain());
    }
    this.settle();
  }

  /** Nothing left to handle: hibernate if asked, and drop the timeouts once none is armed. */
  private settle(): void {
    if ((this.flags & DONE) !== 0) return;
    if ((this.flags & HIBERNATE) !== 0) {
      this.flags &= ~HIBERNATE;
      this.ctx.hibernate();
    }
    if (this.timeouts !== null && this.timeouts.empty) this.timeouts = null;
  }

  /** A queued zero timeout is handled only if it is still the current arming of its timeout. */
  private claimZeroTimeout(ev: QueuedEvent): boolean {
    // The timeouts object outlives its queued zero timeouts: it is dropped only with an empty queue.
    const t = this.timeouts;
    if (t === null) return false;
    const type = ev.type;
    if (type === 'state_timeout') return t.fireState(ev.n) !== null;
    return isGenericTimeout(type) && t.fireGeneric(type.generic_timeout, ev.n) !== null;
  }

  private handleEvent(type: EventType, event: unknown): void | Promise<void> {
    const t = this.timeouts;
    if (t !== null) {
      // Any event cancels the event timeout, running or not yet started.
      if (t.event !== null) t.cancelEvent(this.ctx);
      t.pendingEvent = null;
    }
    let r: unknown;
    try {
      r = this.b.handleEvent(type, event, this.state, this.data, this.ctx);
    } catch (err) {
      return this.crash(err);
    }
    if (isPromise(r)) {
      return r.then(
        (x) => this.transition(x, type, event),
        (err: unknown) => this.crash(err),
      );
    }
    return this.transition(r, type, event);
  }

  private transition(r: unknown, type: EventType, event: unknown): void | Promise<void> {
    if (typeof r !== 'object' || r === null) return this.terminate(badReturn(r), null);
    const x = r as AnyReturn<S, D>;
    if ('stop' in x) return this.stopWith(x.stop as ExitReason, x);
    const old = this.state;
    let changed = false;
    let repeat = false;
    if ('nextState' in x) changed = !this.isSameState(x.nextState as S, old);
    else if (x.repeatState === true) repeat = true;
    else if (x.keepState !== true) return this.terminate(badReturn(r), null);
    const a = this.parse(x.actions, 'event');
    if (a === null) return;
    if ('data' in x) this.data = x.data as D;
    if ('nextState' in x) this.state = x.nextState as S;
    if (a.postpone) (this.postponed ??= []).push({ type, event, n: 0 });
    if (changed) this.leaveState();
    if (!this.act(a)) return;
    if ((changed || repeat) && this.b.stateEnter === true) return this.enter(old);
  }

  /** A state change cancels the state timeout and queues the postponed events for a retry. */
  private leaveState(): void {
    const t = this.timeouts;
    if (t !== null && t.state !== null) t.cancelState(this.ctx);
    const p = this.postponed;
    if (p !== null) {
      this.postponed = null;
      this.queue = this.queue === null ? p : p.concat(this.queue);
    }
  }

  /** The state enter call: `event` is the previous state. */
  private enter(old: S): void | Promise<void> {
    let r: unknown;
    try {
      r = this.b.handleEvent('enter', old, this.state, this.data, this.ctx);
    } catch (err) {
      return this.crash(err);
    }
    if (isPromise(r)) {
      return r.then(
        (x) => this.afterEnter(x, old),
        (err: unknown) => this.crash(err),
      );
    }
    return this.afterEnter(r, old);
  }

  private afterEnter(r: unknown, old: S): void | Promise<void> {
    if (typeof r !== 'object' || r === null) return this.terminate(badReturn(r), null);
    const x = r as AnyReturn<S, D>;
    if ('stop' in x) return this.stopWith(x.stop as ExitReason, x);
    if ('nextState' in x) {
      if (!this.isSameState(x.nextState as S, this.state)) return this.terminate({ bad_state_enter_return: 'a state enter call may not change the state' }, null);
    } else if (x.keepState !== true && x.repeatState !== true) {
      return this.terminate(badReturn(r), null);
    }
    const a = this.parse(x.actions, 'enter');
    if (a === null) return;
    if ('data' in x) this.data = x.data as D;
    if ('nextState' in x) this.state = x.nextState as S;
    if (!this.act(a)) return;
    if (x.repeatState === true) return this.enter(old);
  }

  private isSameState(a: S, b: S): boolean {
    const eq = this.b.stateEquals;
    return eq !== undefined ? eq.call(this.b, a, b) : sameState(a, b);
  }

  /** Validate actions; on a bad one the machine terminates and null is returned. */
  private parse(actions: Action[] | undefined, where: 'init' | 'event' | 'enter'): ParsedActions | null {
    if (actions === undefined || actions.length === 0) return NO_ACTIONS;
    const p: ParsedActions = { postpone: false, replies: [], nextEvents: [], timeouts: [], hibernate: false };
    for (const a of actions as unknown[]) {
      const x = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
      if (x.postpone === true && where === 'event') p.postpone = true;
      else if ('reply' in x && isFrom(x.reply)) p.replies.push(x as unknown as ReplyAction);
      else if ('nextEvent' in x && where !== 'enter' && x.nextEvent !== 'enter') p.nextEvents.push({ type: x.nextEvent as EventType, event: x.event, n: 0 });
      else if (typeof x.stateTimeout === 'number' || typeof x.eventTimeout === 'number') p.timeouts.push(x as Action);
      else if (typeof x.genericTimeout === 'string' && typeof x.ms === 'number') p.timeouts.push(x as Action);
      else if (x.hibernate === true) p.hibernate = true;
      else {
        const what = where === 'enter' ? 'bad_state_enter_action' : where === 'init' ? 'bad_init_action' : 'bad_action';
        this.terminate(badActionReason(what, a), null);
        return null;
      }
    }
    return p;
  }

  /** Apply parsed actions (replies, inserted events, timeouts, hibernation); false if stopped. */
  private act(a: ParsedActions | null): boolean {
    if (a === null || (this.flags & DONE) !== 0) return false;
    if (a === NO_ACTIONS) return true;
    for (const r of a.replies) reply(this.ctx, r.reply, r.value);
    if (a.nextEvents.length > 0) this.queue = this.queue === null ? a.nextEvents : a.nextEvents.concat(this.queue);
    for (const t of a.timeouts) this.armTimeout(t);
    if (a.hibernate) this.flags |= HIBERNATE;
    return true;
  }

  private armTimeout(t: Action): void {
    if ('stateTimeout' in t) {
      if (t.stateTimeout === Infinity) {
        this.timeouts?.cancelState(this.ctx);
        return;
      }
      const armed = this.useTimeouts().armState(this.ctx, t.stateTimeout, t.event);
      if (armed.ref === null) this.enqueue({ type: 'state_timeout', event: t.event, n: armed.n });
    } else if ('eventTimeout' in t) {
      if (t.eventTimeout === Infinity) {
        const tm = this.timeouts;
        if (tm !== null) {
          tm.pendingEvent = null;
          tm.cancelEvent(this.ctx);
        }
        return;
      }
      this.useTimeouts().pendingEvent = { ms: t.eventTimeout, event: t.event };
    } else if ('genericTimeout' in t) {
      const name = t.genericTimeout;
      if (t.ms === Infinity) {
        this.timeouts?.cancelGeneric(this.ctx, name);
        return;
      }
      const armed = this.useTimeouts().armGeneric(this.ctx, name, t.ms, t.event);
      if (armed.ref === null) this.enqueue({ type: { generic_timeout: name }, event: t.event, n: armed.n });
    }
  }

  private useTimeouts(): MachineTimeouts {
    return (this.timeouts ??= new MachineTimeouts());
  }

  private enqueue(ev: QueuedEvent): void {
    if (this.queue === null) this.queue = [ev];
    else this.queue.push(ev);
  }

  private touchIdle(): void {
    this.useTimeouts().touchIdle(this.ctx, this.idleMs);
  }

  private onIdleTimer(n: number): void {
    const t = this.timeouts;
    if (t === null || this.idleMs < 0 || !t.onIdle(this.ctx, this.idleMs, n)) return;
    if (t.empty) this.timeouts = null;
    this.ctx.hibernate();
  }

  private stopWith(reason: ExitReason, x: { data?: D; replies?: ReplyAction[] }): void | Promise<void> {
    if ('data' in x) this.data = x.data as D;
    const replies = x.replies ?? [];
    return this.terminate(reason, () => {
      for (const r of replies) reply(this.ctx, r.reply, r.value);
    });
  }

  private crash(err: unknown): void | Promise<void> {
    return this.terminate(crashReason(err), null);
  }

  /** Cancel every timer, (send the stop replies,) run terminate once, exit. */
  private terminate(reason: ExitReason, before: (() => void) | null): void | Promise<void> {
    if ((this.flags & DONE) !== 0) return;
    this.flags = DONE;
    this.timeouts?.cancelAll(this.ctx);
    this.timeouts = null;
    this.queue = null;
    this.postponed = null;
    before?.();
    const t = this.b.terminate;
    if (t === undefined) return this.ctx.exit(reason);
    let r: void | Promise<void>;
    try {
      r = t.call(this.b, reason, this.state, this.data, this.ctx);
    } catch (err) {
      return this.ctx.exit(crashReason(err));
    }
    if (isPromise(r)) {
      return r.then(
        () => this.ctx.exit(reason),
        (err: unknown) => this.ctx.exit(crashReason(err)),
      );
    }
    this.ctx.exit(reason);
  }
}

// ---- helpers ---------------------------------------------------------------------------

function isFrom(x: unknown): x is From {
  return typeof x === 'object' && x !== null && isPid((x as From).pid) && isRef((x as From).ref);
}

function badActionReason(what: string, action: unknown): ExitReason {
  const text = (badReturn(action) as { bad_return_value: string }).bad_return_value;
  return { [what]: text };
}

/** Structural equality for states: primitives, arrays, plain objects; pids and refs by value. */
export function sameState(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (isPid(a) || isPid(b)) return isPid(a) && isPid(b) && pidEquals(a, b);
  if (isRef(a) || isRef(b)) return isRef(a) && isRef(b) && refEquals(a, b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameState(a[i], b[i])) return false;
    return true;
  }
  const pa = Object.getPrototypeOf(a) as unknown;
  if (pa !== Object.getPrototypeOf(b) || (pa !== Object.prototype && pa !== null)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameState((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
