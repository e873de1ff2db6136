/**
 * The client half of a drain, on a real node's listeners with the node's ClientDrain driven
 * directly (a single node is never drained through the admin API): once it refuses new links a
 * TCP client gets ERROR node_draining and is closed, and a WebSocket client the same frame and
 * close 1001 node_draining; a connected client told to leave gets node_draining as its last
 * frame, what it still sends before it half-closes is handled, and the node closes after it;
 * a client that does not close is closed after the grace time; tellAll resolves once every
 * connection has exited.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { V1ClientDecoder } from '../../edge/protocol/V1ClientDecoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { serviceFixture } from '../support/serviceFixture.js';
import { V1TestClient, text } from '../support/V1TestClient.js';

type F<K extends ServerFrame['kind']> = Extract<ServerFrame, { kind: K }>;

const fx = serviceFixture();

test('a client told node_draining gets it as its last frame and is closed after it half-closes, one that stays after the grace time; new clients are refused with the reason (TCP ERROR, WebSocket close 1001)', async () => {
  const n = await fx.node();
  const { service, runtime } = n.node;
  const leaver = await fx.user(n, 'leaver');
  const stayer = await fx.user(n, 'stayer');
  const inbox = await fx.user(n, 'drain-inbox');
  leaver.send('drain-inbox', 'before');
  assert.equal(text((await inbox.next<F<'reliable_msg'>>((f) => f.kind === 'reliable_msg')).msg), 'before');

  service.clients.refuseNew();
  const t0 = Date.now();
  const told = service.clients.tellAll(runtime.main, 600, 5_000);
  const notice = await leaver.next<F<'error'>>((f) => f.kind === 'error');
  assert.equal(notice.reason, 'node_draining');
  // Sent after the notice (as a client does before it reads it), then the client half-closes.
  leaver.send('drain-inbox', 'after the notice');
  leaver.end();
  await leaver.closedByServer();
  assert.deepEqual(leaver.unconsumed(), [], 'nothing after node_draining');
  const stayerNotice = await stayer.next<F<'error'>>((f) => f.kind === 'error');
  assert.equal(stayerNotice.reason, 'node_draining');
  await stayer.closedByServer(); // it never closes: the grace time does
  const graceMs = Date.now() - t0;
  assert.ok(graceMs >= 500, `closed after the grace time (${graceMs} ms)`);
  // The drain-inbox user was told as well; it lets the node close it.
  await inbox.next<F<'error'>>((f) => f.kind === 'error' && f.reason === 'node_draining');
  assert.deepEqual(await told, { told: 3, remaining: 0 });
  assert.equal(service.clients.connections, 0);

  // New clients are refused with the reason, over TCP and WebSocket, and /health says why.
  const refused = await V1TestClient.tcp(n.node.tcpPort);
  assert.deepEqual(await refused.next<F<'error'>>((f) => f.kind === 'error'), { kind: 'error', reason: 'node_draining' });
  await refused.closedByServer();
  const ws = new WebSocket(`ws://127.0.0.1:${n.node.httpPort}/ws`);
  const decoder = new V1ClientDecoder();
  const frames: ServerFrame[] = [];
  ws.on('message', (d: Buffer) => {
    decoder.push(new Uint8Array(d));
    for (let r = decoder.next(); r.kind === 'frame'; r = decoder.next()) frames.push(r.frame);
  });
  const [code, reason] = await new Promise<[number, string]>((resolve) => ws.on('close', (c: number, r: Buffer) => resolve([c, r.toString()])));
  assert.deepEqual([frames, code, reason], [[{ kind: 'error', reason: 'node_draining' }], 1001, 'node_draining']);
  assert.deepEqual((JSON.parse(await (await fetch(`http://127.0.0.1:${n.node.httpPort}/health`)).text()) as { status: string }).status, 'draining');
});

test('what a leaving client sends after node_draining and before it half-closes is handled: stored for its recipient, once and in order', async () => {
  const n = await fx.node();
  const { service, runtime } = n.node;
  const sender = await fx.user(n, 'late-sender');
  service.clients.refuseNew();
  const told = service.clients.tellAll(runtime.main, 2_000, 5_000);
  assert.equal((await sender.next<F<'error'>>((f) => f.kind === 'error')).reason, 'node_draining');
  for (let k = 1; k <= 20; k++) sender.send('late-recipient', `late ${k}`);
  sender.end();
  await sender.closedByServer();
  assert.deepEqual(await told, { told: 1, remaining: 0 });
  await n.stop({ keepData: true });
  // The same data on a node that serves again: every message is there, once, in order.
  const again = await fx.node({ wal_directory: n.dir });
  const recipient = await fx.user(again, 'late-recipient');
  const got: string[] = [];
  for (let k = 1; k <= 20; k++) {
    const f = await recipient.next<F<'reliable_msg'>>((x) => x.kind === 'reliable_msg');
    recipient.ack(f.msgId);
    got.push(text(f.msg));
  }
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `late ${i + 1}`));
});
