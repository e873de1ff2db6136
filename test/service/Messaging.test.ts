/**
 * The v1 service end to end over real sockets and real LMDB: login, live 1:1 delivery with
 * ACK, offline storage and delivery at login, one copy per connection, presence, and the newest login
 * replacing the older connection; over TCP and over WebSocket.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { until } from '../support/kernel.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';

let t: TestNode;
before(async () => {
  t = await startTestNode();
});
after(async () => {
  await t.stop();
});

const clients: V1TestClient[] = [];
async function tcp(): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(t.node.tcpPort);
  clients.push(c);
  return c;
}
async function ws(): Promise<V1TestClient> {
  const c = await V1TestClient.ws(t.node.httpPort);
  clients.push(c);
  return c;
}
after(() => {
  for (const c of clients) c.close();
});

type Reliable = Extract<ServerFrame, { kind: 'reliable_msg' }>;

const isReliable = (f: ServerFrame) => f.kind === 'reliable_msg';

test('login answers exactly the 9 LOGIN_OK bytes', async () => {
  const c = await tcp();
  const f = await c.login('login-user');
  assert.equal(f.kind, 'login_ok');
});

test('a message to an online user arrives with its exact bytes and a 16-byte id', async () => {
  const alice = await tcp();
  const bob = await tcp();
  await alice.login('alice1');
  await bob.login('bob1');
  const payload = new Uint8Array([0, 1, 2, 255, 0x68, 0x69]);
  alice.send('bob1', payload);
  const f = await bob.next<Reliable>(isReliable);
  assert.deepEqual([...f.msg], [...payload]);
  assert.equal(f.msgId.length, 16);
  bob.ack(f.msgId);
});

test('messages from one sender arrive in order, and WebSocket and TCP clients interoperate', async () => {
  const alice = await ws();
  const bob = await tcp();
  await alice.login('alice2');
  await bob.login('bob2');
  for (let i = 0; i < 200; i++) alice.send('bob2', `m${i}`);
  const got = await bob.receiveAndAck(200);
  assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `m${i}`));
});

test('a message to an offline user is stored and delivered at login, then gone after ACK', async () => {
  const alice = await tcp();
  await alice.login('alice3');
  alice.send('carol3', 'while you were away');
  alice.send('carol3', 'second');
  // GET_STATUS is answered after the sends are routed (same connection, in order).
  await alice.raw(new Uint8Array([0x05, 0x00, 0x06, ...utf8('carol3')]));
  await alice.next((f) => f.kind === 'status');
  const carol = await tcp();
  await carol.login('carol3');
  assert.deepEqual(await carol.receiveAndAck(2), ['while you were away', 'second']);
  // Let the ACKs land, then a second login gets nothing more.
  carol.raw(new Uint8Array([0x05, 0x00, 0x01, 0x78]));
  await carol.next((f) => f.kind === 'status');
  carol.close();
  const again = await tcp();
  await again.login('carol3');
  again.raw(new Uint8Array([0x05, 0x00, 0x01, 0x78]));
  await again.next((f) => f.kind === 'status');
  await assert.rejects(again.next(isReliable, 400));
});

test('a client that reads for 15 s without ACKing sees each message once, in order, and all of them again once at the next login', async () => {
  const alice = await tcp();
  const bob = await tcp();
  await alice.login('alice4');
  await bob.login('bob4');
  const sent = Array.from({ length: 20 }, (_, i) => `unacked ${i}`);
  for (const m of sent) alice.send('bob4', m);
  await until(() => bob.frames.filter(isReliable).length >= 20, 5000, 'the first 20 deliveries');
  // Reading on, never acknowledging, for longer than any resend interval the server ever used.
  await new Promise((r) => setTimeout(r, 15_000));
  const firstConn = bob.frames.filter(isReliable) as Reliable[];
  assert.deepEqual(firstConn.map((f) => text(f.msg)), sent, 'each message exactly once, in order, on one connection');
  bob.close();

  const bob2 = await tcp();
  await bob2.login('bob4');
  await until(() => bob2.frames.filter(isReliable).length >= 20, 5000, 'the 20 again at the next login');
  const again = bob2.frames.filter(isReliable) as Reliable[];
  assert.deepEqual(again.map((f) => text(f.msg)), sent);
  assert.deepEqual(again.map((f) => [...f.msgId]), firstConn.map((f) => [...f.msgId]));
  for (const f of again) bob2.ack(f.msgId);
  // A message sent now is delivered live only after the stored ones: seeing it means the
  // stored inbox was read to its end.
  alice.send('bob4', 'after the acks');
  await bob2.next<Reliable>((f) => isReliable(f) && text((f as Reliable).msg) === 'after the acks');
  bob2.close();

  const bob3 = await tcp();
  await bob3.login('bob4');
  alice.send('bob4', 'barrier');
  const first = await bob3.next<Reliable>(isReliable);
  assert.equal(text(first.msg), 'after the acks', 'acknowledged messages never come back');
  bob3.ack(first.msgId);
  const second = await bob3.next<Reliable>(isReliable);
  assert.equal(text(second.msg), 'barrier');
  bob3.ack(second.msgId);
});

test('an unacknowledged delivery comes back at the next login', async () => {
  const alice = await tcp();
  const bob = await tcp();
  await alice.login('alice5');
  await bob.login('bob5');
  alice.send('bob5', 'not acked');
  const f = await bob.next<Reliable>(isReliable);
  bob.close();
  const bob2 = await tcp();
  await bob2.login('bob5');
  const again = await bob2.next<Reliable>(isReliable);
  assert.deepEqual([...again.msgId], [...f.msgId]);
  assert.equal(text(again.msg), 'not acked');
  bob2.ack(again.msgId);
});

test('GET_STATUS shows online after login and offline with last-seen after disconnect', async () => {
  const watcher = await tcp();
  const dave = await tcp();
  await dave.login('dave6');
  watcher.raw(new Uint8Array([0x05, 0x00, 0x05, ...utf8('dave6')]));
  const on = await watcher.next<Extract<ServerFrame, { kind: 'status' }>>((f) => f.kind === 'status');
  assert.equal(on.online, true);
  assert.equal(on.lastSeen, 0n);
  dave.close();
  const deadline = Date.now() + 1000;
  for (;;) {
    watcher.raw(new Uint8Array([0x05, 0x00, 0x05, ...utf8('dave6')]));
    const s = await watcher.next<Extract<ServerFrame, { kind: 'status' }>>((f) => f.kind === 'status');
    if (!s.online) {
      assert.ok(s.lastSeen > 0n);
      break;
    }
    assert.ok(Date.now() < deadline, 'still online 1 s after disconnect');
  }
});

test('a second login of the same user closes the older connection and takes new deliveries', async () => {
  const alice = await tcp();
  await alice.login('alice7');
  const old = await tcp();
  await old.login('eve7');
  const fresh = await tcp();
  await fresh.login('eve7');
  await old.closedByServer();
  alice.send('eve7', 'to the newest');
  const f = await fresh.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'to the newest');
  fresh.ack(f.msgId);
});

test('a packet before login is refused with not_logged_in and GET_STATUS works without login', async () => {
  const c = await tcp();
  c.send('x', 'y');
  const e = await c.next<Extract<ServerFrame, { kind: 'error' }>>((f) => f.kind === 'error');
  assert.equal(e.reason, 'not_logged_in');
  c.raw(new Uint8Array([0x05, 0x00, 0x01, 0x7a]));
  const s = await c.next((f) => f.kind === 'status');
  assert.equal(s.kind, 'status');
});

test('typing is relayed to an online target as a bare TYPING frame', async () => {
  const a = await tcp();
  const b = await tcp();
  await a.login('alice8');
  await b.login('bob8');
  a.raw(new Uint8Array([0x70, 0x00, 0x04, ...utf8('bob8')]));
  const f = await b.next<Extract<ServerFrame, { kind: 'typing' }>>((x) => x.kind === 'typing');
  assert.equal(text(f.sender), 'alice8');
  assert.equal(f.typing, true);
});

test('a read receipt reaches an online sender at once, and an offline one at its next login', async () => {
  const reader = await tcp();
  await reader.login('reader9');
  const online = await tcp();
  await online.login('sender9');
  const receipt = (to: string) => new Uint8Array([0x74, 0x00, 0x02, 0xab, 0xcd, 0x00, to.length, ...utf8(to)]);
  reader.raw(receipt('sender9'));
  const r1 = await online.next<Extract<ServerFrame, { kind: 'read_receipt_relay' }>>((x) => x.kind === 'read_receipt_relay');
  assert.deepEqual([...r1.msgId], [0xab, 0xcd]);
  assert.equal(text(r1.reader), 'reader9');
  reader.raw(receipt('away9'));
  reader.raw(new Uint8Array([0x05, 0x00, 0x01, 0x7a]));
  await reader.next((x) => x.kind === 'status');
  const later = await tcp();
  await later.login('away9');
  const r2 = await later.next<Extract<ServerFrame, { kind: 'read_receipt_relay' }>>((x) => x.kind === 'read_receipt_relay');
  assert.equal(text(r2.reader), 'reader9');
});
