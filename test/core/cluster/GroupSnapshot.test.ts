/**
 * GroupSnapshot on LMDB and the in-memory core-NATS fake: a snapshot taken in one turn holds
 * every table of the group with its applied position, travels in chunks bounded in bytes, and
 * is refused on a bad chunk, a wrong count or a header that does not match its `meta`. The
 * trim point never passes what a recorded standby reported.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue, decodeValue } from '../../../runtime/Envelope.js';
import { fetchSnapshot, SnapshotServer, takeSnapshot } from '../../../core/cluster/GroupSnapshot.js';
import { trimPoint } from '../../../core/cluster/GroupReplica.js';
import { APPLIED_KEY, GroupStore, META_TABLE } from '../../../core/cluster/GroupStore.js';
import { groupTableName } from '../../../core/cluster/ShardGroups.js';
import { plantCanary } from '../../../core/Canaries.js';
import { MemoryHub } from '../../support/memoryTransport.js';
import { openStorage, tempDir } from '../../support/storage.js';

const G = 3;
const utf8 = new TextEncoder();
const dirs: Array<ReturnType<typeof tempDir>> = [];
after(() => {
  for (const d of dirs) d.remove();
});

async function storeWith(rows: number, seq: number, msgId: string) {
  const dir = tempDir('iris-snapshot-');
  dirs.push(dir);
  const local = openStorage(dir.path);
  const ops = [];
  for (let i = 0; i < rows; i++) ops.push({ type: 'put' as const, table: groupTableName(G, i % 2 === 0 ? 'inbox' : 'seq'), key: [i, 'k'], value: utf8.encode(`value ${i} `.repeat(10)) });
  ops.push({ type: 'put' as const, table: groupTableName(G + 1, 'inbox'), key: ['other group'], value: utf8.encode('x') });
  ops.push({ type: 'put' as const, table: groupTableName(G, META_TABLE), key: APPLIED_KEY, value: encodeValue([seq, msgId]) });
  assert.deepEqual(await local.batch(ops), { ok: true });
  const opened = GroupStore.open(local, G);
  assert.ok(opened.ok);
  return { local, store: opened.store };
}

test('a snapshot holds every table of its group (and no other), cut into chunks of at most the given bytes unless one record is bigger', async () => {
  const { local, store } = await storeWith(40, 17, '2.9');
  const r = takeSnapshot(store, 600);
  assert.ok(r.ok);
  assert.equal(r.snapshot.seq, 17);
  assert.equal(r.snapshot.msgId, '2.9');
  assert.equal(r.snapshot.records, 41, '40 rows and the applied position');
  assert.ok(r.snapshot.chunks.length > 5);
  for (const c of r.snapshot.chunks) assert.ok(c.length <= 600 + 200, `chunk of ${c.length} bytes`);
  const tables = new Set((r.snapshot.chunks.flatMap((c) => decodeValue(c) as unknown[][])).map((rec) => rec[0]));
  assert.deepEqual([...tables].sort(), ['inbox', 'meta', 'seq']);
  await local.close();
});

test('a copy without an applied position is not offered', async () => {
  const dir = tempDir('iris-snapshot-empty-');
  dirs.push(dir);
  const local = openStorage(dir.path);
  const opened = GroupStore.open(local, G);
  assert.ok(opened.ok);
  const r = takeSnapshot(opened.store);
  assert.equal(r.ok, false);
  await local.close();
});

test('a snapshot fetched chunk by chunk installs in one transaction: the receiver holds exactly the sender tables and position', async () => {
  const a = await storeWith(30, 12, '1.11');
  const b = await storeWith(3, 2, '1.1');
  assert.deepEqual(await b.local.batch([{ type: 'put', table: groupTableName(G, 'stale'), key: ['only here'], value: utf8.encode('s') }]), { ok: true });
  const hub = new MemoryHub();
  const server = new SnapshotServer(() => takeSnapshot(a.store, 500), () => 0);
  const sub = hub.connect().subscribe('snap', (d, _s, reply) => hub.connect().publish(reply!, server.answer(d)));
  const got = await fetchSnapshot(hub.connect(), 'snap', 'b', 1_000);
  sub.unsubscribe();
  assert.ok(got.ok, got.ok ? '' : got.message);
  assert.equal(got.snapshot.seq, 12);
  assert.deepEqual(await b.store.install(got.snapshot.records, got.snapshot.seq, got.snapshot.msgId), { ok: true });
  assert.deepEqual({ seq: b.store.appliedSeq, msgId: b.store.appliedMsgId, queued: b.store.queuedSeq }, { seq: 12, msgId: '1.11', queued: 12 });
  for (const t of ['inbox', 'seq', 'meta', 'stale']) assert.deepEqual(b.local.table(groupTableName(G, t)).getRange({}), a.local.table(groupTableName(G, t)).getRange({}), t);
  // The other group's table on the receiver is untouched.
  assert.equal(b.local.table(groupTableName(G + 1, 'inbox')).count(), 1);
  // The sender dropped the snapshot once its last chunk went out.
  assert.equal(server.heldCount, 0);
  await a.local.close();
  await b.local.close();
});

test('a chunk that does not match its checksum, or a snapshot refused, is not accepted', async () => {
  const a = await storeWith(30, 12, '1.11');
  const hub = new MemoryHub();
  const server = new SnapshotServer(() => takeSnapshot(a.store, 500), () => 0);
  let n = 0;
  const sub = hub.connect().subscribe('snap', (d, _s, reply) => {
    const answer = server.answer(d);
    // The third answer (the second chunk) arrives with one byte changed.
    if (++n === 3) answer[answer.length - 2] ^= 0xff;
    hub.connect().publish(reply!, answer);
  });
  const bad = await fetchSnapshot(hub.connect(), 'snap', 'b', 1_000);
  assert.deepEqual(bad.ok ? 'accepted' : bad.message.replace(/\d+\/\d+/, 'i/n'), 'chunk i/n does not match its checksum');
  sub.unsubscribe();
  const refusing = new SnapshotServer(() => ({ ok: false, message: 'no copy' }), () => 0);
  const sub2 = hub.connect().subscribe('snap2', (d, _s, reply) => hub.connect().publish(reply!, refusing.answer(d)));
  const refused = await fetchSnapshot(hub.connect(), 'snap2', 'b', 1_000);
  assert.deepEqual(refused, { ok: false, message: 'refused: no copy' });
  sub2.unsubscribe();
  const none = await fetchSnapshot(hub.connect(), 'nobody', 'b', 1_000);
  assert.deepEqual(none, { ok: false, message: 'snapshot request: no_responders' });
  await a.local.close();
});

test('the trim point is the lowest applied position of the owner and every recorded standby, less the margin; an unreported standby, or none recorded, holds it at 0', () => {
  const reported = new Map([
    ['s1', 90],
    ['s2', 70],
    ['not-recorded', 5],
  ]);
  assert.equal(trimPoint(100, ['s1', 's2'], reported, 10), 60);
  assert.equal(trimPoint(50, ['s1'], reported, 0), 50);
  assert.equal(trimPoint(100, [], reported, 10), 0, 'no standby recorded: the owner alone would hold the group');
  assert.equal(trimPoint(100, ['s1', 'silent'], reported, 10), 0);
  assert.equal(trimPoint(5, ['s1'], reported, 10), 0);
  plantCanary('trim_above_standby');
  try {
    assert.equal(trimPoint(100, ['s1', 's2'], reported, 10), 90, 'the planted bug ignores the standbys');
  } finally {
    plantCanary(null);
  }
});
