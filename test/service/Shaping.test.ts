/**
 * Message budgets shape, they never refuse: a client that sends faster than its budget is read
 * more slowly (the server stops reading its connection until the budget refills), so every
 * message of a burst arrives, in order, and the connection stays open; a BATCH_SEND costs one
 * token per contained message. Real node, real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceFixture } from '../support/serviceFixture.js';
import { utf8 } from '../support/V1TestClient.js';
import { encodeBatchSendPacket, encodeSendPacket } from '../../edge/protocol/V1Encoder.js';
import { EDGE_DEFAULTS } from '../../edge/EdgeSettings.js';

const { node, user } = serviceFixture();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test("at default settings one client's 3,000-message burst in one write arrives complete and in order, with no RATE_LIMITED and the connection open", async () => {
  const n = await node();
  const a = await user(n, 'burst-a');
  const b = await user(n, 'burst-b');
  const N = 3000;
  assert.ok(N > EDGE_DEFAULTS.rate_limit_messages_burst, 'the burst is larger than the budget');
  a.raw(concat(Array.from({ length: N }, (_, i) => encodeSendPacket(utf8('burst-b'), utf8(`m${i}`)))));
  // 1,000 at once, then 200/s: the rest takes about ten seconds.
  const got = await b.receiveAndAck(N, 20_000);
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => `m${i}`));
  assert.deepEqual(
    a.unconsumed().map((f) => f.kind),
    [],
    'the sender was never answered (no RATE_LIMITED, no ERROR)',
  );
  assert.equal(a.closed, false);
});

test('a BATCH_SEND is charged one token per contained message: a 1,000-item batch waits for a 10-message budget to refill 99 times', async () => {
  const n = await node({ rate_limit_messages_burst: 10, rate_limit_messages_per_s: 1000 });
  const a = await user(n, 'batch-a');
  const b = await user(n, 'batch-b');
  const items = Array.from({ length: 1000 }, (_, i) => utf8(`b${i}`));
  const started = Date.now();
  a.raw(encodeBatchSendPacket(utf8('batch-b'), items));
  a.raw(encodeSendPacket(utf8('batch-b'), utf8('after the batch')));
  const got = await b.receiveAndAck(1001, 20_000);
  const elapsed = Date.now() - started;
  assert.deepEqual(got, [...items.map((_, i) => `b${i}`), 'after the batch']);
  // 10 at once, then 991 more at 1,000/s: at least ~0.99 s (a batch charged as one packet passes at once).
  assert.ok(elapsed >= 900, `the batch and the send after it took ${elapsed} ms`);
  assert.deepEqual(
    a.unconsumed().map((f) => f.kind),
    [],
  );
});
