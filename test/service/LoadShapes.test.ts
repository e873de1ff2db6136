/**
 * Traffic shapes that stress framing, ordering and acknowledgement rather than raw volume, on a
 * real node (real sockets, real LMDB): big single-write bursts, identical payloads in the same
 * millisecond, ACKs and SENDs coalesced in one segment, deep pipelining, several packets per WebSocket frame.
 */
import { test } from 'node:test';
import { sharedNodeClients } from '../support/serviceFixture.js';
import assert from 'node:assert/strict';
import { startTestNode } from '../support/irisNode.js';
import { text, utf8 } from '../support/V1TestClient.js';
import { ClientSet, compareBytes, concat, drainToMarker, hexId, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { encodeAckPacket, encodeGetStatusPacket, encodeSendPacket } from '../../edge/protocol/V1Encoder.js';

// Default retransmit_ms (5 s): within these tests a repeated delivery means a lost ACK, not a slow one.
const { clients } = sharedNodeClients();

const sends = (to: string, prefix: string, from: number, n: number): Uint8Array =>
  concat(Array.from({ length: n }, (_, i) => encodeSendPacket(utf8(to), utf8(`${prefix}${from + i}`))));
const seq = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Logs `user` in again on a fresh connection and returns what it gets before a marker: what the server still holds. */
async function heldFor(user: string, transport: 'tcp' | 'ws' = 'tcp'): Promise<string[]> {
  const again = await clients.user(user, transport);
  const marker = await clients.user(`${user}-marker-sender`);
  marker.send(user, 'marker');
  const held = await drainToMarker(again, 'marker');
  again.close();
  marker.close();
  return held.map((f) => text(f.msg));
}

test('one write of 1000 SENDs (a full default rate burst) delivers all 1000, once each, in order', async () => {
  const a = await clients.user('burst-a');
  const b = await clients.user('burst-b');
  a.raw(sends('burst-b', 'm', 0, 1000));
  assert.deepEqual(await b.receiveAndAck(1000, 15_000), seq('m', 1000));
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), [], 'the sender was refused something');
  b.close();
  assert.deepEqual(await heldFor('burst-b'), []);
});

test('three senders each writing 1000 SENDs in one write to one user: all 3000 arrive once, in order per sender', async () => {
  const senders = await Promise.all([0, 1, 2].map((i) => clients.user(`fan-s${i}`)));
  const r = await clients.user('fan-r');
  senders.forEach((s, i) => s.raw(sends('fan-r', `s${i}-`, 0, 1000)));
  const got = await r.receiveAndAck(3000, 20_000);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(
      got.filter((m) => m.startsWith(`s${i}-`)),
      seq(`s${i}-`, 1000),
      `sender ${i}`,
    );
  }
  r.close();
  assert.deepEqual(await heldFor('fan-r'), []);
});

test('identical payloads sent to one user in the same millisecond are distinct messages with distinct ids, increasing in arrival order', async () => {
  const senders = await Promise.all(['same-a', 'same-b', 'same-c'].map((u) => clients.user(u)));
  const r = await clients.user('same-r');
  const one = encodeSendPacket(utf8('same-r'), utf8('same'));
  const counts = [300, 100, 100];
  senders.forEach((s, i) => s.raw(concat(Array.from({ length: counts[i]! }, () => one))));
  const frames: Reliable[] = [];
  for (let i = 0; i < 500; i++) {
    const f = await r.next<Reliable>(isReliable);
    frames.push(f);
    r.ack(f.msgId);
  }
  assert.ok(frames.every((f) => text(f.msg) === 'same'));
  assert.equal(new Set(frames.map((f) => hexId(f.msgId))).size, 500, 'ids are not distinct');
  for (let i = 1; i < frames.length; i++) assert.ok(compareBytes(frames[i - 1]!.msgId, frames[i]!.msgId) < 0, `id ${i} does not sort after id ${i - 1}`);
  r.close();
  assert.deepEqual(await heldFor('same-r'), [], 'an acknowledged copy came back');
});

test('ACKs and SENDs coalesced in one TCP segment are each honoured: replies arrive in order and no acknowledged message comes back', async () => {
  const alice = await clients.user('co-alice');
  const bob = await clients.user('co-bob');
  alice.raw(sends('co-bob', 'q', 0, 60));
  const got: Reliable[] = [];
  for (let i = 0; i < 60; i++) got.push(await bob.next<Reliable>(isReliable));
  assert.deepEqual(
    got.map((f) => text(f.msg)),
    seq('q', 60),
  );
  // ACK ACK SEND ACK ACK SEND …, a duplicate ACK, an ACK of an id never issued, then GET_STATUS: one write.
  const parts: Uint8Array[] = [];
  got.forEach((f, i) => {
    parts.push(encodeAckPacket(f.msgId));
    if (i % 2 === 1) parts.push(encodeSendPacket(utf8('co-alice'), utf8(`r${i}`)));
  });
  parts.push(encodeAckPacket(got[0]!.msgId), encodeAckPacket(new Uint8Array(16).fill(0xee)));
  const probe = utf8('co-probe');
  parts.push(encodeGetStatusPacket(probe));
  bob.raw(concat(parts));
  await bob.next((f) => f.kind === 'status');
  assert.deepEqual(await alice.receiveAndAck(30), Array.from({ length: 30 }, (_, k) => `r${2 * k + 1}`));
  assert.deepEqual(bob.unconsumed(), []);
  bob.close();
  assert.deepEqual(await heldFor('co-bob'), []);
});

test('pipelined: four users each keep hundreds of messages in flight to the next while acking what they receive; every message arrives once, in order, and none comes back', async () => {
  const N = 600;
  const CHUNK = 40;
  const users = ['pipe-0', 'pipe-1', 'pipe-2', 'pipe-3'];
  const cs = await Promise.all(users.map((u) => clients.user(u)));
  const send = async (i: number): Promise<void> => {
    const to = users[(i + 1) % users.length]!;
    for (let from = 0; from < N; from += CHUNK) {
      cs[i]!.raw(sends(to, `${users[i]}:`, from, CHUNK));
      await new Promise((r) => setImmediate(r));
    }
  };
  const [, , , , ...received] = await Promise.all([
    ...cs.map((_, i) => send(i)),
    ...cs.map((c) => c.receiveAndAck(N, 20_000)),
  ]);
  received.forEach((got, i) => {
    const from = users[(i + users.length - 1) % users.length]!;
    assert.deepEqual(got, seq(`${from}:`, N), `${users[i]} from ${from}`);
  });
  for (const c of cs) await roundTrip(c);
  for (const c of cs) c.close();
  for (const u of users) assert.deepEqual(await heldFor(u), [], `${u}: acknowledged messages delivered again at the next login`);
});

test('over WebSocket, frames carrying several whole packets each (SENDs; ACKs with SENDs and a GET_STATUS) are all honoured', async () => {
  const wa = await clients.user('wsf-a', 'ws');
  const wb = await clients.user('wsf-b', 'ws');
  for (let f = 0; f < 50; f++) wa.raw(sends('wsf-b', 'w', f * 10, 10));
  const got: Reliable[] = [];
  for (let i = 0; i < 500; i++) got.push(await wb.next<Reliable>(isReliable, 10_000));
  assert.deepEqual(
    got.map((f) => text(f.msg)),
    seq('w', 500),
  );
  for (let f = 0; f < 50; f++) {
    const parts = got.slice(f * 10, f * 10 + 10).map((x) => encodeAckPacket(x.msgId));
    parts.splice(5, 0, encodeSendPacket(utf8('wsf-a'), utf8(`back${f}`)));
    if (f === 49) parts.push(encodeGetStatusPacket(utf8('wsf-a')));
    wb.raw(concat(parts));
  }
  const st = await wb.next((x) => x.kind === 'status');
  assert.deepEqual(st.kind === 'status' && st.online, true);
  assert.deepEqual(await wa.receiveAndAck(50), seq('back', 50));
  assert.deepEqual(wb.unconsumed(), []);
  wb.close();
  assert.deepEqual(await heldFor('wsf-b', 'ws'), []);
});

test('a reply written before the previous delivery is acknowledged still arrives: interleaved request/response over one connection pair', async () => {
  const a = await clients.user('pp-a');
  const b = await clients.user('pp-b');
  // 200 rounds of ping/pong where each side answers first and acknowledges after, in one write.
  a.send('pp-b', 'ping0');
  for (let i = 0; i < 200; i++) {
    const p = await b.next<Reliable>(isReliable);
    assert.equal(text(p.msg), `ping${i}`);
    b.raw(concat([encodeSendPacket(utf8('pp-a'), utf8(`pong${i}`)), encodeAckPacket(p.msgId)]));
    const q = await a.next<Reliable>(isReliable);
    assert.equal(text(q.msg), `pong${i}`);
    a.raw(concat(i < 199 ? [encodeSendPacket(utf8('pp-b'), utf8(`ping${i + 1}`)), encodeAckPacket(q.msgId)] : [encodeAckPacket(q.msgId)]));
  }
  await roundTrip(a);
  await roundTrip(b);
  a.close();
  b.close();
  assert.deepEqual(await heldFor('pp-a'), []);
  assert.deepEqual(await heldFor('pp-b'), []);
});

for (const transport of ['tcp', 'ws'] as const) {
  test(`a recipient that stops reading for a while is not sent the same message over and over: retransmission waits for the socket to drain (${transport})`, () => stalledRecipient(transport));
}

async function stalledRecipient(transport: 'tcp' | 'ws'): Promise<void> {
  // Its own node with a short retransmit timeout, so that the stall spans about ten timeouts.
  const RETRANSMIT_MS = 100;
  const STALL_MS = 1000;
  const node = await startTestNode({ retransmit_ms: RETRANSMIT_MS });
  const own = new ClientSet(
    () => node.node.tcpPort,
    () => node.node.httpPort,
  );
  try {
    const alice = await own.user('stall-a');
    const bob = await own.user('stall-b', transport);
    bob.setReading(false);
    // 80 × 64 KB: more than loopback socket buffers hold, so the server sees backpressure.
    const N = 80;
    const body = (i: number): Uint8Array => new Uint8Array(64_000).fill(i);
    alice.raw(concat(Array.from({ length: N }, (_, i) => encodeSendPacket(utf8('stall-b'), body(i)))));
    await roundTrip(alice);
    await new Promise((r) => setTimeout(r, STALL_MS)); // the stall itself (the scenario, not a synchronisation)
    bob.setReading(true);
    const copies = new Map<string, number>();
    const order: number[] = [];
    for (let i = 0; copies.size < N && i < 100 * N; i++) {
      const f = await bob.next<Reliable>(isReliable, 10_000);
      const k = hexId(f.msgId);
      if (!copies.has(k)) order.push(f.msg[0]!);
      copies.set(k, (copies.get(k) ?? 0) + 1);
      bob.ack(f.msgId);
    }
    alice.send('stall-b', 'marker');
    for (let i = 0; i < 100 * N; i++) {
      const f = await bob.next<Reliable>(isReliable, 10_000);
      bob.ack(f.msgId);
      if (text(f.msg) === 'marker') break;
      const k = hexId(f.msgId);
      copies.set(k, (copies.get(k) ?? 0) + 1);
    }
    assert.deepEqual(order, Array.from({ length: N }, (_, i) => i), 'every message once, in order');
    const most = Math.max(...copies.values());
    const total = [...copies.values()].reduce((a, b) => a + b, 0);
    assert.ok(
      most <= 3,
      `BUG (edge/Connection.ts, retransmit): a client that stopped reading for ${STALL_MS} ms got one message ${most} times ` +
        `(${total} frames for ${N} messages): unacknowledged frames are re-queued every retransmit_ms even while earlier ` +
        'copies are still unsent, so a stalled client piles up copies without bound (and a WebSocket one hits the backpressure limit and is closed)',
    );
  } finally {
    own.closeAll();
    await node.stop();
  }
}
