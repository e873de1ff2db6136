/**
 * A connection's ledger of what it sent into a cluster (edge/RouteLedger.ts): lanes numbered
 * per shard group with the lowest waiting number as base, lanes due again after the retry
 * wait, on an owner change or when the owner said "not now", routes given up past the
 * horizon in the order they were sent, acknowledgements kept until confirmed, a retry wait
 * that follows the owners' answer times and backs off while answers are late, and at most a
 * flight limit of routes sent and unanswered (the rest held, in order, untimed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouterRoute } from '../../core/RouterShard.js';
import type { UserKey } from '../../core/UserId.js';
import { ROUTE_RETRY_MAX_FACTOR, RouteLedger, routeTiming } from '../../edge/RouteLedger.js';

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
  assert.deepEqual(l.lane(2), [], 'a held route is not in flight');
  l.sent(b1, 'a', 0);
  assert.deepEqual(l.lane(2).map((p) => p.n), [1]);
  assert.equal(l.size, 1);
});

test('at most the flight limit of a lane goes out, lowest number first; the rest are held until answers free room', () => {
  const l = new RouteLedger();
  const a = [l.add(1, msg('x'), 0), l.add(1, msg('x'), 0), l.add(1, msg('x'), 0), l.add(1, msg('x'), 0)];
  const b1 = l.add(2, msg('y'), 0);
  const first = l.sendable(1, 2);
  assert.deepEqual(first.map((p) => p.n), [1, 2]);
  for (const p of first) l.sent(p, 'a', 0);
  assert.deepEqual(l.sendable(1, 2), [], 'two in flight: nothing more of the lane goes');
  assert.deepEqual(l.sendable(2, 2), [b1], 'another lane has its own room');
  assert.equal(l.inFlight(1), 2);
  assert.equal(l.size, 5, 'held routes still count against route_window');
  assert.deepEqual(l.holding().sort(), [1, 2]);
  l.settle(1, 2, 10);
  const next = l.sendable(1, 2);
  assert.deepEqual(next.map((p) => p.n), [3], 'one answer, one more route, in order');
  l.sent(next[0]!, 'a', 10);
  assert.equal(l.base(1), 1, 'base counts held routes and routes in flight alike');
  l.settle(1, 1, 20);
  l.settle(1, 3, 20);
  assert.deepEqual(l.sendable(1, 2).map((p) => p.n), [4]);
  assert.equal(a[3]!.held, true);
  assert.equal(l.base(1), 4);
});

test('held routes are never timed: a lane is due again for its routes in flight only, and sends again only those', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  l.add(1, msg('x'), 0);
  l.add(2, msg('y'), 0);
  l.sent(p, 'a', 0);
  assert.deepEqual(l.lanesDue(10_000, 300, () => 'b'), [1], 'lane 2 holds its only route: not due, even with another owner');
  assert.deepEqual(l.lane(1).map((x) => x.n), [1]);
  l.retry(1, 2);
  assert.deepEqual(l.sendable(1, 1), [], 'a refusal of a held route does not put it in flight');
});

test('the horizon gives up held routes as well, and a route given up frees its room in flight', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  l.add(1, msg('x'), 0);
  l.add(1, msg('x'), 500);
  l.sent(p, 'a', 0);
  assert.deepEqual(l.expired(1_000, 1_000).map((x) => x.n), [1, 2]);
  assert.equal(l.inFlight(1), 0);
  assert.deepEqual(l.sendable(1, 1).map((x) => x.n), [3]);
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

test('the retry wait is route_retry_ms until answers are timed, then srtt + 4 rttvar of answers to single sends (never below route_retry_ms)', () => {
  const l = new RouteLedger();
  assert.equal(l.retryWait(500), 500);
  const p = l.add(1, msg('x'), 0);
  l.sent(p, 'a', 0);
  l.settle(1, p.n, 400);
  assert.equal(l.retryWait(500), 400 + 4 * 200, 'first answer: srtt 400, rttvar 200');
  const q = l.add(1, msg('x'), 1_000);
  l.sent(q, 'a', 1_000);
  l.settle(1, q.n, 1_400);
  assert.equal(l.retryWait(500), 400 + 4 * 150, 'steady answers shrink the variation');
  const fast = new RouteLedger();
  const f = fast.add(1, msg('x'), 0);
  fast.sent(f, 'a', 0);
  fast.settle(1, f.n, 5);
  assert.equal(fast.retryWait(500), 500, 'fast answers keep the floor');
  const id = new Uint8Array(16).fill(3);
  const acks = new RouteLedger();
  acks.ackSent(acks.addAck(id, 0), 'a', 0);
  acks.ackDone(id, 1_000);
  assert.equal(acks.retryWait(500), 1_000 + 4 * 500, 'acknowledgements are timed the same way');
});

test('slow answers delay the resend instead of repeating everything in flight; a resend\'s answer is not timed', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  l.sent(p, 'a', 0);
  l.settle(1, p.n, 900); // the owner answers in 900 ms: wait 900 + 4 × 450
  const q = l.add(2, msg('y'), 1_000);
  l.sent(q, 'a', 1_000);
  assert.deepEqual(l.lanesDue(1_600, 500, () => 'a'), [], 'not due after route_retry_ms while answers take longer');
  assert.deepEqual(l.lanesDue(3_700, 500, () => 'a'), [2]);
  l.sent(q, 'a', 3_700);
  l.settle(2, q.n, 3_750);
  assert.equal(l.retryWait(500), Math.min(500 * ROUTE_RETRY_MAX_FACTOR, 2 * 2_700), 'the late round doubled the wait; the answer to a resent route leaves the estimate and the back-off alone');
});

test('each retry round that finds an answer late doubles the wait, up to ROUTE_RETRY_MAX_FACTOR × route_retry_ms; a timed answer ends the back-off; moves and "not now" are not late', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  l.sent(p, 'a', 0);
  const id = new Uint8Array(16).fill(9);
  const a = l.addAck(id, 0);
  l.ackSent(a, 'a', 0);
  assert.deepEqual(l.lanesDue(500, 500, () => 'a'), [1]);
  assert.deepEqual(l.acksDue(500, 500, 'a', 30_000), [a], 'due in the same round');
  assert.equal(l.retryWait(500), 1_000, 'one doubling per round, routes and acknowledgements alike');
  let now = 500;
  for (let i = 0; i < 10; i++) {
    l.sent(p, 'a', now);
    now += l.retryWait(500);
    assert.deepEqual(l.lanesDue(now, 500, () => 'a'), [1]);
  }
  assert.equal(l.retryWait(500), 500 * ROUTE_RETRY_MAX_FACTOR);
  l.retry(1, p.n);
  assert.deepEqual(l.lanesDue(now + 1, 500, () => 'a'), [1], '"not now" is due at once');
  assert.deepEqual(l.lanesDue(now + 2, 500, () => 'b'), [1], 'an owner change is due at once');
  assert.equal(l.retryWait(500), 500 * ROUTE_RETRY_MAX_FACTOR);
  const r = l.add(3, msg('z'), now);
  l.sent(r, 'a', now);
  l.settle(3, r.n, now + 100);
  assert.equal(l.retryWait(500), 500, 'a timed answer ends the back-off');
});

test('a lane moved to a new owner is retried every route_retry_ms until that owner answers, whatever the adaptive wait, and its lateness does not back off', () => {
  const l = new RouteLedger();
  const p = l.add(1, msg('x'), 0);
  l.sent(p, 'a', 0);
  l.settle(1, p.n, 2_000); // slow answers: the adaptive wait is 4 s (the cap)
  assert.equal(l.retryWait(500), 4_000);
  const q = l.add(1, msg('x'), 3_000);
  l.sent(q, 'a', 3_000);
  assert.deepEqual(l.lanesDue(3_100, 500, () => 'b'), [1], 'the owner changed: due at once');
  l.sent(q, 'b', 3_100);
  assert.deepEqual(l.lanesDue(3_500, 500, () => 'b'), []);
  assert.deepEqual(l.lanesDue(3_600, 500, () => 'b'), [1], 'probing: route_retry_ms, not the adaptive wait');
  l.sent(q, 'b', 3_600);
  assert.deepEqual(l.lanesDue(4_100, 500, () => 'b'), [1]);
  assert.equal(l.retryWait(500), 4_000, 'no back-off while probing');
  l.sent(q, 'b', 4_100);
  l.settle(1, q.n, 4_150);
  const r = l.add(1, msg('x'), 5_000);
  l.sent(r, 'b', 5_000);
  assert.deepEqual(l.lanesDue(5_600, 500, () => 'b'), [], 'answered by the new owner: the adaptive wait again');
  assert.deepEqual(l.lanesDue(9_000, 500, () => 'b'), [1]);
});

test('acknowledgements moved to a new owner are retried every route_retry_ms until it confirms one', () => {
  const l = new RouteLedger();
  const one = new Uint8Array(16).fill(1);
  const two = new Uint8Array(16).fill(2);
  l.ackSent(l.addAck(one, 0), 'a', 0);
  l.ackDone(one, 2_000);
  assert.equal(l.retryWait(500), 4_000);
  const b = l.addAck(two, 3_000);
  l.ackSent(b, 'a', 3_000);
  assert.deepEqual(l.acksDue(3_100, 500, 'b', 30_000), [b], 'the owner changed: due at once');
  l.ackSent(b, 'b', 3_100);
  assert.deepEqual(l.acksDue(3_500, 500, 'b', 30_000), []);
  assert.deepEqual(l.acksDue(3_600, 500, 'b', 30_000), [b], 'probing: route_retry_ms');
  assert.equal(l.retryWait(500), 4_000, 'no back-off while probing');
});

test('a connection that has timed nothing waits by its node\'s estimate, which every connection\'s answers feed', () => {
  const node = routeTiming();
  const first = new RouteLedger(node);
  assert.equal(first.retryWait(200), 200, 'nothing measured on the node: route_retry_ms');
  const p = first.add(1, msg('x'), 0);
  first.sent(p, 'a', 0);
  first.settle(1, 1, 400);
  assert.deepEqual(node, { srtt: 400, rttvar: 200 });
  const fresh = new RouteLedger(node);
  assert.equal(fresh.retryWait(200), 1_200, 'srtt + 4 × rttvar of the node');
  const q = fresh.add(1, msg('x'), 0);
  fresh.sent(q, 'a', 0);
  fresh.settle(1, 1, 100);
  assert.equal(fresh.retryWait(200), 300, 'its own answer timed: its own estimate');
  assert.ok(node.srtt < 400, 'and the node\'s moved toward it');
});
