/**
 * The handler-time watchdog (RT13). JavaScript cannot preempt a handler, so each scheduler
 * thread publishes heartbeat cells in shared memory and this sampler, on the node's main
 * thread, reads them: a handler seen running past its budget is reported; a scheduler whose
 * event loop has not ticked for the hard limit is declared stuck so the node restarts it.
 */
import { HANDLER_BUDGET_MS, SCHEDULER_HARD_LIMIT_MS, WATCHDOG_INTERVAL_MS } from '../defaults.js';

/** Heartbeat cell indexes. */
export const HB_INVOCATIONS = 0;
export const HB_SLOT = 1;
export const HB_IN_LOOP = 2;
export const HB_TICKS = 3;
export const HB_CELLS = 4;
/** How often a scheduler thread bumps its tick cell. */
export const HB_TICK_MS = 20;

export interface WatchdogOptions {
  handlerBudgetMs?: number;
  hardLimitMs?: number;
  intervalMs?: number;
  onOverBudget: (sched: number, slot: number, ms: number) => void;
  onStuck: (sched: number, ms: number) => void;
}

interface Watched {
  hb: Int32Array;
  lastInvocations: number;
  invocationsSince: number;
  lastTicks: number;
  ticksSince: number;
  reported: boolean;
  stuck: boolean;
}

export class Watchdog {
  private readonly watched = new Map<number, Watched>();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly budget: number;
  private readonly hard: number;

  constructor(private readonly opts: WatchdogOptions) {
    this.budget = opts.handlerBudgetMs ?? HANDLER_BUDGET_MS;
    this.hard = opts.hardLimitMs ?? SCHEDULER_HARD_LIMIT_MS;
    this.timer = setInterval(() => this.sample(), opts.intervalMs ?? WATCHDOG_INTERVAL_MS);
    this.timer.unref();
  }

  watch(sched: number, hb: Int32Array): void {
    const now = Date.now();
    this.watched.set(sched, {
      hb,
      lastInvocations: hb[HB_INVOCATIONS] ?? 0,
      invocationsSince: now,
      lastTicks: hb[HB_TICKS] ?? 0,
      ticksSince: now,
      reported: false,
      stuck: false,
    });
  }

  unwatch(sched: number): void {
    this.watched.delete(sched);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = Date.now();
    for (const [id, w] of this.watched) {
      const inv = Atomics.load(w.hb, HB_INVOCATIONS);
      const ticks = Atomics.load(w.hb, HB_TICKS);
      if (inv !== w.lastInvocations) {
        w.lastInvocations = inv;
        w.invocationsSince = now;
        w.reported = false;
      } else if (!w.reported && Atomics.load(w.hb, HB_IN_LOOP) === 1 && now - w.invocationsSince > this.budget) {
        w.reported = true;
        this.opts.onOverBudget(id, Atomics.load(w.hb, HB_SLOT), now - w.invocationsSince);
      }
      if (ticks !== w.lastTicks) {
        w.lastTicks = ticks;
        w.ticksSince = now;
      } else if (!w.stuck && now - w.ticksSince > this.hard) {
        w.stuck = true;
        this.opts.onStuck(id, now - w.ticksSince);
      }
    }
  }
}
