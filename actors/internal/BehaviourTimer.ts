/**
 * Behaviour timeouts: one-shot system-lane timers tagged with a counter, and idle
 * hibernation. A timer that was cancelled or restarted must never fire: its message may
 * already be queued, so every firing carries the number it was armed with and only the
 * current number counts.
 */
import type { Ref } from '../../runtime/Pid.js';
import type { ProcessContext } from '../../runtime/ProcessContext.js';

/** Numbers timer firings within one behaviour process; shared by all its timers. */
export class TimerSequence {
  private n = 0;
  next(): number {
    return ++this.n;
  }
}

/**
 * One timeout slot of a GenServer (its idle timeout, its idle hibernation): `start` sends
 * `message(n)` in the system lane after `ms`. StateMachine keeps its timeouts in
 * MachineTimeouts.ts instead, which costs nothing while none is armed.
 */
export class BehaviourTimer {
  private ref: Ref | null = null;
  private live = 0;
  /** The event the timeout delivers when it fires. */
  event: unknown = undefined;

  constructor(
    private readonly ctx: ProcessContext,
    private readonly seq: TimerSequence,
    private readonly message: (n: number) => unknown,
  ) {}

  /** (Re)arm; returns the firing number. Infinity cancels instead and returns 0. */
  start(ms: number, event: unknown): number {
    const n = this.startInline(event);
    if (ms === Infinity) {
      this.cancel();
      return 0;
    }
    this.ref = this.ctx.sendAfter(Math.max(0, ms), this.message(n), undefined, { system: true });
    return n;
  }

  private startInline(event: unknown): number {
    this.cancel();
    const n = this.seq.next();
    this.live = n;
    this.event = event;
    return n;
  }

  cancel(): void {
    if (this.ref !== null) {
      this.ctx.cancelTimer(this.ref);
      this.ref = null;
    }
    this.live = 0;
    this.event = undefined;
  }

  get armed(): boolean {
    return this.live !== 0;
  }

  /** True exactly once, for the firing of the current arming; false for a stale one. */
  fire(n: number): boolean {
    if (n === 0 || n !== this.live) return false;
    this.live = 0;
    this.ref = null;
    return true;
  }
}

/**
 * Hibernates a process that handled no message for `ms`. Costs one counter increment per
 * message: the timer is re-armed only when it fires and sees activity, so the process
 * hibernates between `ms` and `2 * ms` after its last message.
 */
export class IdleHibernation {
  private handled = 0;
  private handledAtArm = 0;
  private readonly timer: BehaviourTimer;

  constructor(
    private readonly ctx: ProcessContext,
    seq: TimerSequence,
    private readonly ms: number,
  ) {
    this.timer = new BehaviourTimer(ctx, seq, (n) => ({ $gen: 'idle', n }));
  }

  /** Call once per handled message. */
  touch(): void {
    this.handled++;
    if (!this.timer.armed) this.arm();
  }

  /** Handle an `{$gen: 'idle', n}` message. */
  onTimer(n: number): void {
    if (!this.timer.fire(n)) return;
    if (this.handled === this.handledAtArm) this.ctx.hibernate();
    else this.arm();
  }

  cancel(): void {
    this.timer.cancel();
  }

  private arm(): void {
    this.handledAtArm = this.handled;
    this.timer.start(this.ms, undefined);
  }
}
