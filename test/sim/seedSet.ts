/**
 * The fixed seed set CI runs through the simulator: each seed's scenario (faults drawn
 * swarm-style from the seed) must pass every checker, and a second run must reproduce the
 * first one's trace hash exactly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeFailure } from '../../sim/Report.js';
import { replayCheck } from '../../sim/Replay.js';
import { scenarioFromSeed } from '../../sim/Scenario.js';

export function seedSetTests(from: number, to: number): void {
  test(`seeds ${from}..${to}: no checker finds a violation and every seed replays to the same trace hash`, async () => {
    const failures: string[] = [];
    for (let seed = from; seed <= to; seed++) {
      const r = await replayCheck(scenarioFromSeed(seed));
      if (!r.ok) failures.push(`seed ${seed} is not deterministic: ${r.divergence}`);
      else if (!r.first.ok) failures.push(describeFailure(r.first));
      if (failures.length >= 3) break;
    }
    assert.deepEqual(failures, []);
  });
}
