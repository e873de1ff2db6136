/**
 * The per-user inbox byte cap (config inbox_max_bytes) over the wire: a message that would take
 * the recipient's stored bytes past it is refused and its sender hears ERROR inbox_full (never
 * a silent loss); what is stored stays and is delivered; a restart recounts the stored bytes
 * from storage, so a full inbox is still full; an ACK gives the bytes back and the next message
 * is taken. Real node, real sockets, real LMDB (restarted on the same directory).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';
import { isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { nodeIdle } from '../support/nodeIdle.js';
import { encodeSendPacket } from '../../edge/protocol/V1Encoder.js';

const CAP = 65_536;
/** A stored message is its payload, the sender id (4 bytes here) and a 12-byte header. */
const stored = (payload: number): number => payload + 4 + 12;
const dir = mkdtempSync(join(tmpdir(), 'iris-bytecap-node-'));
const clients: V1TestClient[] = [];
let current: TestNode | null = null;
after(async () => {
  for (const c of clients) c.close();
  await current?.stop({ keepData: true });
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<TestNode> {
  current = await startTestNode({ inbox_max_bytes: CAP }, dir);
  return current;
}

async function user(n: TestNode, name: string): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(name)).kind, 'login_ok');
  return c;
}

/** Send `sizes` (each a message of that many bytes, its first byte the index) and return what the sender heard. */
async function sendAll(n: TestNode, s: V1TestClient, sizes: number[], first = 0): Promise<string[]> {
  sizes.forEach((size, i) => s.raw(encodeSendPacket(utf8('bc-r'), new Uint8Array(size).fill(first + i))));
  // Refusals are decided as the recipient's shard takes each message: written once the node is idle.
  await nodeIdle(n);
  await roundTrip(s);
  const heard = s.unconsumed().map((f) => (f.kind === 'error' ? f.reason : f.kind));
  for (let i = 0; i < heard.length; i++) await s.next();
  return heard;
}

test('messages beyond inbox_max_bytes are refused ERROR inbox_full; the bytes are recounted after a restart; an ACK makes room again', async () => {
  let n = await start();
  let s = await user(n, 'bc-s');
  assert.equal(6 * stored(10_000) + stored(10_000) > CAP && 6 * stored(10_000) + stored(5_000) <= CAP, true);
  // Six of 10,000 bytes fit (60,096 stored); a seventh does not; 5,000 more do (65,112).
  assert.deepEqual(await sendAll(n, s, [10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 5_000]), ['inbox_full']);

  // Restarted on the same storage: the inbox is still full (1,000 bytes more would be 66,128).
  s.close();
  await n.stop({ keepData: true });
  n = await start();
  s = await user(n, 'bc-s');
  assert.deepEqual(await sendAll(n, s, [1_000], 100), ['inbox_full']);

  // Everything stored arrives; an ACK of one 10,000-byte message makes room for another.
  const r = await user(n, 'bc-r');
  const got: Reliable[] = [];
  for (let i = 0; i < 7; i++) got.push(await r.next<Reliable>(isReliable));
  assert.deepEqual(
    got.map((f) => [f.msg[0], f.msg.length]),
    [[0, 10_000], [1, 10_000], [2, 10_000], [3, 10_000], [4, 10_000], [5, 10_000], [7, 5_000]],
  );
  r.ack(got[0]!.msgId);
  // The bytes come back once the removal is durable: until then the same message is refused.
  const deadline = Date.now() + 5000;
  for (let attempt = 0; (await sendAll(n, s, [10_000], 200)).length > 0; attempt++) {
    assert.ok(Date.now() < deadline, `still inbox_full ${attempt + 1} times, 5 s after the ACK`);
    await new Promise((res) => setTimeout(res, 10));
  }
  const f = await r.next<Reliable>(isReliable);
  assert.deepEqual([f.msg[0], f.msg.length], [200, 10_000]);
});
