/**
 * A connection writes at most its delivery window of unacknowledged messages
 * (delivery_window_messages, delivery_window_bytes); the rest wait in the durable inbox. A
 * client that never ACKs gets exactly the window on one connection, and the node does not
 * keep re-reading the inbox for it; each ACK makes room and the next messages follow, in
 * order, each once; nothing is lost. Real node in this process, real sockets and LMDB.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { metric } from '../support/nodeHttp.js';
import { nodeIdle } from '../support/nodeIdle.js';
import { OfflineMailbox } from '../../core/OfflineMailbox.js';
import { encodeSendPacket } from '../../edge/protocol/V1Encoder.js';

const nodes: TestNode[] = [];
const clients: V1TestClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.stop();
});

/** Reads of stored inboxes (pages), counted across the node. */
let inboxReads = 0;
const list = OfflineMailbox.prototype.list;
OfflineMailbox.prototype.list = function (this: OfflineMailbox, ...args: Parameters<typeof list>) {
  inboxReads++;
  return list.apply(this, args);
};

async function node(overrides: Record<string, unknown>): Promise<TestNode> {
  const n = await startTestNode(overrides);
  nodes.push(n);
  return n;
}

async function user(n: TestNode, name: string): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(name)).kind, 'login_ok');
  return c;
}

/** Wait until `stored` messages are durable, so every live delivery has been handed to its session. */
async function storedAtLeast(n: TestNode, stored: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await metric(n.node.httpPort, 'iris_messages_stored_total')) < stored) {
    assert.ok(Date.now() < deadline, `${stored} messages were not stored within 10 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The next `count` RELIABLE_MSG frames on `c`, and no more: once they are in, the node goes
 * idle and a round trip on the connection brings no further delivery.
 */
async function receiveExactly(n: TestNode, c: V1TestClient, count: number): Promise<Reliable[]> {
  const got: Reliable[] = [];
  for (let i = 0; i < count; i++) got.push(await c.next<Reliable>(isReliable, 10_000));
  await nodeIdle(n);
  await roundTrip(c);
  assert.deepEqual(
    c.unconsumed().filter(isReliable).length,
    0,
    `more than ${count} deliveries were written`,
  );
  return got;
}

test('with delivery_window_messages 5, a client that never ACKs gets exactly 5 of 20 messages; each round of ACKs brings the next 5, in order, each once', async () => {
  const n = await node({ delivery_window_messages: 5 });
  const r = await user(n, 'dw-recv');
  const s = await user(n, 'dw-send');
  for (let i = 0; i < 20; i++) s.send('dw-recv', `m${i}`);
  await storedAtLeast(n, 20);
  for (let round = 0; round < 4; round++) {
    const frames = await receiveExactly(n, r, 5);
    assert.deepEqual(
      frames.map((f) => text(f.msg)),
      Array.from({ length: 5 }, (_, i) => `m${round * 5 + i}`),
      `round ${round}: exactly the window, in order`,
    );
    for (const f of frames) r.ack(f.msgId);
  }
  await receiveExactly(n, r, 0);
  // Every message was acknowledged: a new login finds the inbox empty.
  r.close();
  const again = await user(n, 'dw-recv');
  s.send('dw-recv', 'marker');
  const f = await again.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'marker');
  again.ack(f.msgId);
});

test('with delivery_window_bytes 262,208, a client that never ACKs gets 4 of 10 messages of 60,000 bytes; an ACK makes room for exactly one more, and meanwhile the inbox is not read again and again', async () => {
  const n = await node({ delivery_window_bytes: 262_208 });
  const r = await user(n, 'dwb-recv');
  const s = await user(n, 'dwb-send');
  const body = (i: number): Uint8Array => new Uint8Array(60_000).fill(i);
  for (let i = 0; i < 10; i++) s.raw(encodeSendPacket(utf8('dwb-recv'), body(i)));
  await storedAtLeast(n, 10);
  const first = await receiveExactly(n, r, 4);
  assert.deepEqual(
    first.map((f) => f.msg[0]),
    [0, 1, 2, 3],
  );
  r.ack(first[0]!.msgId);
  const second = await receiveExactly(n, r, 1);
  assert.deepEqual(
    second.map((f) => f.msg[0]),
    [4],
  );
  // The window is full again: an idle node reads nothing more until an ACK makes room.
  const reads = inboxReads;
  await roundTrip(r);
  await nodeIdle(n, 5000);
  assert.equal(inboxReads - reads, 0, 'the inbox was read again while the window stayed full');
  // ACK everything as it comes: the rest follows in order, each once.
  for (const f of [...first.slice(1), ...second]) r.ack(f.msgId);
  const rest: number[] = [];
  for (let i = 5; i < 10; i++) {
    const f = await r.next<Reliable>(isReliable);
    assert.equal(f.msg.length, 60_000);
    rest.push(f.msg[0]!);
    r.ack(f.msgId);
  }
  assert.deepEqual(rest, [5, 6, 7, 8, 9]);
  await receiveExactly(n, r, 0);
});
