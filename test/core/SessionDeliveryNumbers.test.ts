/**
 * A session following a shard on another node (core/SessionActor.ts with `follow`) counts the
 * shard's numbered deliveries: the next number is passed on; a number skipped (a delivery lost
 * on the way) or a `delivered` count above the last number seen tells the connection to read
 * the inbox again (`gap`), and the delivery that showed the loss is not passed on (it comes
 * with the page, after the lost one). A session whose shard does not number (a single node,
 * or a shard on the session's own node) passes deliveries on as they come.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DirectMessage } from '../../core/Delivery.js';
import type { RouterInboxRead, ShardToSession } from '../../core/RouterShard.js';
import { sessionActor, type SessionFetch } from '../../core/SessionActor.js';
import { userKey } from '../../core/UserId.js';
import type { Pid } from '../../runtime/Pid.js';
import { newScheduler, spawnProbe, type Probe } from '../support/kernel.js';

const utf8 = new TextEncoder();
const ALICE = userKey(utf8.encode('alice'));
const rec: DirectMessage = { k: 'direct', from: utf8.encode('bob'), body: utf8.encode('hi'), format: 'opaque' };
const id = (i: number): Uint8Array => {
  const b = new Uint8Array(16);
  b[15] = i;
  return b;
};
const is = (t: string) => (m: unknown) => (m as { t?: string }).t === t;

/** A session registered with `shard` (a probe playing the router shard), live after an empty first page. */
async function liveSession(numbers: boolean): Promise<{ session: Pid; shard: Probe; conn: Probe; send(m: ShardToSession): void }> {
  const s = newScheduler();
  const shard = spawnProbe(s);
  const conn = spawnProbe(s);
  const session = s.spawn(
    sessionActor({ user: ALICE, connection: conn.pid, shard: shard.pid, inbox: null, follow: { shardOf: () => shard.pid, retryMs: 10_000, readTimeoutMs: 10_000 }, loginAtMs: 1, pageMessages: 10, pageBytes: 1 << 16, noticeLimit: 10 }),
  );
  const send = (m: ShardToSession): void => s.send(session, m, null);
  await shard.next(is('register'));
  send(numbers ? { t: 'registered', shard: shard.pid, n: 0 } : { t: 'registered', shard: shard.pid });
  s.send(session, { t: 'fetch', afterId: null } satisfies SessionFetch, null);
  const read = await shard.next<RouterInboxRead>(is('inbox_read'));
  s.send(session, { t: 'inbox_read_reply', ref: read.ref, items: [], more: false, notices: [] }, null);
  await conn.next(is('page'));
  return { session, shard, conn, send };
}

test('numbered deliveries in order are passed on to the connection', async () => {
  const { conn, send } = await liveSession(true);
  for (let n = 1; n <= 3; n++) send({ t: 'deliver', id: id(n), rec, bytes: 2, n });
  send({ t: 'delivered', n: 3 });
  for (let n = 1; n <= 3; n++) assert.deepEqual((await conn.next<{ id: Uint8Array }>(is('deliver'))).id, id(n));
  await conn.nothing(is('gap'), 50);
});

test('a number skipped is a gap: the connection reads again, and the delivery that showed it is not passed on', async () => {
  const { conn, send } = await liveSession(true);
  send({ t: 'deliver', id: id(1), rec, bytes: 2, n: 1 });
  send({ t: 'deliver', id: id(3), rec, bytes: 2, n: 3 });
  send({ t: 'deliver', id: id(4), rec, bytes: 2, n: 4 });
  assert.deepEqual((await conn.next<{ id: Uint8Array }>(is('deliver'))).id, id(1));
  await conn.next(is('gap'));
  // The count goes on from the number that showed the loss.
  assert.deepEqual((await conn.next<{ id: Uint8Array }>(is('deliver'))).id, id(4));
  await conn.nothing(is('gap'), 50);
});

test('a count above the last number seen (the last delivery was lost) is a gap', async () => {
  const { conn, send } = await liveSession(true);
  send({ t: 'deliver', id: id(1), rec, bytes: 2, n: 1 });
  send({ t: 'delivered', n: 2 });
  await conn.next(is('deliver'));
  await conn.next(is('gap'));
  send({ t: 'delivered', n: 2 });
  await conn.nothing(is('gap'), 50);
});

test('deliveries from a shard that does not number them are passed on as they come', async () => {
  const { conn, send } = await liveSession(false);
  send({ t: 'deliver', id: id(1), rec, bytes: 2 });
  send({ t: 'deliver', id: id(2), rec, bytes: 2 });
  await conn.next(is('deliver'));
  await conn.next(is('deliver'));
  await conn.nothing(is('gap'), 50);
});
