/**
 * A client that vanishes without closing its connection goes offline within a bounded,
 * configured time: a WebSocket that stops answering the server's pings is closed after
 * ws_idle_timeout_s (uWS checks every 4 s) and its user turns offline, while an idle client
 * that answers stays online; TCP connections carry the kernel's keepalive with
 * tcp_keepalive_idle_s as the idle delay (read back with ss).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeGetStatusPacket, encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { LISTENER_DEFAULTS } from '../../edge/listeners/ListenerSettings.js';
import { startTestNode } from '../support/irisNode.js';
import { maskedFrame, rawWebSocket } from '../support/RawWebSocket.js';
import { sameBytes, waitUntil, type StatusFrame } from '../support/serviceKit.js';
import { keepaliveTimers } from '../support/socketTimers.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';

/** uWS counts timeouts in 4 s ticks: a timeout of t closes after between t − 4 s and t rounded up to a multiple of 4 s. */
const UWS_TIMEOUT_GRANULARITY_S = 4;

async function status(observer: V1TestClient, user: string): Promise<StatusFrame> {
  const target = utf8(user);
  observer.raw(encodeGetStatusPacket(target));
  return observer.next<StatusFrame>((f) => f.kind === 'status' && sameBytes(f.user, target));
}

test('a WebSocket client that stops answering pings is closed within ws_idle_timeout_s and its user turns offline; one that answers stays online', async () => {
  const idleS = 8;
  const t = await startTestNode({ ws_idle_timeout_s: idleS });
  try {
    const observer = await V1TestClient.tcp(t.node.tcpPort);
    // The vanished client: upgraded, logged in, then silent (it never answers a ping).
    const silent = await rawWebSocket(t.node.httpPort, { keepReading: true });
    silent.socket.write(maskedFrame(encodeLoginPacket(utf8('vanisher'))));
    const loginOk = Buffer.from([0x82, 9, 0x03, ...utf8('LOGIN_OK')]);
    await waitUntil('LOGIN_OK for the silent client', () => Buffer.concat(silent.received).subarray(0, loginOk.length).equals(loginOk));
    const loggedInAt = Date.now();
    // The live client: idle too, but its WebSocket library answers pings.
    const live = await V1TestClient.ws(t.node.httpPort);
    assert.equal((await live.login('stayer')).kind, 'login_ok');
    assert.equal((await status(observer, 'vanisher')).online, true);

    const boundMs = (idleS + UWS_TIMEOUT_GRANULARITY_S + 2) * 1000;
    await waitUntil('the silent client to go offline', async () => !(await status(observer, 'vanisher')).online, boundMs, 200);
    const offlineAfterMs = Date.now() - loggedInAt;
    assert.ok(offlineAfterMs > (idleS - UWS_TIMEOUT_GRANULARITY_S - 1) * 1000, `closed after ${offlineAfterMs} ms, before the idle timeout`);
    const s = await status(observer, 'stayer');
    assert.equal(s.online, true, 'the client that answers pings was closed');
    assert.equal(live.closed, false);
    live.close();
    observer.close();
    silent.socket.destroy();
  } finally {
    await t.stop();
  }
});

test('TCP connections carry keepalive with tcp_keepalive_idle_s as the idle delay (default and configured)', async () => {
  for (const [overrides, idleS] of [
    [{}, LISTENER_DEFAULTS.tcp_keepalive_idle_s],
    [{ tcp_keepalive_idle_s: 17 }, 17],
  ] as const) {
    const t = await startTestNode(overrides);
    try {
      const c = await V1TestClient.tcp(t.node.tcpPort);
      assert.equal((await c.login('kept-alive')).kind, 'login_ok');
      await waitUntil('the connection in ss', () => keepaliveTimers(t.node.tcpPort).length === 1);
      const [left] = keepaliveTimers(t.node.tcpPort);
      // The timer counts down from the idle delay; ss shows it in whole seconds.
      assert.ok(left !== null && left !== undefined && left > idleS - 10 && left <= idleS, `keepalive timer ${left} s, configured ${idleS} s`);
      c.close();
    } finally {
      await t.stop();
    }
  }
});
