/**
 * Legal input is never refused for arriving while the connection holds its reading: bytes that
 * come in while a budget is spent (shaping) or while answers are outstanding wait, in order,
 * and are decoded once reading resumes; they do not count against the input cap, which bounds
 * a packet being assembled. So a client sending 4 MB of messages back to back is slowed, not
 * disconnected, and one pipelining thousands of requests under the smallest input cap gets
 * every answer. Real node, real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceFixture } from '../support/serviceFixture.js';
import { utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, waitUntil, type Reliable } from '../support/serviceKit.js';
import { encodeFetchPrekeysPacket, encodeSendPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';

const { node, user } = serviceFixture();

test('500 messages of 8,000 bytes (4 MB) written at once against a budget of 50 then 1,000/s are shaped: all delivered in order, no ERROR, the connection open', async () => {
  const n = await node({ rate_limit_messages_burst: 50, rate_limit_messages_per_s: 1000 });
  const a = await user(n, 'hi-a');
  const b = await user(n, 'hi-b');
  const body = (i: number): Uint8Array => {
    const m = new Uint8Array(8000).fill(0x61);
    m[0] = i >>> 8;
    m[1] = i & 0xff;
    return m;
  };
  a.raw(concat(Array.from({ length: 500 }, (_, i) => encodeSendPacket(utf8('hi-b'), body(i)))));
  const order: number[] = [];
  for (let i = 0; i < 500; i++) {
    const f = await b.next<Reliable>(isReliable, 10_000).catch((e: Error) => {
      throw new Error(`message ${i}: ${e.message}; the sender got ${JSON.stringify(a.unconsumed())}, closed=${a.closed}`);
    });
    order.push((f.msg[0]! << 8) | f.msg[1]!);
    b.ack(f.msgId);
  }
  assert.deepEqual(
    order,
    Array.from({ length: 500 }, (_, i) => i),
  );
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), []);
  assert.equal(a.closed, false);
});

test('under the smallest input cap (4 KiB), 16,000 FETCH_PREKEYS pipelined in one 200 KB write (several socket reads) are all answered in order and the connection stays open', async () => {
  const n = await node({ max_input_buffer_bytes: 4096, rate_limit_prekey_fetches_burst: 100_000_000, rate_limit_prekey_fetches_per_s: 100_000_000 });
  const c = await user(n, 'hi-fetcher');
  const N = 16_000;
  // More than one socket read: the later reads arrive while 64 answers are outstanding.
  c.raw(concat(Array.from({ length: N }, (_, i) => encodeFetchPrekeysPacket(utf8(`hi-${i}`)))));
  const answers = (): ServerFrame[] => c.frames.filter((f) => f.kind !== 'login_ok');
  await waitUntil(`${N} answers`, () => answers().length >= N || c.closed, 20_000);
  const got = answers();
  assert.equal(got.length, N, `answers before the connection closed; the last: ${JSON.stringify(got.slice(-1))}`);
  got.forEach((f, i) => {
    assert.ok(f.kind === 'prekey_response' && f.map.get('status') === 'not_found' && f.map.get('user') === `hi-${i}`, `answer ${i}: ${JSON.stringify(f)}`);
  });
  assert.equal(c.closed, false);
});
