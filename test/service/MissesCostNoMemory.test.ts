/**
 * Asking about what does not exist costs no memory: the key directory and the groups server
 * keep bounded caches of what storage holds and remember nothing about a miss, so 300,000
 * FETCH_PREKEYS of distinct unknown users, or 300,000 GROUP_ROSTER of random group ids, leave
 * the node's heap (after a full collection) about where it was. The node runs in this process
 * (its heap is this process's heap); the client is a bare socket that only counts answers, so
 * the test itself holds nothing per request.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';
import { nodeIdle } from '../support/nodeIdle.js';
import { encodeFetchPrekeysPacket, encodeGroupRosterPacket, encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';

const MiB = 1024 * 1024;
const COUNT = 300_000;
/** Heap growth allowed for COUNT misses: well under what remembering each miss costs. */
const BOUND_MB = 12;

let t: TestNode | null = null;
after(async () => {
  await t?.stop();
});

function heapMb(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc !== undefined, 'run with --expose-gc');
  gc();
  gc();
  return process.memoryUsage().heapUsed / MiB;
}

/**
 * A logged-in bare socket that writes `count` packets made by `packet(i)` in batches and
 * resolves once `count` answers came back; answers are counted by their frame layout.
 */
async function pipeline(port: number, user: string, count: number, packet: (i: number) => Uint8Array): Promise<{ prekeyAnswers: number; errors: number }> {
  const sock: Socket = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  sock.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  let loggedIn = false;
  let onLogin!: () => void;
  const login = new Promise<void>((resolve) => (onLogin = resolve));
  const counts = { prekeyAnswers: 0, errors: 0 };
  let answered = 0;
  let done!: () => void;
  let failed!: (e: Error) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  sock.on('close', () => failed(new Error(`closed after ${answered} answers`)));
  sock.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    let at = 0;
    for (;;) {
      if (!loggedIn) {
        if (buf.length - at < 9) break;
        assert.equal(buf.subarray(at, at + 9).toString('latin1'), '\x03LOGIN_OK');
        loggedIn = true;
        onLogin();
        at += 9;
        continue;
      }
      if (buf.length - at < 3) break;
      const op = buf[at]!;
      let size: number;
      if (op === 0x22) {
        if (buf.length - at < 5) break;
        size = 5 + buf.readUInt32BE(at + 1);
        counts.prekeyAnswers++;
      } else if (op === 0xfe) {
        size = 3 + buf.readUInt16BE(at + 1);
        counts.errors++;
      } else {
        failed(new Error(`unexpected frame 0x${op.toString(16)}`));
        return;
      }
      if (buf.length - at < size) {
        if (op === 0x22) counts.prekeyAnswers--;
        else counts.errors--;
        break;
      }
      at += size;
      if (++answered === count) done();
    }
    buf = buf.subarray(at);
  });
  // v1 clients wait for LOGIN_OK: the login data is the rest of what the server has buffered.
  sock.write(encodeLoginPacket(utf8(user)));
  await Promise.race([login, finished]);
  const BATCH = 5_000;
  for (let from = 0; from < count; from += BATCH) {
    const parts: Uint8Array[] = [];
    for (let i = from; i < Math.min(count, from + BATCH); i++) parts.push(packet(i));
    // Wait for the socket to take each batch: the node reads only as fast as it answers.
    if (!sock.write(Buffer.concat(parts))) await new Promise((r) => sock.once('drain', r));
  }
  try {
    await finished;
  } finally {
    sock.destroy();
  }
  return counts;
}

/** A random-looking group id (36-char UUID text) from the number `i`. */
function gid(i: number): Uint8Array {
  const h = (i * 2654435761 >>> 0).toString(16).padStart(8, '0');
  return utf8(`${h}-${String(i % 10000).padStart(4, '0')}-4000-8000-${String(i).padStart(12, '0')}`);
}

test(`${COUNT.toLocaleString('en')} FETCH_PREKEYS of distinct unknown users, then as many GROUP_ROSTER of random group ids, each grow the node's heap by less than ${BOUND_MB} MB`, async () => {
  // Fetch budgets lifted (the per-target one so far that its buckets refill at once and are
  // dropped): what is measured is the directory, not the limiter's bounded tables.
  t = await startTestNode({ rate_limit_prekey_fetches_burst: 100_000_000, rate_limit_prekey_fetches_per_s: 100_000_000, rate_limit_prekey_fetches_per_target_per_min: 100_000_000 });
  const port = t.node.tcpPort;
  // Warm up: code compiled, tables and buffers at their working size.
  await pipeline(port, 'miss-warm', 20_000, (i) => encodeFetchPrekeysPacket(utf8(`warm-${i}`)));
  await pipeline(port, 'miss-warm', 20_000, (i) => encodeGroupRosterPacket(gid(10_000_000 + i)));
  await nodeIdle(t);

  const before = heapMb();
  const fetched = await pipeline(port, 'miss-keys', COUNT, (i) => encodeFetchPrekeysPacket(utf8(`nobody-${i}`)));
  assert.deepEqual(fetched, { prekeyAnswers: COUNT, errors: 0 });
  await nodeIdle(t);
  const afterKeys = heapMb();

  const rostered = await pipeline(port, 'miss-groups', COUNT, (i) => encodeGroupRosterPacket(gid(i)));
  assert.deepEqual(rostered, { prekeyAnswers: 0, errors: COUNT });
  await nodeIdle(t);
  const afterGroups = heapMb();

  const keys = afterKeys - before;
  const groups = afterGroups - afterKeys;
  assert.ok(keys < BOUND_MB && groups < BOUND_MB, `heap grew ${keys.toFixed(1)} MB for ${COUNT} prekey misses and ${groups.toFixed(1)} MB for ${COUNT} roster misses`);
  // The node still answers a real client.
  const c = await V1TestClient.tcp(port);
  try {
    assert.equal((await c.login('miss-after')).kind, 'login_ok');
  } finally {
    c.close();
  }
});
