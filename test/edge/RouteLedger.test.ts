/**
 * A connection's ledger of what it sent into a cluster (edge/RouteLedger.ts): lanes numbered
 * per shard group with the lowest waiting number as base, lanes due again after the retry
 * interval, on an owner change or when the owner said "not now", routes given up past the
 * horizon in the order they were sent, and acknowledgements kept until confirmed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouterRoute } from '../../core/RouterShard.js';
import type { UserKey } from '../../core/UserId.js';
import { RouteLedger } from '../../edge/RouteLedger.js';

const msg = (to: string): RouterRoute => ({ t: 'route', to: to as UserKey, rec: { k: 'direct', from: new Uint8Array([1]), body: new Uint8Array([2]), format: 'opaque' }, replyTo: null });

test('routes are numbered per lane, and base is the lowest number still waiting', () => {
  const l = new RouteLedger();
  const a1 = l.add(1, msg('x'), 0);
  const b1 = l.add(2, msg('y'), 0);
  const a2 = l.add(1, msg('x'), 0);
  assert.deepEqual([a1.n, b1.n, a2.n], [1, 1, 2]);
  assert.equal(l.base(1), 1);
  l.settle(1, 1);
  assert.equal(l.base(1), 2);
  l.settle(1, 2);
  assert.equal(l.base(1), 3, 'nothing waits: the next number');
  assert.equal(l.settle(1, 2), undefined, 'settling twice finds nothing');
  assert.deepEqual(l.lane(2).map((p) => p.n), [1]);
  assert.equal(l.size, 1);
});

test('a lane is due again when a route waited the retry interval, went to another owner, or was refused for now', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  const q = l.add(2, msg('y'), 0);
  for (const x of [p, q]) l.sent(x, 'a', 0);
  assert.deepEqual(l.lanesDue(100, 300, () => 'a'), []);
  assert.deepEqual(l.lanesDue(300, 300, () => 'a').sort(), [1, 2]);
  assert.deepEqual(l.lanesDue(100, 300, (g) => (g === 2 ? 'b' : 'a')), [2]);
  assert.equal(l.laneMoved(2, 'b'), true);
  assert.equal(l.laneMoved(1, 'a'), false);
  assert.equal(l.laneMoved(3, 'a'), false, 'a lane with nothing waiting never moved');
  l.retry(1, 1);
  assert.deepEqual(l.lanesDue(100, 300, () => 'a'), [1]);
});

test('routes first sent before the horizon are given up, oldest first, and leave the ledger', () => {
  const l = new RouteLedger();
  l.add(1, msg('x'), 0);
  l.add(2, msg('y'), 50);
  l.add(1, msg('x'), 100);
  assert.deepEqual(l.expired(1_060, 1_000).map((p) => [p.g, p.n]), [[1, 1], [2, 1]]);
  assert.equal(l.size, 1);
  assert.equal(l.base(1), 2);
});

test('acknowledgements wait until confirmed: due again after the retry interval or an owner change, dropped past the horizon', () => {
  const l = new RouteLedger();
  const id = new Uint8Array(16).fill(7);
  const a = l.addAck(id, 0);
  assert.equal(l.addAck(id, 5), a, 'the same id is one acknowledgement');
  a.sentTo = 'a';
  a.sentAt = 0;
  assert.deepEqual(l.acksDue(100, 300, 'a', 10_000), []);
  assert.deepEqual(l.acksDue(300, 300, 'a', 10_000), [a]);
  assert.deepEqual(l.acksDue(100, 300, 'b', 10_000), [a]);
  assert.deepEqual(l.acksMoved('b'), [a]);
  l.ackDone(id);
  assert.equal(l.ackCount, 0);
  l.addAck(id, 0);
  assert.deepEqual(l.acksDue(20_000, 300, 'a', 10_000), []);
  assert.equal(l.empty, true);
});
