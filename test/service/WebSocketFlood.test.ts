/**
 * A WebSocket client that writes without reading cannot grow the server: its connection's
 * mailbox takes only a bounded backlog of input, the link holds no more than
 * ws_paused_input_limit_bytes while paused (uWS cannot stop reading) and its output no more
 * than ws_output_limit_bytes, and past a limit the link is closed and logged. The node runs
 * as a child process so its memory (RSS and V8 heap from /health) is its own; other clients
 * are served as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGetStatusPacket, encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { startIrisChild } from '../support/irisChild.js';
import { startTestNode } from '../support/irisNode.js';
import { maskedFrame, rawWebSocket } from '../support/RawWebSocket.js';
import { roundTrip, waitUntil } from '../support/serviceKit.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';

/**
 * What the flood may add to the server's memory: the link's limits hold a few MB, V8's young
 * generation may grow under the allocation rate; the unbounded server grew by over 100 MB
 * (RSS) and 70 MB (heap) for this flood, and by hundreds of MB in the original report.
 */
const RSS_GROWTH_BOUND_MB = 48;
const HEAP_GROWTH_BOUND_MB = 32;
/** The flood a client attempts: as in the report that found the problem (21.6 MB). */
const FLOOD_BYTES = 24 * 1024 * 1024;

interface Health {
  connections: number;
  memory: { rss: number; heap_used: number };
}

async function health(httpPort: number): Promise<Health> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/health`);
  return (await r.json()) as Health;
}

test('a logged-in WebSocket client that floods GET_STATUS without reading is closed, and server memory stays bounded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-flood-'));
  const node = await startIrisChild(dir, ['log_level=info']);
  try {
    const baseline = (await health(node.httpPort)).memory;
    const ws = await rawWebSocket(node.httpPort, { keepReading: true });
    ws.socket.write(maskedFrame(encodeLoginPacket(utf8('flooder'))));
    const loginOk = Buffer.from([0x82, 9, 0x03, ...utf8('LOGIN_OK')]);
    await waitUntil('LOGIN_OK', () => Buffer.concat(ws.received).equals(loginOk));
    // From here on the client reads nothing: every answer stays in the kernel, then in the server.
    ws.socket.pause();
    // 64 KiB of masked frames, each one GET_STATUS packet, written again and again.
    const frame = maskedFrame(encodeGetStatusPacket(utf8('u')));
    const chunk = Buffer.concat(Array.from({ length: Math.floor(65536 / frame.length) }, () => frame));
    const peak = { ...baseline };
    const sample = async (): Promise<Health> => {
      const h = await health(node.httpPort);
      peak.rss = Math.max(peak.rss, h.memory.rss);
      peak.heap_used = Math.max(peak.heap_used, h.memory.heap_used);
      return h;
    };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sample();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let written = 0;
    const deadline = Date.now() + 60_000;
    while (written < FLOOD_BYTES && !ws.closed && Date.now() < deadline) {
      if (!ws.socket.write(chunk)) {
        await new Promise<void>((r) => {
          const done = () => {
            ws.socket.off('drain', done);
            ws.socket.off('close', done);
            clearTimeout(t);
            r();
          };
          // The server closing the link ends the wait as well as the kernel taking the bytes.
          const t = setTimeout(done, Math.max(1, deadline - Date.now()));
          ws.socket.on('drain', done);
          ws.socket.on('close', done);
        });
      }
      written += chunk.length;
    }
    // The server closed its end (uWS may keep taking and dropping bytes until the kernel
    // reports the close to this client, which does not read).
    const closeDeadline = Date.now() + 10_000;
    while ((await sample()).connections !== 0) {
      assert.ok(Date.now() < closeDeadline, `the server did not close the flooding link (client wrote ${written} bytes)`);
      await new Promise((r) => setTimeout(r, 50));
    }
    sampling = false;
    await sampler;
    assert.ok(peak.rss - baseline.rss < RSS_GROWTH_BOUND_MB, `server RSS grew from ${baseline.rss} MB to ${peak.rss} MB`);
    assert.ok(peak.heap_used - baseline.heap_used < HEAP_GROWTH_BOUND_MB, `server heap grew from ${baseline.heap_used} MB to ${peak.heap_used} MB`);
    // Why the link was closed: its paused input or its output over a limit (or, should the
    // connection's own input buffer fill first, that).
    assert.match(node.output(), /closing a WebSocket (that kept sending while its input was paused|whose output is over its limit)|closing connection on unrecoverable input/);
    // The node serves everyone else as before.
    const c = await V1TestClient.ws(node.httpPort);
    assert.equal((await c.login('after-flood')).kind, 'login_ok');
    await roundTrip(c);
    c.close();
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a WebSocket client that writes 1000 SENDs of 1 KB back to back, one frame each, has every one delivered in order and stays connected', async () => {
  // 1 MB of input at loopback speed: more than INPUT_BACKLOG_BYTES, so the link is paused
  // for its connection to catch up, and less than the paused-input limit.
  const t = await startTestNode();
  try {
    const sender = await V1TestClient.ws(t.node.httpPort);
    assert.equal((await sender.login('burst-sender')).kind, 'login_ok');
    const receiver = await V1TestClient.ws(t.node.httpPort);
    assert.equal((await receiver.login('burst-receiver')).kind, 'login_ok');
    const n = 1000;
    const pad = 'p'.repeat(1000);
    for (let i = 0; i < n; i++) sender.send('burst-receiver', `${i}:${pad}`);
    const got = await receiver.receiveAndAck(n, 20_000);
    assert.deepEqual(
      got.map((m) => Number(m.split(':')[0])),
      Array.from({ length: n }, (_, i) => i),
    );
    await roundTrip(sender);
    assert.equal(sender.closed, false);
    sender.close();
    receiver.close();
  } finally {
    await t.stop();
  }
});
