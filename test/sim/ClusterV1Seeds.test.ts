/**
 * The v1 cluster seed set: each seed's scenario (3–4 nodes running the whole service in cluster
 * mode, 3 NATS servers, faults drawn swarm-style from the seed) driven by v1 clients on the
 * nodes' edges must pass every checker — the cluster's and the clients' (no accepted message
 * lost, delivered again after its ACK or out of per-sender order; presence converges on every
 * node) — and a second run must reproduce the first one's trace hash exactly. Sized to take
 * about half a minute here; `npm run sim -- --workload v1 --seeds N` runs more.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterScenarioFromSeed } from '../../sim/ClusterScenario.js';
import { describeClusterFailure } from '../../sim/Report.js';
import { replayClusterCheck } from '../../sim/Replay.js';

const FIRST_SEED = 1;
const LAST_SEED = 20;

test(`v1 cluster seeds ${FIRST_SEED}..${LAST_SEED}: no checker finds a violation and every seed replays to the same trace hash`, async () => {
  const failures: string[] = [];
  for (let seed = FIRST_SEED; seed <= LAST_SEED; seed++) {
    const r = await replayClusterCheck(clusterScenarioFromSeed(seed, { workload: 'v1' }));
    if (!r.ok) failures.push(`v1 cluster seed ${seed} is not deterministic: ${r.divergence}`);
    else if (!r.first.ok) failures.push(describeClusterFailure(r.first));
    if (failures.length >= 3) break;
  }
  assert.deepEqual(failures, []);
});
