/**
 * Scenarios from fast-check: client count, rate, phase length, scheduler domains and the
 * fault set are drawn field by field (with a fixed fast-check seed, so CI runs the same
 * set), so a failure shrinks to a small scenario and prints the command that replays it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { describeFailure } from '../../sim/Report.js';
import { scenarioArbitrary } from '../../sim/Scenario.js';
import { runScenario } from '../../sim/Simulation.js';

test('fast-check scenarios with any fault set pass every checker', async () => {
  let report = '';
  const out = await fc.check(
    fc.asyncProperty(scenarioArbitrary(), async (s) => {
      const r = await runScenario(s);
      if (!r.ok) report = describeFailure(r);
      return r.ok;
    }),
    { seed: 0x1e15, numRuns: 60 },
  );
  assert.equal(out.failed, false, `shrunk counterexample:\n${report}`);
});
