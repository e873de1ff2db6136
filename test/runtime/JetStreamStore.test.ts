/**
 * The production StreamStore: the StreamStore contract (test/support/streamRules.ts, the rules
 * the simulator's JetStream model runs too) on JetStreamStore against one real 3-server
 * nats-server 2.9.10 cluster, then what only the real binding has: the server's other error
 * answers and a closed connection as typed results, and a cluster node's Env carrying it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JetStreamStore } from '../../runtime/node/JetStreamStore.js';
import { connectNats } from '../../runtime/node/NatsTransport.js';
import { RuntimeNode } from '../../runtime/node/RuntimeNode.js';
import { natsStreamHarness, streamRules, streamSpec, type NatsStreamHarness } from '../support/streamRules.js';

let shared: Promise<NatsStreamHarness> | null = null;
const harness = (): Promise<NatsStreamHarness> => (shared ??= natsStreamHarness());

streamRules(harness);

const ENSURE_MS = 30_000;

test('JetStream answers beyond the contract are typed (over max_payload too_large, a subject no stream captures unavailable, a missing stream timeout or invalid, a subject of another stream a rejected bug, a closed connection closed), and no consumer exists', async () => {
  const h = await harness();
  const r = await connectNats({ servers: h.cluster.urls });
  assert.ok(r.ok);
  const store = new JetStreamStore(r.transport.connection, { apiTimeoutMs: 2_000 });
  for (const name of ['PLAIN', 'OTHER']) {
    await h.waitFor(`stream ${name}`, async () => (await store.ensureStream(streamSpec(name))).ok, ENSURE_MS);
  }
  const huge = await store.append('PLAIN', 'plain.x', new Uint8Array(r.transport.maxPayload + 1));
  assert.equal(!huge.ok && huge.reason, 'too_large', 'over the server max_payload: the client refuses it');
  const nobody = await store.append('PLAIN', 'nostream.x', new Uint8Array(1));
  assert.equal(!nobody.ok && nobody.reason, 'unavailable', 'no stream captures it: no responders');
  const t0 = performance.now();
  const gone = await store.get('NOSUCH', 1, { timeoutMs: 300 });
  assert.equal(!gone.ok && gone.reason, 'timeout', 'a direct get nobody serves is not answered');
  assert.ok(performance.now() - t0 < 2_000);
  const info = await store.info('NOSUCH');
  assert.equal(!info.ok && info.reason, 'invalid');
  await assert.rejects(store.append('PLAIN', 'other.x', new Uint8Array(1)), /captured by another stream/);
  assert.deepEqual(await store.info('PLAIN'), { ok: true, firstSeq: 0, lastSeq: 0 }, 'the misrouted entry was not appended');
  assert.deepEqual(await store.ensureStream({ ...streamSpec('BAD'), subjects: [] }), { ok: false, reason: 'invalid', message: 'stream BAD captures no subject' });
  const jsz = (await (await fetch(`${h.cluster.monitorUrl(0)}/jsz`)).json()) as { streams: number; consumers: number };
  assert.ok(jsz.streams > 10, `the rules made their streams (${jsz.streams})`);
  assert.equal(jsz.consumers, 0, 'no JetStream consumer was ever created');
  await r.transport.close();
  assert.deepEqual(
    [await store.append('PLAIN', 'plain.x', new Uint8Array(1)), await store.get('PLAIN', 1), await store.lastOnSubject('PLAIN', 'plain.x'), await store.info('PLAIN'), await store.ensureStream(streamSpec('PLAIN'))].map((x) => !x.ok && x.reason),
    ['closed', 'closed', 'closed', 'closed', 'closed'],
  );
});

test("a cluster node's env.streams is a JetStreamStore on the node's NATS connection; a single node has none", async () => {
  const h = await harness();
  const node = await RuntimeNode.start({ name: 'streams-node', schedulers: 1, dirtyThreads: 1, logLevel: 'silent', cluster: { cluster: 'jst', servers: h.cluster.urls } });
  try {
    const streams = node.env.streams;
    assert.ok(streams instanceof JetStreamStore);
    await h.waitFor('stream NODE', async () => (await streams.ensureStream(streamSpec('NODE'))).ok, ENSURE_MS);
    assert.deepEqual(await streams.append('NODE', 'node.a', new TextEncoder().encode('hello'), { msgId: 'n1' }), { ok: true, seq: 1, duplicate: false });
    const got = await h.waitFor('the entry', async () => {
      const g = await streams.get('NODE', 1);
      return g.ok ? g.entry : undefined;
    });
    assert.deepEqual({ ...got, data: new TextDecoder().decode(got.data) }, { seq: 1, subject: 'node.a', data: 'hello', msgId: 'n1' });
  } finally {
    await node.stop();
  }
  assert.equal((await node.env.streams!.info('NODE')).ok, false, 'the store closes with the node');
  const single = await RuntimeNode.start({ name: 'alone', schedulers: 1, dirtyThreads: 1, logLevel: 'silent' });
  try {
    assert.equal(single.env.streams, undefined);
    assert.equal(single.env.transport, undefined);
  } finally {
    await single.stop();
  }
});
