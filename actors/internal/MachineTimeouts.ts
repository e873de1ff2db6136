/**
 * The timeouts of one StateMachine (state, event, generic by name, idle hibernation), kept
 * in an object the machine allocates when it arms its first timeout and drops once nothing
 * is armed again, so an idle machine pays nothing for them. It must never let a cancelled or
 * superseded timeout fire: its kernel message may already be queued, so every arming gets a
 * firing number and only the firing that carries the current number counts.
 */
import type { Ref } from '../../runtime/Pid.js';
import type { ProcessContext, SendAfterOptions } from '../../runtime/ProcessContext.js';
import { SmallMap } from '../../runtime/SmallMap.js';

/** A timeout's kernel message, sent to the machine itself in the system lane. */
export interface TimeoutMessage {
  readonly $gen: 'state_timeout' | 'event_timeout' | 'generic_timeout' | 'idle';
  readonly n: number;
  /** The generic timeout's name. */
  readonly name?: string;
}

/** One armed timeout. */
export interface Armed {
  /** The firing number of this arming. */
  readonly n: number;
  /** The kernel timer; null for a zero timeout, which the machine queues as an event itself. */
  readonly ref: Ref | null;
  /** What the timeout delivers as its event. */
  readonly event: unknown;
}

/** An event timeout set by actions; it starts once no event is queued. */
export interface PendingEventTimeout {
  readonly ms: number;
  readonly event: unknown;
}

const SYSTEM_LANE: SendAfterOptions = { system: true };

/*
 * One counter for every machine on this thread: a machine drops its MachineTimeouts when
 * nothing is armed, so a per-machine counter would restart at 1 and could match the stale
 * firing of a timeout cancelled before the drop.
 */
let lastFiring = 0;

/** A timeout with a kernel timer of `ms` (at least 0). */
function arm(ctx: ProcessContext, ms: number, event: unknown, $gen: TimeoutMessage['$gen'], name?: string): Armed {
  const n = ++lastFiring;
  const message: TimeoutMessage = name === undefined ? { $gen, n } : { $gen, name, n };
  return { n, ref: ctx.sendAfter(Math.max(0, ms), message, undefined, SYSTEM_LANE), event };
}

/** A zero timeout: no kernel timer, the machine queues its event and claims it with `n`. */
function armInline(event: unknown): Armed {
  return { n: ++lastFiring, ref: null, event };
}

function disarm(ctx: ProcessContext, a: Armed | null | undefined): void {
  if (a !== null && a !== undefined && a.ref !== null) ctx.cancelTimer(a.ref);
}

export class MachineTimeouts {
  state: Armed | null = null;
  event: Armed | null = null;
  pendingEvent: PendingEventTimeout | null = null;
  generic: SmallMap<Armed> | null = null;
  idle: Armed | null = null;
  /** A message was handled since the idle timer was armed. */
  active = false;

  /** True when the machine may drop this object. */
  get empty(): boolean {
    return this.state === null && this.event === null && this.pendingEvent === null && this.generic === null && this.idle === null;
  }

  // ---- state and event timeouts ---------------------------------------------------------
  // `ms` > 0 arms a kernel timer; a zero timeout is armed inline (see armInline).

  armState(ctx: ProcessContext, ms: number, event: unknown): Armed {
    disarm(ctx, this.state);
    return (this.state = ms > 0 ? arm(ctx, ms, event, 'state_timeout') : armInline(event));
  }

  cancelState(ctx: ProcessContext): void {
    disarm(ctx, this.state);
    this.state = null;
  }

  /** The state timeout if `n` is its current firing (it is then no longer armed), else null. */
  fireState(n: number): Armed | null {
    const a = this.state;
    if (a === null || a.n !== n) return null;
    this.state = null;
    return a;
  }

  /** Arm the event timeout with a kernel timer (a zero one is handled at once, never armed). */
  armEvent(ctx: ProcessContext, ms: number, event: unknown): void {
    disarm(ctx, this.event);
    this.event = arm(ctx, ms, event, 'event_timeout');
  }

  cancelEvent(ctx: ProcessContext): void {
    disarm(ctx, this.event);
    this.event = null;
  }

  fireEvent(n: number): Armed | null {
    const a = this.event;
    if (a === null || a.n !== n) return null;
    this.event = null;
    return a;
  }

  // ---- generic timeouts -----------------------------------------------------------------

  armGeneric(ctx: ProcessContext, name: string, ms: number, event: unknown): Armed {
    const g = (this.generic ??= new SmallMap());
    disarm(ctx, g.get(name));
    const a = ms > 0 ? arm(ctx, ms, event, 'generic_timeout', name) : armInline(event);
    g.set(name, a);
    return a;
  }

  cancelGeneric(ctx: ProcessContext, name: string): void {
    const g = this.generic;
    if (g === null) return;
    disarm(ctx, g.get(name));
    this.dropGeneric(g, name);
  }

  fireGeneric(name: string, n: number): Armed | null {
    const g = this.generic;
    const a = g?.get(name);
    if (g === null || a === undefined || a.n !== n) return null;
    this.dropGeneric(g, name);
    return a;
  }

  private dropGeneric(g: SmallMap<Armed>, name: string): void {
    g.delete(name);
    if (g.size === 0) this.generic = null;
  }

  // ---- idle hibernation -----------------------------------------------------------------
  // One flag write per message: the timer is re-armed only when it fires and sees activity,
  // so the machine hibernates between `ms` and `2 * ms` after its last message.

  /** Note a handled message; arms the idle timer if it is not running. */
  touchIdle(ctx: ProcessContext, ms: number): void {
    if (this.idle === null) this.armIdle(ctx, ms);
    else this.active = true;
  }

  /** Handle an idle firing; true when the machine should hibernate now. */
  onIdle(ctx: ProcessContext, ms: number, n: number): boolean {
    const a = this.idle;
    if (a === null || a.n !== n) return false;
    this.idle = null;
    if (!this.active) return true;
    this.armIdle(ctx, ms);
    return false;
  }

  private armIdle(ctx: ProcessContext, ms: number): void {
    this.active = false;
    this.idle = arm(ctx, ms, undefined, 'idle');
  }

  /** Cancel every kernel timer (the machine is stopping). */
  cancelAll(ctx: ProcessContext): void {
    disarm(ctx, this.state);
    disarm(ctx, this.event);
    disarm(ctx, this.idle);
    if (this.generic !== null) for (const a of this.generic.values()) disarm(ctx, a);
    this.state = this.event = this.idle = null;
    this.pendingEvent = null;
    this.generic = null;
  }
}
