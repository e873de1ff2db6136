/**
 * A Clock that only moves when a test sets `now` (monotonic ms; wall = a fixed epoch + now).
 */
import type { Clock } from '../../runtime/Env.js';

export interface ManualClock extends Clock {
  now: number;
}

export function manualClock(now = 0): ManualClock {
  return {
    now,
    monotonicMs() {
      return this.now;
    },
    wallMs() {
      return 1_700_000_000_000 + this.now;
    },
  };
}
