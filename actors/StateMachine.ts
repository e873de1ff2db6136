/**
 * StateMachine: OTP gen_statem in handle_event_function mode on a handler-style process.
 * One callback sees every event with the current state and data; this module owns
 * postponing, state enter calls and the three kinds of timeouts, and guarantees that a
 * cancelled or superseded timeout never reaches the callback.
 *
 * Use it as `import * as StateMachine from './StateMachine.js'`.
 *
 * Callbacks (any may return a promise; the process is busy until it settles):
 *
 * - `init(args, ctx)` → `{state, data, actions?}` | `{ignore: true}` | `{stop: reason}`;
 *   `start`/`startLink` return after it (outcomes: Lifecycle.ts). Actions other than
 *   postpone are allowed.
 * - `handleEvent(type, event, state, data, ctx)` → one of
 *   - `{nextState, data?, actions?}`: go to `nextState` (a state change when it differs from
 *     the current state, compared structurally, or with `stateEquals`);
 *   - `{keepState: true, data?, actions?}`: stay;
 *   - `{repeatState: true, data?, actions?}`: stay, but run the state enter call again;
 *   - `{stop: reason, data?, replies?}`: send the replies, run terminate, exit with reason.
 *   `data` absent means unchanged.
 * - `terminate(reason, state, data, ctx)`: on `stop(…)`, a `{stop}` result, a crash in a
 *   callback (the process then exits with the crash reason), or the parent's EXIT while
 *   trapping exits; not when killed by an untrapped exit signal.
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
 * while messages are queued is dropped, since those messages cancel it.
 *
 * State enter calls (behaviour flag `stateEnter: true`) run after init and after every state
 * change or `repeatState`, before any other event. They may not change the state, postpone or
 * insert events (doing so exits with `{bad_state_enter_return}` or `{bad_state_enter_action}`);
 * they may set timeouts, reply and change data.
 */
import { crashReason, type ExitReason } from '../runtime/ExitReason.js';
import { isPid, isRef, pidEquals, refEquals, type Pid } from '../runtime/Pid.js';
import type { MessageHandler, ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { genTag, reply, type CallMessage, type CastMessage, type From } from './Call.js';
import { BehaviourTimer, IdleHibernation, TimerSequence } from './internal/BehaviourTimer.js';
import { badReturn, isPromise, runCallback, type Maybe } from './internal/callbacks.js';
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

export function isCall(type: EventType): type is { call: From } {
  return typeof type === 'object' && 'call' in type;
}

export function isGenericTimeout(type: EventType): type is { generic_timeout: string } {
  return typeof type === 'object' && 'generic_timeout' in type;
}

// ---- public API ------------------------------------------------------------------------

/** Start an unlinked state machine; resolves once init ran. From outside, pass the scheduler. */
export function start<S, D, A>(where: ProcessContext | Scheduler, behaviour: Behaviour<S, D, A>, args: A, opts: StartOptions = {}): Promise<StartResult> {
  return startBehaviour(where, false, opts, 'StateMachine', (by) => machineBody(behaviour, args, by, opts));
}

/** Start a state machine linked to the calling process (atomically); resolves once init ran. */
export function startLink<S, D, A>(ctx: ProcessContext, behaviour: Behaviour<S, D, A>, args: A, opts: StartOptions = {}): Promise<StartResult> {
  return startBehaviour(ctx, true, opts, 'StateMachine', (by) => machineBody(behaviour, args, by, opts));
}

// ---- the machine process ---------------------------------------------------------------

function machineBody<S, D, A>(b: Behaviour<S, D, A>, args: A, by: StartedBy, opts: StartOptions): ProcessBody {
  return (ctx) => {
    const r = b.init(args, ctx);
    return isPromise(r) ? r.then((x) => begin(ctx, x)) : begin(ctx, r);
  };

  function begin(ctx: ProcessContext, r: unknown): MessageHandler | void | Promise<MessageHandler | void> {
    if (refuseInit(ctx, by, r, (x) => 'state' in x && 'data' in x)) return;
    const x = r as { state: S; data: D; actions?: Action[] };
    const m = new Machine<S, D>(ctx, b as Behaviour<S, D, unknown>, by.parent, x.state as S, x.data as D, opts.idleHibernateMs);
    ackInit(ctx, by, 'ok');
    const after = m.begin(x.actions);
    return isPromise(after) ? after.then(() => m.handle) : m.handle;
  }
}

interface QueuedEvent {
  type: EventType;
  event: unknown;
  /** For a zero timeout queued as an event: false once it was cancelled. */
  live?: () => boolean;
}

interface TimerMessage {
  $gen: string;
  n: number;
  name?: string;
}

interface ParsedActions {
  postpone: boolean;
  replies: ReplyAction[];
  nextEvents: QueuedEvent[];
  timeouts: Action[];
  hibernate: boolean;
}

const NO_ACTIONS: ParsedActions = { postpone: false, replies: [], nextEvents: [], timeouts: [], hibernate: false };

class Machine<S, D> {
  /** Events to handle before the next message: inserted events, retried postponed ones, zero timeouts. */
  private queue: QueuedEvent[] = [];
  private postponed: QueuedEvent[] = [];
  private readonly timers = new TimerSequence();
  private readonly stateTimer: BehaviourTimer;
  private readonly eventTimer: BehaviourTimer;
  private readonly generic = new Map<string, BehaviourTimer>();
  /** An event timeout set by the last actions, started once no event is queued. */
  private pendingEventTimeout: { ms: number; event: unknown } | null = null;
  private hibernateRequested = false;
  private readonly idle: IdleHibernation | null;
  private readonly equals: (a: S, b: S) => boolean;
  private done = false;

  constructor(
    private readonly ctx: ProcessContext,
    private readonly b: Behaviour<S, D, unknown>,
    private readonly parent: Pid | null,
    private state: S,
    private data: D,
    idleHibernateMs: number | undefined,
  ) {
    this.stateTimer = new BehaviourTimer(ctx, this.timers, (n) => ({ $gen: 'state_timeout', n }));
    this.eventTimer = new BehaviourTimer(ctx, this.timers, (n) => ({ $gen: 'event_timeout', n }));
    this.idle = idleHibernateMs !== undefined && idleHibernateMs !== Infinity ? new IdleHibernation(ctx, this.timers, idleHibernateMs) : null;
    this.idle?.touch();
    this.equals = b.stateEquals !== undefined ? (x, y) => b.stateEquals!(x, y) : sameState;
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

  /** The process's message handler. */
  readonly handle = (msg: unknown): void | Promise<void> => {
    if (this.done) return;
    let ev: QueuedEvent | undefined;
    switch (genTag(msg)) {
      case 'state_timeout':
        if (!this.stateTimer.fire((msg as TimerMessage).n)) return;
        ev = { type: 'state_timeout', event: this.stateTimer.event };
        break;
      case 'event_timeout':
        if (!this.eventTimer.fire((msg as TimerMessage).n)) return;
        // Messages that are already queued are events, and any event cancels this timeout.
        if ((this.ctx.info()?.messageQueueLen ?? 0) > 0) return;
        ev = { type: 'timeout', event: this.eventTimer.event };
        break;
      case 'generic_timeout': {
        const name = (msg as TimerMessage).name as string;
        const t = this.generic.get(name);
        if (t === undefined || !t.fire((msg as TimerMessage).n)) return;
        this.generic.delete(name);
        ev = { type: { generic_timeout: name }, event: t.event };
        break;
      }
      case 'idle':
        this.idle?.onTimer((msg as TimerMessage).n);
        return;
      case 'reply': // a late reply to a call this process gave up on
      case 'ack': // the late ack of a start that timed out
        return;
      case 'call': {
        const m = msg as CallMessage;
        ev = { type: { call: m.from }, event: m.request };
        break;
      }
      case 'cast':
        ev = { type: 'cast', event: (msg as CastMessage).msg };
        break;
      case 'stop':
        return this.terminate((msg as StopRequest).reason, null);
    }
    if (ev === undefined) {
      if (isParentExit(msg, this.parent)) return this.terminate(msg.reason, null);
      ev = { type: 'info', event: msg };
    }
    this.idle?.touch();
    this.queue.push(ev);
    return this.drain();
  };

  /** Handle queued events until none is left, then start a pending event timeout. */
  private drain(): void | Promise<void> {
    while (!this.done) {
      let ev = this.queue.shift();
      if (ev === undefined) {
        const et = this.pendingEventTimeout;
        if (et === null) break;
        this.pendingEventTimeout = null;
        if (et.ms > 0) {
          this.eventTimer.start(et.ms, et.event);
          break;
        }
        const n = this.eventTimer.startInline(et.event);
        ev = { type: 'timeout', event: et.event, live: () => this.eventTimer.fire(n) };
      }
      if (ev.live !== undefined && !ev.live()) continue;
      const r = this.handleEvent(ev);
      if (isPromise(r)) return r.then(() => this.drain());
    }
    if (!this.done && this.hibernateRequested) {
      this.hibernateRequested = false;
      this.ctx.hibernate();
    }
  }

  private handleEvent(ev: QueuedEvent): void | Promise<void> {
    this.eventTimer.cancel();
    this.pendingEventTimeout = null;
    return runCallback(
      () => this.b.handleEvent(ev.type, ev.event, this.state, this.data, this.ctx),
      (x) => this.transition(x, ev),
      (err) => this.crash(err),
    ) as void | Promise<void>;
  }

  private transition(r: unknown, ev: QueuedEvent): void | Promise<void> {
    if (typeof r !== 'object' || r === null) return this.terminate(badReturn(r), null);
    const x = r as Partial<{ nextState: S; keepState: true; repeatState: true; stop: ExitReason; data: D; actions: Action[]; replies: ReplyAction[] }>;
    if ('stop' in x) return this.stopWith(x.stop as ExitReason, x);
    const old = this.state;
    let changed = false;
    let repeat = false;
    if ('nextState' in x) changed = !this.equals(x.nextState as S, old);
    else if (x.repeatState === true) repeat = true;
    else if (x.keepState !== true) return this.terminate(badReturn(r), null);
    const a = this.parse(x.actions, 'event');
    if (a === null) return;
    if ('data' in x) this.data = x.data as D;
    if ('nextState' in x) this.state = x.nextState as S;
    if (a.postpone) this.postponed.push({ type: ev.type, event: ev.event });
    if (changed) {
      this.stateTimer.cancel();
      if (this.postponed.length > 0) {
        this.queue = this.postponed.concat(this.queue);
        this.postponed = [];
      }
    }
    if (!this.act(a)) return;
    if ((changed || repeat) && this.b.stateEnter === true) return this.enter(old);
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
    const x = r as Partial<{ nextState: S; keepState: true; repeatState: true; stop: ExitReason; data: D; actions: Action[]; replies: ReplyAction[] }>;
    if ('stop' in x) return this.stopWith(x.stop as ExitReason, x);
    if ('nextState' in x) {
      if (!this.equals(x.nextState as S, this.state)) return this.terminate({ bad_state_enter_return: 'a state enter call may not change the state' }, null);
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

  /** Validate actions; on a bad one the machine terminates and null is returned. */
  private parse(actions: Action[] | undefined, where: 'init' | 'event' | 'enter'): ParsedActions | null {
    if (actions === undefined || actions.length === 0) return NO_ACTIONS;
    const p: ParsedActions = { postpone: false, replies: [], nextEvents: [], timeouts: [], hibernate: false };
    for (const a of actions as unknown[]) {
      const x = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
      if (x.postpone === true && where === 'event') p.postpone = true;
      else if ('reply' in x && isFrom(x.reply)) p.replies.push(x as unknown as ReplyAction);
      else if ('nextEvent' in x && where !== 'enter' && x.nextEvent !== 'enter') p.nextEvents.push({ type: x.nextEvent as EventType, event: x.event });
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
    if (a === null || this.done) return false;
    if (a === NO_ACTIONS) return true;
    for (const r of a.replies) reply(this.ctx, r.reply, r.value);
    if (a.nextEvents.length > 0) this.queue = a.nextEvents.concat(this.queue);
    for (const t of a.timeouts) this.armTimeout(t);
    if (a.hibernate) this.hibernateRequested = true;
    return true;
  }

  private armTimeout(t: Action): void {
    if ('stateTimeout' in t) {
      if (t.stateTimeout > 0) {
        this.stateTimer.start(t.stateTimeout, t.event);
      } else {
        const n = this.stateTimer.startInline(t.event);
        this.queue.push({ type: 'state_timeout', event: t.event, live: () => this.stateTimer.fire(n) });
      }
    } else if ('eventTimeout' in t) {
      if (t.eventTimeout === Infinity) {
        this.pendingEventTimeout = null;
        this.eventTimer.cancel();
      } else {
        this.pendingEventTimeout = { ms: t.eventTimeout, event: t.event };
      }
    } else if ('genericTimeout' in t) {
      const name = t.genericTimeout;
      let timer = this.generic.get(name);
      if (timer === undefined) {
        timer = new BehaviourTimer(this.ctx, this.timers, (n) => ({ $gen: 'generic_timeout', name, n }));
        this.generic.set(name, timer);
      }
      if (t.ms === Infinity) {
        timer.cancel();
        this.generic.delete(name);
      } else if (t.ms > 0) {
        timer.start(t.ms, t.event);
      } else {
        const tm = timer;
        const n = timer.startInline(t.event);
        this.queue.push({
          type: { generic_timeout: name },
          event: t.event,
          live: () => {
            if (!tm.fire(n)) return false;
            if (this.generic.get(name) === tm) this.generic.delete(name);
            return true;
          },
        });
      }
    }
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
    if (this.done) return;
    this.done = true;
    this.stateTimer.cancel();
    this.eventTimer.cancel();
    for (const t of this.generic.values()) t.cancel();
    this.generic.clear();
    this.idle?.cancel();
    this.queue = [];
    this.postponed = [];
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
