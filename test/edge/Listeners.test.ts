/**
 * The production listeners with real sockets: TCP and WebSocket (uWS) links deliver bytes,
 * write back, report close once, refuse WebSocket text frames with a close, serve HTTP
 * routes, and the uWS binary is the native one. The ClientLink contract per transport: a
 * paused WebSocket link holds input up to its limit and hands it over in order on resume,
 * output backpressure and its limit, TCP keepalive, and TCP/TLS half-close (the link's close
 * comes at the client's FIN, and what the server writes before it ends still reaches the client).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import type { AcceptLink, ClientLink } from '../../edge/ClientLink.js';
import { LISTENER_DEFAULTS } from '../../edge/listeners/ListenerSettings.js';
import { listenTcp } from '../../edge/listeners/TcpListener.js';
import { CLOSE_PAUSED_INPUT_OVER_LIMIT, listenUws, loadNativeUws } from '../../edge/listeners/UwsServer.js';
import { rawWebSocket, type RawWebSocket } from '../support/RawWebSocket.js';
import { keepaliveTimers } from '../support/socketTimers.js';
import { selfSigned } from '../support/TestPki.js';

/** Echoes every chunk back, prefixed with the transport name's first byte. */
function echoAccept(closed: string[]): AcceptLink {
  return (link) => ({
    data: (bytes) => {
      link.write(bytes);
    },
    drain: () => {},
    close: () => closed.push(link.transport),
  });
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the native uWebSockets.js binary loads (no JavaScript fallback)', () => {
  const r = loadNativeUws();
  assert.ok(r.ok, r.ok ? '' : r.reason);
});

test('a TCP link echoes bytes and reports its close exactly once', async () => {
  const closed: string[] = [];
  const l = await listenTcp({ host: '127.0.0.1', port: 0 }, echoAccept(closed));
  try {
    const sock = connect(l.port, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(Buffer.from([1, 2, 3]));
    await waitFor(() => Buffer.concat(got).length === 3, 2000, 'echo');
    assert.deepEqual([...Buffer.concat(got)], [1, 2, 3]);
    sock.end();
    await waitFor(() => closed.length > 0, 2000, 'close');
    assert.deepEqual(closed, ['tcp']);
  } finally {
    await l.close(true);
  }
});

test('a TCP or TLS client that shuts down its sending side is reported closed at once and still gets what the server writes before it ends the link', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-half-'));
  try {
    const { cert, key } = selfSigned(dir);
    for (const tls of [false, true]) {
      let closedAt = 0;
      const l = await listenTcp({ host: '127.0.0.1', port: 0, ...(tls ? { tls: { cert: readFileSync(cert), key: readFileSync(key) } } : {}) }, (link) => ({
        data: () => {},
        drain: () => {},
        close: () => {
          closedAt = Date.now();
          // The server finishes after the client's FIN: its last words, then its own FIN.
          setTimeout(() => {
            link.write(new TextEncoder().encode('last words'));
            link.end();
          }, 50);
        },
      }));
      try {
        const sock = tls ? tlsConnect({ host: '127.0.0.1', port: l.port, rejectUnauthorized: false }) : connect(l.port, '127.0.0.1');
        let got = '';
        sock.on('data', (d: Buffer) => (got += d.toString()));
        sock.on('error', () => {});
        await new Promise<void>((r) => sock.once(tls ? 'secureConnect' : 'connect', () => r()));
        await new Promise((r) => setTimeout(r, 50)); // the server has taken the link
        const fin = Date.now();
        sock.end();
        await new Promise<void>((r) => sock.once('close', () => r()));
        assert.ok(closedAt >= fin, `${tls ? 'TLS' : 'TCP'}: the link's close came at the client's FIN`);
        assert.equal(got, 'last words', `${tls ? 'TLS' : 'TCP'}: written after the client's FIN, received`);
      } finally {
        await l.close(true);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a WebSocket link echoes binary frames and closes on a text frame', async () => {
  const closed: string[] = [];
  const l = await listenUws({ host: '127.0.0.1', port: 0 }, echoAccept(closed));
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${l.port}/ws`);
    const got: number[][] = [];
    let closeCode = 0;
    ws.on('message', (data: Buffer) => got.push([...data]));
    ws.on('close', (code: number) => (closeCode = code));
    await new Promise<void>((r, j) => {
      ws.once('open', () => r());
      ws.once('error', () => j(new Error('ws error')));
    });
    ws.send(new Uint8Array([9, 8, 7]));
    await waitFor(() => got.length === 1, 2000, 'ws echo');
    assert.deepEqual(got[0], [9, 8, 7]);
    ws.send('text is refused');
    await waitFor(() => closeCode !== 0, 2000, 'ws close');
    assert.equal(closeCode, 1003);
    await waitFor(() => closed.length > 0, 2000, 'server-side close');
    assert.deepEqual(closed, ['ws']);
  } finally {
    await l.close(true);
  }
});

test('HTTP routes on the uWS port answer, and unknown paths get 404', async () => {
  const l = await listenUws(
    { host: '127.0.0.1', port: 0, routes: { '/health': () => ({ status: 200, body: '{"status":"ok"}' }) } },
    echoAccept([]),
  );
  try {
    const ok = await fetch(`http://127.0.0.1:${l.port}/health`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { status: 'ok' });
    const missing = await fetch(`http://127.0.0.1:${l.port}/nope`);
    assert.equal(missing.status, 404);
  } finally {
    await l.close(true);
  }
});

/** A `ws` client connected to `port`, with its received frames and close code recorded. */
async function wsClient(port: number): Promise<{ ws: WebSocket; got: Buffer[]; close: { code: number; reason: string } | null; pongs: number }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const c = { ws, got: [] as Buffer[], close: null as { code: number; reason: string } | null, pongs: 0 };
  ws.on('message', (d: Buffer) => c.got.push(d));
  ws.on('close', (code: number, reason: Buffer) => (c.close = { code, reason: reason.toString() }));
  ws.on('pong', () => c.pongs++);
  ws.on('error', () => {});
  await new Promise<void>((r, j) => {
    ws.once('open', () => r());
    ws.once('error', () => j(new Error('ws error')));
  });
  return c;
}

/** A frame whose bytes say which one it is: its index in 4 bytes, then `i % 251` filler bytes of value i & 0xff. */
function numberedFrame(i: number): Uint8Array {
  const f = new Uint8Array(4 + (i % 251));
  new DataView(f.buffer).setUint32(0, i);
  f.fill(i & 0xff, 4);
  return f;
}

test('a paused WebSocket link hands over nothing until resume, then every held frame complete and in order', async () => {
  const links: ClientLink[] = [];
  const data: Uint8Array[] = [];
  const l = await listenUws({ host: '127.0.0.1', port: 0 }, (link) => {
    link.pause();
    links.push(link);
    return { data: (b) => data.push(b), drain: () => {}, close: () => {} };
  });
  let c: Awaited<ReturnType<typeof wsClient>> | null = null;
  try {
    c = await wsClient(l.port);
    const n = 300;
    for (let i = 0; i < n; i++) c.ws.send(numberedFrame(i));
    // uWS answers a ping after the frames before it: once the pong is back, all 300 were read.
    c.ws.ping();
    const client = c;
    await waitFor(() => client.pongs === 1, 5000, 'pong');
    assert.equal(data.length, 0, 'frames were handed over while the link was paused');
    links[0]!.resume();
    c.ws.send(numberedFrame(n));
    await waitFor(() => data.length === n + 1, 5000, 'held frames after resume');
    for (let i = 0; i <= n; i++) assert.deepEqual([...data[i]!], [...numberedFrame(i)], `frame ${i}`);
    assert.equal(c.close, null);
  } finally {
    c?.ws.terminate();
    await l.close(true);
  }
});

test('a paused WebSocket link closes with 1008 once its held input passes the limit, having handed nothing over', async () => {
  const data: Uint8Array[] = [];
  let closes = 0;
  const l = await listenUws({ host: '127.0.0.1', port: 0 }, (link) => {
    link.pause();
    return { data: (b) => data.push(b), drain: () => {}, close: () => closes++ };
  });
  let c: Awaited<ReturnType<typeof wsClient>> | null = null;
  try {
    c = await wsClient(l.port);
    const frame = new Uint8Array(64 * 1024).fill(7);
    const frames = Math.ceil((2 * LISTENER_DEFAULTS.ws_paused_input_limit_bytes) / frame.length);
    for (let i = 0; i < frames; i++) c.ws.send(frame);
    c.ws.ping();
    const client = c;
    await waitFor(() => client.close !== null || client.pongs > 0, 10_000, 'a close or the pong');
    assert.deepEqual(client.close, { code: CLOSE_PAUSED_INPUT_OVER_LIMIT.code, reason: CLOSE_PAUSED_INPUT_OVER_LIMIT.reason });
    assert.equal(data.length, 0);
    await waitFor(() => closes > 0, 2000, 'server-side close');
    assert.equal(closes, 1);
  } finally {
    c?.ws.terminate();
    await l.close(true);
  }
});

test('WebSocket write reports backpressure past the high-water mark, and drain comes once the client reads', async () => {
  let link: ClientLink | null = null;
  let drains = 0;
  const l = await listenUws({ host: '127.0.0.1', port: 0 }, (k) => {
    link = k;
    return { data: () => {}, drain: () => drains++, close: () => {} };
  });
  let c: RawWebSocket | null = null;
  try {
    c = await rawWebSocket(l.port);
    await waitFor(() => link !== null, 2000, 'link');
    const frame = new Uint8Array(16 * 1024);
    let written = 0;
    // The kernel's loopback buffers take a few MB; past them uWS holds output and write says so.
    for (let i = 0; i < 4096 && link!.write(frame); i++) written += frame.length;
    assert.ok(written < 4096 * frame.length, 'write never reported backpressure');
    assert.ok(link!.bufferedBytes() >= LISTENER_DEFAULTS.ws_output_high_water_bytes - frame.length);
    assert.equal(drains, 0);
    c.socket.resume();
    await waitFor(() => drains === 1, 10_000, 'drain');
  } finally {
    c?.socket.destroy();
    await l.close(true);
  }
});

test('a WebSocket link whose output passes its limit is closed (the frame cannot be dropped from the stream)', async () => {
  let link: ClientLink | null = null;
  let closes = 0;
  const l = await listenUws({ host: '127.0.0.1', port: 0 }, (k) => {
    link = k;
    return { data: () => {}, drain: () => {}, close: () => closes++ };
  });
  let c: RawWebSocket | null = null;
  try {
    c = await rawWebSocket(l.port);
    await waitFor(() => link !== null, 2000, 'link');
    const frame = new Uint8Array(256 * 1024);
    // Ignoring write()'s answer, as a connection must not: far past the kernel's buffers and the limit.
    for (let i = 0; i < 160; i++) {
      link!.write(frame);
      await new Promise((r) => setImmediate(r));
      if (closes > 0) break;
    }
    await waitFor(() => closes === 1, 5000, 'close over the output limit');
    assert.equal(link!.write(frame), false);
  } finally {
    c?.socket.destroy();
    await l.close(true);
  }
});

test('TCP and TLS sockets carry a keepalive timer of keepAliveIdleSec', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-ka-'));
  try {
    const { cert, key } = selfSigned(dir);
    const plain = await listenTcp({ host: '127.0.0.1', port: 0, keepAliveIdleSec: 37 }, echoAccept([]));
    const tls = await listenTcp({ host: '127.0.0.1', port: 0, keepAliveIdleSec: 23, tls: { cert: readFileSync(cert), key: readFileSync(key) } }, echoAccept([]));
    const a = connect(plain.port, '127.0.0.1');
    const b = tlsConnect({ host: '127.0.0.1', port: tls.port, rejectUnauthorized: false });
    a.on('error', () => {});
    b.on('error', () => {});
    try {
      await new Promise<void>((r) => a.once('connect', () => r()));
      await new Promise<void>((r) => b.once('secureConnect', () => r()));
      await waitFor(() => keepaliveTimers(plain.port).length === 1 && keepaliveTimers(tls.port).length === 1, 2000, 'both sockets in ss');
      const [p] = keepaliveTimers(plain.port);
      const [t] = keepaliveTimers(tls.port);
      // The timer counts down from the idle delay; ss shows whole seconds.
      assert.ok(p !== null && p !== undefined && p > 37 - 10 && p <= 37, `plain TCP keepalive timer: ${p}`);
      assert.ok(t !== null && t !== undefined && t > 23 - 10 && t <= 23, `TLS keepalive timer: ${t}`);
    } finally {
      a.destroy();
      b.destroy();
      await plain.close(true);
      await tls.close(true);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an idle timeout uWS would abort the process for is refused by the listener', async () => {
  for (const idleTimeoutSec of [0, 4, 961]) {
    await assert.rejects(listenUws({ host: '127.0.0.1', port: 0, idleTimeoutSec }, echoAccept([])), /idle timeout .* is outside 8\.\.960 s/);
  }
});
