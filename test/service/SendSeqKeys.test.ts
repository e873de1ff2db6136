/**
 * SEND_SEQ state is kept per (recipient, sender) pair under keys that cannot collide, whatever
 * bytes user ids hold (NUL is legal): a key made by joining the two ids with NUL gave the
 * pairs (recipient "a\0b", sender "c") and (recipient "a", sender "b\0c") the same key, so one
 * sender's sequence silenced the other's. Both sequences deliver, and each is still
 * deduplicated on its own. Real node (one router shard, so both recipients share its state),
 * real sockets.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { encodeSendSeqPacket } from '../../edge/protocol/V1Encoder.js';
import { seqPairKey } from '../../core/RouterShard.js';
import { userKey } from '../../core/UserId.js';

const clients: V1TestClient[] = [];
let t: TestNode | null = null;
after(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

const NUL = Uint8Array.of(0);
const aNulB = concat([utf8('a'), NUL, utf8('b')]);
const bNulC = concat([utf8('b'), NUL, utf8('c')]);
const latin1 = (b: Uint8Array): string => String.fromCharCode(...b);

async function user(n: TestNode, name: Uint8Array): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(name)).kind, 'login_ok');
  return c;
}

test('the pairs (to "a\\0b", from "c") and (to "a", from "b\\0c") collided under to + NUL + from, and have distinct keys now', () => {
  const joined = (to: Uint8Array, from: Uint8Array): string => `${latin1(to)}\u0000${latin1(from)}`;
  assert.equal(joined(aNulB, utf8('c')), joined(utf8('a'), bNulC));
  assert.notEqual(seqPairKey(userKey(aNulB), utf8('c')), seqPairKey(userKey(utf8('a')), bNulC));
});

test('"c" sending seq 5 to "a\\0b" does not silence "b\\0c" sending seqs 1..3 to "a": both sequences deliver, each deduplicated on its own', async () => {
  t = await startTestNode({ router_pool_size: 1 });
  const toAB = await user(t, aNulB);
  const toA = await user(t, utf8('a'));
  const c = await user(t, utf8('c'));
  const bc = await user(t, bNulC);

  c.raw(encodeSendSeqPacket(aNulB, 5n, utf8('c#5')));
  const first = await toAB.next<Reliable>(isReliable);
  assert.equal(text(first.msg), 'c#5');
  toAB.ack(first.msgId);

  bc.raw(concat([1n, 2n, 3n, 2n].map((seq) => encodeSendSeqPacket(utf8('a'), seq, utf8(`bc#${seq}`)))));
  c.raw(concat([5n, 6n].map((seq) => encodeSendSeqPacket(aNulB, seq, utf8(`c#${seq}`)))));
  assert.deepEqual(await toA.receiveAndAck(3), ['bc#1', 'bc#2', 'bc#3']);
  assert.deepEqual(await toAB.receiveAndAck(1), ['c#6']);
  // The repeats (bc#2, c#5) were dropped: nothing else arrives before a marker on each pair.
  bc.raw(encodeSendSeqPacket(utf8('a'), 4n, utf8('bc#4')));
  c.raw(encodeSendSeqPacket(aNulB, 7n, utf8('c#7')));
  assert.deepEqual(await toA.receiveAndAck(1), ['bc#4']);
  assert.deepEqual(await toAB.receiveAndAck(1), ['c#7']);
  await roundTrip(toA);
  await roundTrip(toAB);
  assert.deepEqual([toA.unconsumed(), toAB.unconsumed()], [[], []]);
});
