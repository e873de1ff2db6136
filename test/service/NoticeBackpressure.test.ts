/**
 * Typing and read-receipt notices cost nothing while their recipient does not read: a notice
 * for a logged-in user whose output is backed up is dropped, not queued, so a flooder aiming
 * several MB of TYPING and READ_RECEIPT packets at a client that never reads its socket leaves
 * the node's memory where it was, and the flooder's own connection keeps working. Typing is
 * also limited per sender (rate_limit_typing_*): notices beyond the budget are dropped and
 * counted. Real node in this process (its memory is this process's), real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { metric } from '../support/nodeHttp.js';
import { nodeIdle } from '../support/nodeIdle.js';
import { encodeReadReceiptPacket, encodeTypingPacket } from '../../edge/protocol/V1Encoder.js';
import { EDGE_DEFAULTS } from '../../edge/EdgeSettings.js';

const MiB = 1024 * 1024;
/**
 * Run `body` on a node of its own and stop it (and its clients) afterwards, so that what one
 * test left behind is never in the next one's memory figures.
 */
async function withNode(overrides: Record<string, unknown>, body: (n: TestNode, user: (name: string) => Promise<V1TestClient>) => Promise<void>): Promise<void> {
  const n = await startTestNode(overrides);
  const clients: V1TestClient[] = [];
  try {
    await body(n, async (name) => {
      const c = await V1TestClient.tcp(n.node.tcpPort);
      clients.push(c);
      assert.equal((await c.login(name)).kind, 'login_ok');
      return c;
    });
  } finally {
    for (const c of clients) c.close();
    await n.stop();
  }
}

/** Resident and JS-held memory of this process (the node's) after a full collection, in MB. */
function memoryMb(): { rss: number; held: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc !== undefined, 'run with --expose-gc');
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss / MiB, held: (m.heapUsed + m.external) / MiB };
}

test('at the default limits, 8 MB of TYPING (and a burst of READ_RECEIPT) aimed at a user who never reads grows the node by less than 60 MB, and the flooder keeps working', () =>
  withNode({}, async (n, user) => {
    const victim = await user('nb-victim');
    const flooder = await user('nb-flooder');
    const friend = await user('nb-friend');
    victim.setReading(false);
    const before = memoryMb();

    // The receipt budget's burst (shaped beyond it), then typing: best effort, its excess dropped.
    const receipt = encodeReadReceiptPacket(utf8('0123456789abcdef'), utf8('nb-victim'));
    flooder.raw(concat(Array.from({ length: EDGE_DEFAULTS.rate_limit_receipts_burst }, () => receipt)));
    const typing = encodeTypingPacket(utf8('nb-victim'), true);
    const chunk = concat(Array.from({ length: 8192 }, () => typing));
    let sent = 0;
    for (let i = 0; sent < 8 * MiB && i < 1000; i++) {
      flooder.raw(chunk);
      sent += chunk.length;
      // Every packet sent so far has been handled once the status round trip comes back.
      if (i % 8 === 7) await roundTrip(flooder, 30_000);
    }
    await roundTrip(flooder, 30_000);
    await nodeIdle(n);
    const afterFlood = memoryMb();
    const grew = { rss: afterFlood.rss - before.rss, held: afterFlood.held - before.held };
    assert.ok(grew.rss < 60 && grew.held < 60, `the node grew by ${grew.rss.toFixed(1)} MB RSS, ${grew.held.toFixed(1)} MB heap+external while ${(sent / MiB).toFixed(1)} MB of TYPING were aimed at a client that does not read`);
    await assertStillWorking(flooder, friend, 'nb-friend', victim);
  }));

test('with the typing and receipt budgets lifted, notices for a user who never reads are dropped, not queued: 4 MB of them leave the heap and buffers within 10 MB of where they were', () =>
  withNode({ rate_limit_typing_burst: 100_000_000, rate_limit_typing_per_s: 100_000_000, rate_limit_receipts_burst: 100_000_000, rate_limit_receipts_per_s: 100_000_000 }, async (n, user) => {
    const victim = await user('nq-victim');
    const flooder = await user('nq-flooder');
    const friend = await user('nq-friend');
    victim.setReading(false);
    const before = memoryMb();
    const typing = encodeTypingPacket(utf8('nq-victim'), true);
    const receipt = encodeReadReceiptPacket(utf8('0123456789abcdef'), utf8('nq-victim'));
    const chunk = concat([...Array.from({ length: 4096 }, () => typing), ...Array.from({ length: 1024 }, () => receipt)]);
    let sent = 0;
    for (let i = 0; sent < 4 * MiB && i < 1000; i++) {
      // Paced: each chunk is handled through to the victim's connection before the next is sent.
      flooder.raw(chunk);
      sent += chunk.length;
      await roundTrip(flooder, 30_000);
      await nodeIdle(n);
    }
    const afterFlood = memoryMb();
    const grew = afterFlood.held - before.held;
    assert.ok(grew < 10, `the node holds ${grew.toFixed(1)} MB more (heap+external) after ${(sent / MiB).toFixed(1)} MB of notices were aimed at a client that does not read`);
    await assertStillWorking(flooder, friend, 'nq-friend', victim);
  }));

/** The flooder's connection still carries messages, and the victim is still connected. */
async function assertStillWorking(flooder: V1TestClient, friend: V1TestClient, friendName: string, victim: V1TestClient): Promise<void> {
  flooder.send(friendName, 'after the flood');
  const f = await friend.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'after the flood');
  friend.ack(f.msgId);
  assert.equal(flooder.closed, false);
  assert.equal(victim.closed, false);
}

test(`typing is limited per sender: of 200 TYPING_START sent at once, the target gets the burst (${EDGE_DEFAULTS.rate_limit_typing_burst}) plus what refilled, the rest are dropped and counted`, () =>
  withNode({}, async (n, user) => {
    const target = await user('tl-target');
    const typer = await user('tl-typer');
    const droppedBefore = await metric(n.node.httpPort, 'iris_typing_dropped_total');
    const started = Date.now();
    typer.raw(concat(Array.from({ length: 200 }, () => encodeTypingPacket(utf8('tl-target'), true))));
    // A message sent after the typing notices reaches the target after every notice that was relayed.
    typer.send('tl-target', 'marker');
    const marker = await target.next<Reliable>(isReliable);
    assert.equal(text(marker.msg), 'marker');
    target.ack(marker.msgId);
    const elapsedS = (Date.now() - started) / 1000;
    const got = target.unconsumed().filter((f) => f.kind === 'typing');
    const burst = EDGE_DEFAULTS.rate_limit_typing_burst;
    const most = burst + Math.ceil(EDGE_DEFAULTS.rate_limit_typing_per_s * elapsedS) + 1;
    assert.ok(got.length >= burst && got.length <= most, `the target got ${got.length} typing notices of 200 in ${elapsedS.toFixed(2)} s (expected ${burst}..${most})`);
    assert.ok(got.every((f) => f.kind === 'typing' && text(f.sender) === 'tl-typer' && f.typing));
    assert.equal((await metric(n.node.httpPort, 'iris_typing_dropped_total')) - droppedBefore, 200 - got.length);
    assert.deepEqual(typer.unconsumed(), [], 'the typer is never answered for a dropped notice');
  }));
