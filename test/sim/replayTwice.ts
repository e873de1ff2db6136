/**
 * Determinism for seeded cluster tests: run a scenario twice (tripwires on, so real time,
 * timers or randomness reached from runtime code fail the run) and require both runs to end
 * with the same trace hash and event count. The first run's result is what the test checks.
 */
import assert from 'node:assert/strict';
import { installTripwires } from '../../sim/Tripwires.js';

export interface SeededRun {
  /** The world's trace hash at the end of the run. */
  readonly hash: string;
  readonly events: number;
}

export async function replayTwice<T extends SeededRun>(what: string, run: () => Promise<T>): Promise<T> {
  const first = await tripwired(run);
  const second = await tripwired(run);
  assert.equal(`${second.hash}/${second.events}`, `${first.hash}/${first.events}`, `${what}: the replay diverged`);
  return first;
}

async function tripwired<T>(run: () => Promise<T>): Promise<T> {
  const t = installTripwires();
  try {
    const r = await run();
    assert.deepEqual(t.violations, [], 'no tripwire fired');
    return r;
  } finally {
    t.remove();
  }
}
