/**
 * GenServer: the client-server behaviour (OTP gen_server) on a handler-style process. The
 * callbacks own the state; this module owns the protocol, the timeouts and the lifecycle,
 * and never lets a protocol message (a late reply, a stale timer) reach a callback.
 *
 * Use it as `import * as GenServer from './GenServer.js'`.
 *
 * Callbacks (every one may return a promise; the process handles nothing else until it
 * settles, which is how a callback can `await GenServer.call(ctx, other, …)`):
 *
 * - `init(args, ctx)` → `{state, continue?, timeout?, hibernate?}` | `{ignore: true}` |
 *   `{stop: reason}`. `start` returns after init (see Lifecycle.ts for every outcome).
 * - `handleCall(request, from, state, ctx)` → `{reply, state}` | `{noreply: true, state}`
 *   (answer later with `reply(ctx, from, value)`) | `{stop: reason, reply?, state?}`.
 * - `handleCast(msg, state, ctx)`, `handleInfo(msg, state, ctx)`,
 *   `handleContinue(cont, state, ctx)` → `{noreply: true, state}` | `{stop: reason, state?}`.
 *   handleInfo gets every other message: EXIT/DOWN messages, timers, plain sends, and the
 *   string `'timeout'` for an idle timeout. Without handleInfo such messages are logged and
 *   dropped; a call or cast without its callback crashes the server (OTP: undef).
 * - `terminate(reason, state, ctx)`: runs on `stop(…)`, on a `{stop}` result, when a callback
 *   throws (reason = the crash reason; the process then exits with it), and when the server
 *   traps exits and its parent (the `startLink` caller) sends an exit signal. It does not run
 *   when the server is killed by an exit signal it does not trap, as in OTP. If terminate
 *   throws, the process exits with that crash instead. With `{stop, reply}` the reply is
 *   sent after terminate.
 *
 * Result fields, applied after the callback returns:
 *
 * - `continue: c` runs `handleContinue(c)` before any other message (its own result then
 *   decides timeout and hibernation).
 * - `timeout: ms` delivers `'timeout'` to handleInfo if no other message is handled within
 *   `ms`; any message cancels it, and a timeout that fires while messages are already queued
 *   is dropped (those messages cancel it). Infinity or absent: no timeout.
 * - `hibernate: true` releases the idle mailbox storage now (`ctx.hibernate()`).
 * - option `idleHibernateMs` hibernates a server idle for that long (between 1x and 2x).
 *
 * A callback that returns anything else exits the server with `{bad_return_value: text}`.
 * Calls, casts, replies and late-reply handling: see Call.ts.
 */
import { crashReason, describeReason, type ExitReason } from '../runtime/ExitReason.js';
import type { Pid } from '../runtime/Pid.js';
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

/** What happens after a callback: continue first, then arm a timeout and/or hibernate. */
export interface Flow {
  continue?: unknown;
  timeout?: number;
  hibernate?: boolean;
}

export type InitReturn<S> = ({ state: S } & Flow) | { ignore: true } | { stop: ExitReason };
export type ReplyReturn<S, R> = { reply: R; state: S } & Flow;
export type NoReplyReturn<S> = { noreply: true; state: S } & Flow;
/** Stop with `reason`; `state` (default: unchanged) is what terminate sees. */
export type StopReturn<S, R = never> = { stop: ExitReason; state?: S; reply?: R };
export type CallReturn<S, R> = ReplyReturn<S, R> | NoReplyReturn<S> | StopReturn<S, R>;
export type HandlerReturn<S> = NoReplyReturn<S> | StopReturn<S>;

/**
 * A GenServer: `S` state, `A` init argument, `Req`/`Rep` call request and reply, `C` cast
 * message. Only `init` is required.
 */
export interface Behaviour<S, A = void, Req = unknown, Rep = unknown, C = unknown> {
  init(args: A, ctx: ProcessContext): Maybe<InitReturn<S>>;
  handleCall?(request: Req, from: From, state: S, ctx: ProcessContext): Maybe<CallReturn<S, Rep>>;
  handleCast?(msg: C, state: S, ctx: ProcessContext): Maybe<HandlerReturn<S>>;
  handleInfo?(msg: unknown, state: S, ctx: ProcessContext): Maybe<HandlerReturn<S>>;
  handleContinue?(cont: unknown, state: S, ctx: ProcessContext): Maybe<HandlerReturn<S>>;
  terminate?(reason: ExitReason, state: S, ctx: ProcessContext): void | Promise<void>;
}

// ---- public API ------------------------------------------------------------------------

/** Start an unlinked GenServer; resolves once init ran. From outside, pass the scheduler. */
export function start<S, A, Req, Rep, C>(
  where: ProcessContext | Scheduler,
  behaviour: Behaviour<S, A, Req, Rep, C>,
  args: A,
  opts: StartOptions = {},
): Promise<StartResult> {
  return startBehaviour(where, false, opts, 'GenServer', (by) => serverBody(behaviour, args, by, opts));
}

/** Start a GenServer linked to the calling process (atomically); resolves once init ran. */
export function startLink<S, A, Req, Rep, C>(
  ctx: ProcessContext,
  behaviour: Behaviour<S, A, Req, Rep, C>,
  args: A,
  opts: StartOptions = {},
): Promise<StartResult> {
  return startBehaviour(ctx, true, opts, 'GenServer', (by) => serverBody(behaviour, args, by, opts));
}

// ---- the server process ----------------------------------------------------------------

type AnyBehaviour<S> = Behaviour<S, unknown, unknown, unknown, unknown>;

function serverBody<S, A>(behaviour: Behaviour<S, A, unknown, unknown, unknown>, args: A, by: StartedBy, opts: StartOptions): ProcessBody {
  const b = behaviour as AnyBehaviour<S>;
  return (ctx) => {
    const r = b.init(args, ctx);
    return isPromise(r) ? r.then((x) => begin(ctx, x)) : begin(ctx, r);
  };

  function begin(ctx: ProcessContext, r: unknown): MessageHandler | void | Promise<MessageHandler | void> {
    if (refuseInit(ctx, by, r, (x) => 'state' in x)) return;
    const x = r as { state: S } & Flow;
    const server = new Server<S>(ctx, b, by.parent, x.state as S, opts.idleHibernateMs);
    ackInit(ctx, by, 'ok');
    const after = server.flow(x);
    return isPromise(after) ? after.then(() => server.handle) : server.handle;
  }
}

interface TimerMessage {
  $gen: string;
  n: number;
}

class Server<S> {
  private readonly timers = new TimerSequence();
  private readonly idleTimeout: BehaviourTimer;
  private readonly idle: IdleHibernation | null;
  private done = false;

  constructor(
    private readonly ctx: ProcessContext,
    private readonly b: AnyBehaviour<S>,
    private readonly parent: Pid | null,
    private state: S,
    idleHibernateMs: number | undefined,
  ) {
    this.idleTimeout = new BehaviourTimer(ctx, this.timers, (n) => ({ $gen: 'timeout', n }));
    this.idle = idleHibernateMs !== undefined && idleHibernateMs !== Infinity ? new IdleHibernation(ctx, this.timers, idleHibernateMs) : null;
    this.idle?.touch();
  }

  /** The process's message handler. */
  readonly handle = (msg: unknown): void | Promise<void> => {
    if (this.done) return;
    const tag = genTag(msg);
    switch (tag) {
      case undefined:
        break;
      case 'timeout':
        return this.onIdleTimeout((msg as TimerMessage).n);
      case 'idle':
        this.idle?.onTimer((msg as TimerMessage).n);
        return;
      case 'reply': // a late reply to a call this process gave up on
      case 'ack': // the late ack of a start that timed out
        return;
      case 'call': {
        this.activity();
        const m = msg as CallMessage;
        const h = this.b.handleCall;
        if (h === undefined) return this.crash(new Error('GenServer has no handleCall'));
        return this.run(() => h.call(this.b, m.request, m.from, this.state, this.ctx), m.from);
      }
      case 'cast': {
        this.activity();
        const h = this.b.handleCast;
        if (h === undefined) return this.crash(new Error('GenServer has no handleCast'));
        return this.run(() => h.call(this.b, (msg as CastMessage).msg, this.state, this.ctx), null);
      }
      case 'stop':
        return this.terminate((msg as StopRequest).reason, null);
    }
    this.activity();
    if (isParentExit(msg, this.parent)) return this.terminate(msg.reason, null);
    return this.info(msg);
  };

  /** Apply a result's continue / hibernate / timeout. */
  flow(x: Flow): void | Promise<void> {
    if (x.continue !== undefined) {
      const h = this.b.handleContinue;
      if (h === undefined) return this.crash(new Error('GenServer has no handleContinue'));
      const cont = x.continue;
      return this.run(() => h.call(this.b, cont, this.state, this.ctx), null);
    }
    if (x.hibernate === true) this.ctx.hibernate();
    if (x.timeout !== undefined) this.idleTimeout.start(x.timeout, 'timeout');
  }

  private activity(): void {
    if (this.idleTimeout.armed) this.idleTimeout.cancel();
    this.idle?.touch();
  }

  private onIdleTimeout(n: number): void | Promise<void> {
    if (!this.idleTimeout.fire(n)) return;
    // Messages that are already queued would have cancelled the timeout.
    if ((this.ctx.info()?.messageQueueLen ?? 0) > 0) return;
    this.idle?.touch();
    return this.info('timeout');
  }

  private info(msg: unknown): void | Promise<void> {
    const h = this.b.handleInfo;
    if (h === undefined) {
      this.ctx.env.log.warn({ pid: this.ctx.self.toString(), message: describeReason(msg as ExitReason) }, 'GenServer without handleInfo dropped a message');
      return;
    }
    return this.run(() => h.call(this.b, msg, this.state, this.ctx), null);
  }

  private run(invoke: () => unknown, from: From | null): void | Promise<void> {
    return runCallback(
      invoke,
      (x) => this.apply(x, from),
      (err) => this.crash(err),
    ) as void | Promise<void>;
  }

  private apply(r: unknown, from: From | null): void | Promise<void> {
    if (typeof r !== 'object' || r === null) return this.terminate(badReturn(r), null);
    const x = r as Partial<{ stop: ExitReason; reply: unknown; noreply: true; state: S }> & Flow;
    if ('stop' in x) {
      if ('state' in x) this.state = x.state as S;
      const answer = from !== null && 'reply' in x ? () => reply(this.ctx, from, x.reply) : null;
      return this.terminate(x.stop as ExitReason, answer);
    }
    if (!('state' in x)) return this.terminate(badReturn(r), null);
    if ('reply' in x) {
      if (from === null) return this.terminate(badReturn(r), null);
      this.state = x.state as S;
      reply(this.ctx, from, x.reply);
    } else if (x.noreply === true) {
      this.state = x.state as S;
    } else {
      return this.terminate(badReturn(r), null);
    }
    return this.flow(x);
  }

  private crash(err: unknown): void | Promise<void> {
    return this.terminate(crashReason(err), null);
  }

  /** Run terminate once, then (reply and) exit with the reason, or with terminate's crash. */
  private terminate(reason: ExitReason, after: (() => void) | null): void | Promise<void> {
    if (this.done) return;
    this.done = true;
    this.idleTimeout.cancel();
    this.idle?.cancel();
    const finish = (final: ExitReason): void => {
      after?.();
      this.ctx.exit(final);
    };
    const t = this.b.terminate;
    if (t === undefined) return finish(reason);
    let r: void | Promise<void>;
    try {
      r = t.call(this.b, reason, this.state, this.ctx);
    } catch (err) {
      return finish(crashReason(err));
    }
    if (isPromise(r)) {
      return r.then(
        () => finish(reason),
        (err: unknown) => finish(crashReason(err)),
      );
    }
    finish(reason);
  }
}
