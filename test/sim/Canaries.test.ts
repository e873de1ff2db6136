/**
 * Planted bugs prove the checkers work: with each canary switched on, some seed among the
 * first few dozen fails, and it fails for the invariant that bug breaks. fast-check then
 * shrinks a failing scenario to a small one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CANARY_NAMES, NODE_CANARY_NAMES, canary, type CanaryName } from '../../core/Canaries.js';
import { scenarioArbitrary, scenarioFromSeed } from '../../sim/Scenario.js';
import { runScenario } from '../../sim/Simulation.js';

/** Seeds each canary must be caught within. */
const SEED_BOUND = 40;

/** The invariants each bug breaks (a suppressed SEND_SEQ shows up as a message that never arrives). */
const EXPECTED: Partial<Record<CanaryName, string[]>> = {
  ack_before_fsync: ['ack_before_fsync'],
  dedup_wrong_key: ['liveness', 'gap', 'duplicate_seq'],
  drop_unacked_on_disconnect: ['durable_lost'],
  router_reorder: ['order'],
  presence_leak: ['presence'],
};

for (const name of NODE_CANARY_NAMES) {
  test(`canary ${name} is caught (as ${EXPECTED[name]!.join(' or ')}) within ${SEED_BOUND} seeds`, async () => {
    let caughtAt = -1;
    let invariants: string[] = [];
    for (let seed = 1; seed <= SEED_BOUND && caughtAt < 0; seed++) {
      const r = await runScenario(scenarioFromSeed(seed, name));
      if (!r.ok) {
        caughtAt = seed;
        invariants = r.violations.map((v) => v.invariant);
      }
    }
    assert.ok(caughtAt > 0, `${name} was not caught by seeds 1..${SEED_BOUND}`);
    assert.ok(invariants.some((i) => EXPECTED[name]!.includes(i)), `${name} was caught at seed ${caughtAt} but as ${invariants.join(', ')}`);
  });
}

test('no canary stays planted after a run', async () => {
  await runScenario(scenarioFromSeed(3, 'router_reorder'));
  for (const name of CANARY_NAMES) assert.equal(canary(name), false);
});

test('a failing scenario shrinks to a small counterexample (router_reorder)', async () => {
  const out = await fc.check(
    fc.asyncProperty(scenarioArbitrary({ canary: 'router_reorder' }), async (s) => (await runScenario(s)).ok),
    { seed: 0x5eed, numRuns: 50 },
  );
  assert.equal(out.failed, true, 'the planted reordering was not found');
  const [s] = out.counterexample!;
  assert.ok(s.clients <= 3, `shrunk to ${s.clients} clients`);
  assert.ok(s.faults.length <= 1, `shrunk to faults ${s.faults.join(', ')}`);
});
