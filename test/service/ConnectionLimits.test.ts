/**
 * Per-connection limits that keep one client from holding the node's resources: a
 * connection that never logs in is closed after login_timeout_ms with ERROR login_timeout,
 * and a client that stops reading is disconnected once its output stays backed up for
 * slow_client_timeout_ms, losing nothing: its messages come back at the next login, where a
 * large stored inbox is written at the pace the client reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { roundTrip, isReliable, type ErrorFrame, type Reliable, type StatusFrame } from '../support/serviceKit.js';
import { encodeGetStatusPacket } from '../../edge/protocol/V1Encoder.js';

test('a connection that does not log in within login_timeout_ms gets ERROR login_timeout and is closed', async () => {
  const t = await startTestNode({ login_timeout_ms: 200 });
  try {
    const c = await V1TestClient.tcp(t.node.tcpPort);
    const e = await c.next<ErrorFrame>((f) => f.kind === 'error', 3000);
    assert.equal(e.reason, 'login_timeout');
    await c.closedByServer(3000);
    // A client that logs in in time is not affected.
    const ok = await V1TestClient.tcp(t.node.tcpPort);
    assert.equal((await ok.login('punctual')).kind, 'login_ok');
    await assert.rejects(ok.next((f) => f.kind === 'error', 400));
    ok.close();
  } finally {
    await t.stop();
  }
});

test('a client that stops reading is disconnected after slow_client_timeout_ms and gets every message at its next login', async () => {
  const t = await startTestNode({ slow_client_timeout_ms: 300, rate_limit_messages_burst: 100_000 });
  try {
    const sender = await V1TestClient.tcp(t.node.tcpPort);
    await sender.login('firehose');
    const slow = await V1TestClient.tcp(t.node.tcpPort);
    await slow.login('sleepy');
    slow.setReading(false);
    const big = 'x'.repeat(30_000);
    const n = 1000; // ~30 MB: far over the cap and over the kernel's loopback socket buffers
    for (let i = 0; i < n; i++) sender.send('sleepy', `${i}:${big}`);
    await roundTrip(sender, 10_000);
    // The paused client cannot see the close itself; the server shows it as offline.
    const deadline = Date.now() + 15_000;
    for (;;) {
      sender.raw(encodeGetStatusPacket(utf8('sleepy')));
      const s = await sender.next<StatusFrame>((f) => f.kind === 'status');
      if (!s.online) break;
      assert.ok(Date.now() < deadline, 'the non-reading client was not disconnected');
      await new Promise((r) => setTimeout(r, 50));
    }
    slow.close();
    const again = await V1TestClient.tcp(t.node.tcpPort);
    await again.login('sleepy');
    const seen = new Set<number>();
    while (seen.size < n) {
      const f = await again.next<Reliable>(isReliable, 10_000);
      seen.add(Number(text(f.msg).split(':')[0]));
      again.ack(f.msgId);
    }
    assert.equal(seen.size, n);
    sender.close();
    again.close();
  } finally {
    await t.stop();
  }
});
