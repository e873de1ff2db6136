/**
 * The control stream's compare-and-append on the JetStream model with nats-server 2.9.10's
 * race (a non-zero Expected-Last-Subject-Sequence checked only by the leader before proposing,
 * so racing appends all pass it): nodes racing to write the next ownership record of a group
 * after the same record still produce exactly one record per round, thanks to the Msg-Id
 * naming "the record after s"; the losers hear `conflict`, and a writer retrying its own append
 * after a lost answer is told it won. Seeded; each run replayed with the trace hash compared.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterNames } from '../../core/cluster/ClusterNames.js';
import { ControlStream, type OwnershipRecord } from '../../core/cluster/OwnershipTable.js';
import { SimCluster } from '../../sim/SimCluster.js';
import { replayTwice } from './replayTwice.js';

const NODES = ['n0', 'n1', 'n2'];

async function race(seed: number): Promise<{ hash: string; events: number; winners: number[]; records: number; retried: boolean }> {
  const c = new SimCluster({ seed, nodes: 3, servers: 3 });
  c.start();
  await c.waitFor('the JetStream API', () => c.jetstream!.apiReady());
  const names = clusterNames('race');
  const ctl = (n: string) => new ControlStream(c.node(n).env!.streams!, names, 3);
  assert.deepEqual(await c.settle(ctl('n0').ensure()), { ok: true });
  const winners: number[] = [];
  let seq = 0;
  let epoch = 0;
  let retried = false;
  for (let round = 0; round < 10; round++) {
    const record = (owner: string): OwnershipRecord => ({ group: 0, epoch: epoch + 1, owner, ownerIncarnation: 1, standbys: [], successor: null, reason: 'failover' });
    const rs = await c.settle(Promise.all(NODES.map((n) => ctl(n).writeGroup(record(n), seq))));
    const won = rs.flatMap((r, i) => (r.ok ? [i] : []));
    winners.push(won.length);
    for (const r of rs) if (!r.ok) assert.equal(r.reason, 'conflict');
    const w = won[0]!;
    // The winner appending the same record again (its answer lost) is told it won, at the same seq.
    const again = await c.settle(ctl(NODES[w]!).writeGroup(record(NODES[w]!), seq));
    if (again.ok && rs[w]!.ok && again.seq === rs[w]!.seq) retried = true;
    const last = await c.settle(ctl('n0').readGroup(0));
    assert.ok(last.ok && last.value !== undefined);
    assert.equal(last.value.owner, NODES[w]);
    seq = last.seq;
    epoch = last.value.epoch;
    await c.run(50);
  }
  const r = await c.settle(c.node('n0').env!.streams!.info(names.ctlStream));
  assert.ok(r.ok);
  return { hash: c.traceHash(), events: c.world.events, winners, records: r.lastSeq, retried };
}

test('racing writers of the next ownership record after the same record: exactly one wins each round, also on the 2.9.10 race', async () => {
  for (const seed of [3, 17]) {
    const r = await replayTwice(`control race ${seed}`, () => race(seed));
    assert.deepEqual(r.winners, Array(10).fill(1));
    assert.equal(r.records, 10, 'one record per round in the stream');
    assert.equal(r.retried, true, "a winner's retry of its own append is answered as its own");
  }
});
