/**
 * The production listeners with real sockets: TCP and WebSocket (uWS) links deliver bytes,
 * write back, report close once, refuse WebSocket text frames with a close, serve HTTP
 * routes, and the uWS binary is the native one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import WebSocket from 'ws';
import type { AcceptLink } from '../../edge/ClientLink.js';
import { listenTcp } from '../../edge/listeners/TcpListener.js';
import { listenUws, loadNativeUws } from '../../edge/listeners/UwsServer.js';

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
