/**
 * Read receipts can neither flood a connection nor fill an inbox. READ_RECEIPT is shaped per
 * sender (rate_limit_receipts_*: read more slowly, every receipt relayed, in order). Receipts
 * for an offline user are stored apart from its messages, at most receipt_inbox_cap of them
 * (the rest dropped and counted in /metrics iris_receipts_dropped_total): 10,000 receipts
 * for an offline user leave its message inbox empty, a friend's message is still taken and
 * delivered at login, together with the first receipt_inbox_cap receipts. Real node, real
 * sockets, real LMDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceFixture } from '../support/serviceFixture.js';
import { text, utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { metric } from '../support/nodeHttp.js';
import { encodeReadReceiptPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { CORE_DEFAULTS } from '../../core/CoreSettings.js';
import { V1_MAX_RECEIPT_MSG_ID_BYTES } from '../../edge/protocol/v1Limits.js';

type Relay = Extract<ServerFrame, { kind: 'read_receipt_relay' }>;
const { node, user } = serviceFixture();

/** A message id of the longest legal size whose first bytes are the number `i`. */
function msgId(i: number): Uint8Array {
  const id = new Uint8Array(V1_MAX_RECEIPT_MSG_ID_BYTES).fill(0x2e);
  id.set(utf8(String(i).padStart(6, '0')));
  return id;
}

test(`10,000 receipts for an offline user do not fill its inbox: a friend's message is taken and delivered at login with the first ${CORE_DEFAULTS.receipt_inbox_cap} receipts; the rest are dropped and counted`, async () => {
  // The receipt budget lifted: this is about storage, not shaping.
  const n = await node({ rate_limit_receipts_burst: 100_000, rate_limit_receipts_per_s: 100_000 });
  const reader = await user(n, 'rl-reader');
  const N = 10_000;
  reader.raw(concat(Array.from({ length: N }, (_, i) => encodeReadReceiptPacket(msgId(i), utf8('rl-away')))));
  await roundTrip(reader, 20_000);
  assert.deepEqual(reader.unconsumed(), [], 'the reader is never refused');

  const friend = await user(n, 'rl-friend');
  friend.send('rl-away', 'still reaches you');
  await roundTrip(friend);

  const away = await user(n, 'rl-away');
  const cap = CORE_DEFAULTS.receipt_inbox_cap;
  const f = await away.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'still reaches you');
  away.ack(f.msgId);
  const receipts = away.unconsumed().filter((x) => x.kind === 'read_receipt_relay') as Relay[];
  assert.equal(receipts.length, cap, `receipts handed over at login (of ${N})`);
  assert.deepEqual(
    receipts.map((r) => text(r.msgId.subarray(0, 6))),
    Array.from({ length: cap }, (_, i) => String(i).padStart(6, '0')),
  );
  assert.ok(receipts.every((r) => text(r.reader) === 'rl-reader'));
  assert.equal(await metric(n.node.httpPort, 'iris_receipts_dropped_total'), N - cap);
  assert.deepEqual(
    friend.unconsumed().map((x) => x.kind),
    [],
    'the friend was not refused (no inbox_full)',
  );
});

test('READ_RECEIPT is shaped, never refused: 60 receipts against a budget of 10 then 100/s take at least 0.4 s and are all relayed in order', async () => {
  const n = await node({ rate_limit_receipts_burst: 10, rate_limit_receipts_per_s: 100 });
  const sender = await user(n, 'rs-sender');
  const reader = await user(n, 'rs-reader');
  const started = Date.now();
  reader.raw(concat(Array.from({ length: 60 }, (_, i) => encodeReadReceiptPacket(msgId(i), utf8('rs-sender')))));
  const got: string[] = [];
  for (let i = 0; i < 60; i++) got.push(text((await sender.next<Relay>((f) => f.kind === 'read_receipt_relay')).msgId.subarray(0, 6)));
  const elapsed = Date.now() - started;
  assert.deepEqual(
    got,
    Array.from({ length: 60 }, (_, i) => String(i).padStart(6, '0')),
  );
  assert.ok(elapsed >= 400, `60 receipts were relayed in ${elapsed} ms`);
  await roundTrip(reader);
  assert.deepEqual(reader.unconsumed(), [], 'no RATE_LIMITED, no ERROR');
});
