/**
 * Before login a connection may hold no more input than the largest legal LOGIN
 * (V1_MAX_LOGIN_BYTES, or max_input_buffer_bytes when that is smaller): nothing else is legal
 * yet, so an anonymous client parking an almost complete BATCH_SEND of a declared 1 MiB is
 * answered ERROR input_buffer_overflow and closed at once instead of holding a megabyte until
 * the login timeout. After login the same packet is legal and goes through. Real node, real
 * sockets.
 */
import { test } from 'node:test';
import { sharedNodeClients } from '../support/serviceFixture.js';
import assert from 'node:assert/strict';
import { startTestNode } from '../support/irisNode.js';
import { text, utf8 } from '../support/V1TestClient.js';
import { ClientSet, concat, isReliable, type Reliable } from '../support/serviceKit.js';
import { encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { V1_MAX_BATCH_BLOB_BYTES, V1_MAX_LOGIN_BYTES } from '../../edge/protocol/v1Limits.js';

const { clients } = sharedNodeClients();

const u16 = (n: number): Uint8Array => Uint8Array.of(n >>> 8, n & 0xff);
const u32 = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);

/** A BATCH_SEND to `target` whose blob is declared `V1_MAX_BATCH_BLOB_BYTES` (1 MiB): `blobSent` bytes of it. */
function batchHead(target: string, blobSent: number): Uint8Array {
  // One item of 65,535 bytes after another: a well-formed blob when complete.
  const blob = new Uint8Array(V1_MAX_BATCH_BLOB_BYTES);
  for (let at = 0; at + 2 <= blob.length; at += 2 + 65_535) blob.set(u16(Math.min(65_535, blob.length - at - 2)), at);
  return concat([Uint8Array.of(0x04), u16(utf8(target).length), utf8(target), u32(V1_MAX_BATCH_BLOB_BYTES), blob.subarray(0, blobSent)]);
}

test('before login, an almost complete BATCH_SEND of a declared 1 MiB is answered ERROR input_buffer_overflow and the connection is closed', async () => {
  const c = await clients.tcp();
  c.raw(batchHead('pl-target', V1_MAX_BATCH_BLOB_BYTES - 1));
  assert.deepEqual(await c.next(), { kind: 'error', reason: 'input_buffer_overflow' });
  await c.closedByServer();
  assert.deepEqual(c.unconsumed(), []);
});

test('before login, with max_input_buffer_bytes (4 KiB) below the largest LOGIN, the smaller cap applies: 6,000 bytes of an unfinished packet are refused input_buffer_overflow', async () => {
  const small = await startTestNode({ max_input_buffer_bytes: 4096 });
  const own = new ClientSet(
    () => small.node.tcpPort,
    () => small.node.httpPort,
  );
  try {
    const c = await own.tcp();
    c.raw(batchHead('pl-target', 6000 - 13));
    assert.deepEqual(await c.next(), { kind: 'error', reason: 'input_buffer_overflow' });
    await c.closedByServer();
  } finally {
    own.closeAll();
    await small.stop();
  }
});

test(`before login, a LOGIN of exactly ${V1_MAX_LOGIN_BYTES} bytes (the largest legal) arriving in pieces is still answered`, async () => {
  const c = await clients.tcp();
  const login = encodeLoginPacket(new Uint8Array(256).fill(0x6c), new Uint8Array(V1_MAX_LOGIN_BYTES - 1 - 256 - 1).fill(0x74));
  assert.equal(login.length, V1_MAX_LOGIN_BYTES);
  // The lone opcode waits for data; the rest arrives as one segment and is the login data.
  c.raw(login.subarray(0, 1));
  await new Promise((r) => setImmediate(r));
  c.raw(login.subarray(1));
  assert.equal((await c.next()).kind, 'login_ok');
});

test('after login, the same 1 MiB BATCH_SEND is legal: held until complete, then every item is routed', async () => {
  const a = await clients.user('pl-sender');
  const b = await clients.user('pl-recv');
  const whole = batchHead('pl-recv', V1_MAX_BATCH_BLOB_BYTES);
  a.raw(whole.subarray(0, whole.length - 1));
  a.raw(whole.subarray(whole.length - 1));
  const items = Math.ceil(V1_MAX_BATCH_BLOB_BYTES / (2 + 65_535));
  for (let i = 0; i < items; i++) {
    const f = await b.next<Reliable>(isReliable, 10_000);
    b.ack(f.msgId);
  }
  a.send('pl-recv', 'after the batch');
  const f = await b.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'after the batch');
  b.ack(f.msgId);
  assert.deepEqual(a.unconsumed(), []);
});
