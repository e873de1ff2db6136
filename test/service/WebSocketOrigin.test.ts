/**
 * The Origin check on the WebSocket upgrade, with real WebSocket clients that set the header
 * as a browser would: a page whose origin is not in ws_allowed_origins gets HTTP 403 and no
 * WebSocket (so it cannot log in through a visitor's browser), clients that send no Origin
 * (non-browser) are allowed, dev mode allows loopback pages, production mode allows no page
 * until one is configured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startTestNode } from '../support/irisNode.js';
import { encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { utf8 } from '../support/V1TestClient.js';

const SECRET = 'o'.repeat(40);
const LOGIN_OK = [0x03, ...utf8('LOGIN_OK')];

type Upgrade = { opened: true; firstReply: number[] } | { opened: false; status: number };

/** Open `/ws` with this Origin header (none when undefined); once open, log in as `user` and return the reply. */
function upgradeFrom(port: number, origin: string | undefined, user = 'origin-user'): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, origin === undefined ? {} : { origin });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer to the upgrade from ${origin ?? '(no origin)'}`));
    }, 5000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      resolve({ opened: false, status: res.statusCode ?? 0 });
    });
    ws.on('open', () => ws.send(encodeLoginPacket(utf8(user))));
    ws.on('message', (d: Buffer) => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ opened: true, firstReply: [...d] });
    });
    ws.on('error', () => {});
  });
}

test('dev defaults: loopback pages and clients without an Origin get a WebSocket; any other page gets 403', async () => {
  const t = await startTestNode();
  try {
    const port = t.node.httpPort;
    for (const origin of [undefined, 'http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'https://localhost', 'HTTP://LOCALHOST:9000']) {
      assert.deepEqual(await upgradeFrom(port, origin), { opened: true, firstReply: LOGIN_OK }, `origin ${origin ?? '(none)'}`);
    }
    for (const origin of ['https://evil.example', 'http://localhost.evil.example:5173', 'http://192.168.1.10:8080', 'null', 'file://']) {
      assert.deepEqual(await upgradeFrom(port, origin), { opened: false, status: 403 }, `origin ${origin}`);
    }
    // Refused upgrades left no connection behind.
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { connections: number };
    assert.equal(health.connections, 0);
  } finally {
    await t.stop();
  }
});

test('production defaults allow no browser origin until ws_allowed_origins names one, which is then matched exactly', async () => {
  const closed = await startTestNode({ mode: 'production', jwt_secret: SECRET });
  try {
    assert.deepEqual(closed.node.config.ws_allowed_origins, []);
    assert.deepEqual(await upgradeFrom(closed.node.httpPort, 'http://localhost:5173'), { opened: false, status: 403 });
    // A non-browser client still connects (and, auth being on, needs a token to log in).
    assert.deepEqual(await upgradeFrom(closed.node.httpPort, undefined), { opened: true, firstReply: [...utf8('AUTH_FAILED')] });
  } finally {
    await closed.stop();
  }
  const open = await startTestNode({ mode: 'production', jwt_secret: SECRET, ws_allowed_origins: 'https://chat.example.com, http://localhost:*' });
  try {
    const port = open.node.httpPort;
    for (const origin of ['https://chat.example.com', 'https://chat.example.com:443', 'http://localhost:4000']) {
      assert.deepEqual(await upgradeFrom(port, origin), { opened: true, firstReply: [...utf8('AUTH_FAILED')] }, `origin ${origin}`);
    }
    for (const origin of ['https://chat.example.com:8443', 'http://chat.example.com', 'https://www.chat.example.com', 'http://127.0.0.1:4000']) {
      assert.deepEqual(await upgradeFrom(port, origin), { opened: false, status: 403 }, `origin ${origin}`);
    }
  } finally {
    await open.stop();
  }
});
