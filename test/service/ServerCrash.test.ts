/**
 * Crash durability of the whole server: `iris start` runs as a child process and is SIGKILLed at
 * several points; restarted on the same data directory, it delivers every message it had accepted
 * for storage, exactly once after ACK, and never brings back a message acknowledged before the kill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIrisChild, type IrisChild } from '../support/irisChild.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat, drainToMarker, hexId, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { encodeSendPacket } from '../../edge/protocol/V1Encoder.js';

// What "accepted for storage" can honestly mean for v1. The protocol has no sender ACK, so a v1
// client is never told that its message is durable; the server still promises (protocol §5, M5)
// to store every message durably. The test therefore establishes acceptance from the outside,
// by events, never by sleeping:
//  1. The write was issued: for an online recipient, its RELIABLE_MSG arrived (the shard appends
//     before it forwards); for an offline recipient, the sender's GET_STATUS round trip shows
//     the connection handed every earlier SEND to the router; for an ACK, a GET_STATUS round
//     trip on the acknowledging connection shows the ACK was applied.
//  2. The write is durable: a "probe" message to a fresh user is sent after those, then that
//     user logs in. A session reads the stored inbox only after the storage flush it starts has
//     completed (every write issued before it is fsync'd), so receiving the probe proves the
//     earlier writes are on disk. The node runs one router shard, so the probe's append is
//     ordered after every earlier append (one FIFO mailbox); with several shards no such order
//     exists between different recipients.
// Messages sent after the last such barrier are "in flight" at the kill: any of them may be lost,
// but what survives must be an in-order prefix with exact bytes and no duplicates.

const SETS = ['router_pool_size=1'];

interface Round {
  node: IrisChild;
  alice: V1TestClient;
  clients: V1TestClient[];
}

const payload = (tag: string, i: number): Uint8Array => concat([utf8(`${tag}${i}|`), Uint8Array.of(0, 0xff, i & 0xff)]);
const payloads = (tag: string, n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => payload(tag, i));
const hexes = (xs: readonly Uint8Array[]): string[] => xs.map(hexId);

async function startRound(dir: string): Promise<Round> {
  const node = await startIrisChild(dir, SETS);
  const r: Round = { node, alice: null as unknown as V1TestClient, clients: [] };
  try {
    r.alice = await login(r, 'alice');
  } catch (err) {
    await kill(r);
    throw err;
  }
  return r;
}

async function login(r: Round, user: string): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(r.node.tcpPort);
  r.clients.push(c);
  const f = await c.login(user);
  assert.equal(f.kind, 'login_ok', `login of ${user}`);
  return c;
}

let markers = 0;
/** Logs `user` in and returns every message the server still holds for it (not acknowledged). */
async function held(r: Round, user: string): Promise<{ c: V1TestClient; frames: Reliable[] }> {
  const c = await login(r, user);
  const marker = `marker-${++markers}`;
  r.alice.send(user, marker);
  return { c, frames: await drainToMarker(c, marker) };
}

let probes = 0;
/** Returns once every write issued before the call is durable (see the comment above). */
async function durabilityBarrier(r: Round): Promise<void> {
  const user = `probe-${++probes}`;
  r.alice.send(user, 'probe');
  await roundTrip(r.alice);
  const p = await login(r, user);
  const f = await p.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'probe');
  p.ack(f.msgId);
}

async function kill(r: Round): Promise<void> {
  for (const c of r.clients) c.close();
  await r.node.kill();
}

function assertNoErrorLogs(r: Round): void {
  const bad = r.node
    .output()
    .split('\n')
    .filter((l) => /"level":(50|60)/.test(l));
  assert.deepEqual(bad, [], 'the node logged errors');
}

function ackAll(c: V1TestClient, frames: readonly Reliable[]): void {
  for (const f of frames) c.ack(f.msgId);
}

/** Collects `n` RELIABLE_MSG frames with distinct ids (retransmissions skipped), without acknowledging. */
async function receiveDistinct(c: V1TestClient, n: number): Promise<Reliable[]> {
  const seen = new Set<string>();
  const out: Reliable[] = [];
  for (let i = 0; out.length < n && i < 10 * n; i++) {
    const f = await c.next<Reliable>(isReliable);
    if (seen.has(hexId(f.msgId))) continue;
    seen.add(hexId(f.msgId));
    out.push(f);
  }
  return out;
}

test('SIGKILL at several points: every accepted message is delivered after restart, exactly once after ACK, and acknowledged ones never come back', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-crash-'));
  const C = payloads('c', 30); // to carol, offline
  const B = payloads('b', 30); // to bob, online, never acknowledging before the kill
  const D = payloads('d', 30); // to dave, online, acknowledging at once
  const E = payloads('e', 320); // to erin, offline, a stream still being written at the kill
  const F = payloads('f', 200); // to frank, online, delivered live (first 100 acknowledged), not yet known durable at the kill
  let round: Round | null = null;
  try {
    // Round 1: messages accepted for storage (offline, online unacknowledged, acknowledged), then the kill.
    round = await startRound(dir);
    const bob = await login(round, 'bob');
    const dave = await login(round, 'dave');
    for (const p of C) round.alice.raw(encodeSendPacket(utf8('carol'), p));
    for (const p of B) round.alice.raw(encodeSendPacket(utf8('bob'), p));
    for (const p of D) round.alice.raw(encodeSendPacket(utf8('dave'), p));
    assert.deepEqual(hexes((await receiveDistinct(bob, 30)).map((f) => f.msg)), hexes(B));
    const dFrames = await receiveDistinct(dave, 30);
    assert.deepEqual(hexes(dFrames.map((f) => f.msg)), hexes(D));
    ackAll(dave, dFrames);
    await roundTrip(dave);
    await durabilityBarrier(round);
    assertNoErrorLogs(round);
    await kill(round);

    // Round 2: carol gets hers (not acknowledged), bob gets his and acknowledges, dave gets nothing;
    // then a stream to offline erin is killed while it is being written.
    round = await startRound(dir);
    const carol2 = await held(round, 'carol');
    assert.deepEqual(hexes(carol2.frames.map((f) => f.msg)), hexes(C), 'carol after the first kill');
    const bob2 = await held(round, 'bob');
    assert.deepEqual(hexes(bob2.frames.map((f) => f.msg)), hexes(B), 'bob (unacknowledged when killed)');
    ackAll(bob2.c, bob2.frames);
    await roundTrip(bob2.c);
    assert.deepEqual((await held(round, 'dave')).frames.map((f) => text(f.msg)), [], 'dave acknowledged before the kill');
    await durabilityBarrier(round);
    assertNoErrorLogs(round);
    // A steady stream in writes of 20, each after the previous one was handed to the router;
    // the kill lands right after the 16th write, while the latest writes are still in flight.
    for (let w = 0; w < 16; w++) {
      round.alice.raw(concat(E.slice(w * 20, w * 20 + 20).map((p) => encodeSendPacket(utf8('erin'), p))));
      if (w < 15) await roundTrip(round.alice);
    }
    await kill(round);

    // Round 3: carol gets hers again (never acknowledged) and acknowledges; bob nothing; erin a
    // prefix of the stream, acknowledging its first half; then the kill comes while frank's
    // live deliveries and his ACKs are being written.
    round = await startRound(dir);
    const carol3 = await held(round, 'carol');
    assert.deepEqual(hexes(carol3.frames.map((f) => f.msg)), hexes(C), 'carol, unacknowledged through a restart');
    ackAll(carol3.c, carol3.frames);
    await roundTrip(carol3.c);
    assert.deepEqual((await held(round, 'bob')).frames.map((f) => text(f.msg)), [], 'bob acknowledged before the kill');
    const erin3 = await held(round, 'erin');
    const k = erin3.frames.length;
    assert.deepEqual(hexes(erin3.frames.map((f) => f.msg)), hexes(E.slice(0, k)), 'what survives of a burst in flight is an exact in-order prefix');
    const half = Math.floor(k / 2);
    ackAll(erin3.c, erin3.frames.slice(0, half));
    await roundTrip(erin3.c);
    await durabilityBarrier(round);
    const frank = await login(round, 'frank');
    round.alice.raw(concat(F.map((p) => encodeSendPacket(utf8('frank'), p))));
    const fFrames = await receiveDistinct(frank, F.length);
    assert.deepEqual(hexes(fFrames.map((f) => f.msg)), hexes(F));
    ackAll(frank, fFrames.slice(0, 100));
    assertNoErrorLogs(round);
    await kill(round);

    // Round 4: everything acknowledged stays gone; erin gets exactly her unacknowledged half;
    // frank what survived of his live deliveries. Both acknowledge; then the kill.
    round = await startRound(dir);
    for (const u of ['carol', 'bob', 'dave']) assert.deepEqual((await held(round, u)).frames.map((f) => text(f.msg)), [], `${u}: third login`);
    const erin4 = await held(round, 'erin');
    assert.deepEqual(hexes(erin4.frames.map((f) => f.msg)), hexes(E.slice(half, k)), 'erin: exactly the unacknowledged part');
    ackAll(erin4.c, erin4.frames);
    await roundTrip(erin4.c);
    // Durability is a prefix of the issued writes (puts of F, then removals of its first 100):
    // what survives is one contiguous run F[from, to) with from ≤ 100.
    const frank4 = await held(round, 'frank');
    const fGot = hexes(frank4.frames.map((f) => f.msg));
    const from = fGot.length === 0 ? 0 : hexes(F).indexOf(fGot[0]!);
    const j = from + fGot.length;
    assert.ok(from >= 0 && from <= 100 && j <= F.length, `frank: survivors start at ${from}`);
    assert.deepEqual(fGot, hexes(F.slice(from, j)), 'frank: one contiguous in-order run');
    ackAll(frank4.c, frank4.frames);
    await roundTrip(frank4.c);
    await durabilityBarrier(round);
    assertNoErrorLogs(round);
    await kill(round);

    // Round 5: nothing comes back for anyone; the node then stops cleanly on SIGTERM.
    round = await startRound(dir);
    for (const u of ['carol', 'bob', 'dave', 'erin', 'frank']) assert.deepEqual((await held(round, u)).frames.map((f) => text(f.msg)), [], `${u}: after every ACK`);
    assertNoErrorLogs(round);
    for (const c of round.clients) c.close();
    assert.equal(await round.node.stop(), 0);
    round = null;
    // Recorded for the report: how much of each in-flight burst had become durable.
    console.log(`in flight at the kill: erin kept ${k} of ${E.length}; frank kept F[${from}, ${j}) of ${F.length}`);
  } finally {
    if (round !== null) await kill(round);
    rmSync(dir, { recursive: true, force: true });
  }
});
