/**
 * ReplyQueue: answers leave in request order whatever order they arrive in, an empty answer
 * holds its place, and a request whose service never answers is answered by `expire` in its
 * turn (its late answer is then ignored), so later answers are never held back for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyQueue } from '../../edge/ReplyQueue.js';

const text = (s: string) => new TextEncoder().encode(s);
const written = (q: { out: Uint8Array[] }) => q.out.map((b) => new TextDecoder().decode(b));

function queue(maxOpen = 64) {
  const out: Uint8Array[] = [];
  return { out, q: new ReplyQueue((a) => out.push(a), maxOpen) };
}

test('answers leave in request order whatever order they arrive in, and an empty answer holds its place', () => {
  const r = queue();
  const a = r.q.open(0);
  const b = r.q.open(0);
  r.q.now(text('c'));
  r.q.settle(b, text('b'));
  assert.deepEqual(written(r), []);
  r.q.settle(a, null);
  assert.deepEqual(written(r), ['b', 'c']);
  assert.equal(r.q.pending, 0);
});

test('a request its service never answers is answered by expire in its turn, and its late answer is ignored', () => {
  const r = queue();
  const lost = r.q.open(100);
  const later = r.q.open(200);
  r.q.settle(later, text('later'));
  assert.equal(r.q.oldestWaiting(), 100);
  assert.equal(r.q.expire(150, text('timeout')), 1);
  assert.deepEqual(written(r), ['timeout', 'later']);
  r.q.settle(lost, text('too late'));
  assert.deepEqual(written(r), ['timeout', 'later']);
  assert.equal(r.q.oldestWaiting(), null);
});

test('expire answers only requests opened before the deadline, oldest first', () => {
  const r = queue();
  r.q.open(10);
  r.q.open(20);
  const young = r.q.open(30);
  assert.equal(r.q.expire(25, text('t')), 2);
  assert.deepEqual(written(r), ['t', 't']);
  assert.equal(r.q.oldestWaiting(), 30);
  r.q.settle(young, text('young'));
  assert.deepEqual(written(r), ['t', 't', 'young']);
});

test('full says stop reading once maxOpen requests await answers', () => {
  const r = queue(2);
  const a = r.q.open(0);
  assert.equal(r.q.full, false);
  r.q.open(0);
  assert.equal(r.q.full, true);
  r.q.settle(a, null);
  assert.equal(r.q.full, false);
});
