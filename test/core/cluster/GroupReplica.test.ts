/**
 * GroupReplica's transitions on the in-memory StreamStore and core-NATS fakes, two nodes on one
 * scheduler, each with its own LMDB: a standby follows the owner (and fills lost publications
 * from the stream), reaching byte-equal tables; the owner claims (epoch + 1) and writes its
 * marker before serving; a failover by the standby fences the old owner, whose services stop
 * and which turns standby of the new one; a hand-off to a standby loses nothing and the
 * successor serves from the hand-off entry on; a local copy the stream does not continue (its
 * applied entry has another Msg-Id in the stream) is refused and kept, and nothing is applied to
 * it; one whose next entries were trimmed away is replaced by a peer's snapshot, or, with no
 * peer able to send one, refused and kept.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterNames } from '../../../core/cluster/ClusterNames.js';
import { groupReplica, newReplicaStatus, type ReplicaCommand, type ReplicaStatus } from '../../../core/cluster/GroupReplica.js';
import type { GroupServicesDeps } from '../../../core/cluster/GroupServices.js';
import { ControlStream, OwnershipTable, type OwnershipRecord } from '../../../core/cluster/OwnershipTable.js';
import { groupTableName, ShardGroups } from '../../../core/cluster/ShardGroups.js';
import { APPLIED_KEY, META_TABLE } from '../../../core/cluster/GroupStore.js';
import { decodeEntry, shardStreamSpec } from '../../../core/cluster/ShardStream.js';
import { encodeValue } from '../../../runtime/Envelope.js';
import { newCoreCounters } from '../../../core/CoreCounters.js';
import { PresenceTable } from '../../../core/Presence.js';
import type { StorageEngine, StorageWriteResult } from '../../../runtime/Env.js';
import type { Pid } from '../../../runtime/Pid.js';
import type { Scheduler } from '../../../runtime/Scheduler.js';
import type { LmdbStorage } from '../../../runtime/node/LmdbStorage.js';
import { newScheduler, spawnProbe, testEnv } from '../../support/kernel.js';
import { MemoryHub } from '../../support/memoryTransport.js';
import { MemoryStreams } from '../../support/memoryStreams.js';
import { waitUntil } from '../../support/serviceKit.js';
import { openStorage, tempDir } from '../../support/storage.js';

const G = 0;
const names = clusterNames('replica-unit');
const STREAM = names.groupStream(G);
const utf8 = new TextEncoder();
const OK: StorageWriteResult = { ok: true };

interface Node {
  name: string;
  local: LmdbStorage;
  remove(): void;
  table: OwnershipTable;
  status: ReplicaStatus;
  pid: Pid;
  /** Every services start: the storage it was given and the (fake) services process. */
  served: Array<{ storage: StorageEngine; pid: Pid }>;
}

let s: Scheduler;
let streams: MemoryStreams;
let hub: MemoryHub;
let control: ControlStream;
let n1: Node;
let n2: Node;

/** Node `name` on `existing` data (a new directory if absent), its table knowing `known` if given. */
function startNode(name: string, existing?: ReturnType<typeof tempDir>, known?: { record: OwnershipRecord; seq: number }): Node {
  const dir = existing ?? tempDir(`iris-replica-${name}-`);
  const local = openStorage(dir.path);
  const table = new OwnershipTable(1);
  if (known !== undefined) table.apply(known.record, known.seq);
  const status = newReplicaStatus(G, 0);
  const plane = spawnProbe(s);
  const served: Node['served'] = [];
  const services: GroupServicesDeps = {
    groups: new ShardGroups(1),
    presence: new PresenceTable(),
    counters: newCoreCounters(),
    shardFor: () => 'nowhere',
    fanoutAllowed: () => true,
  };
  const pid = s.spawn(
    groupReplica({
      group: G,
      self: { name, incarnation: 1, roles: ['core'], addresses: {}, schedulers: 1 },
      names,
      streams,
      transport: hub.connect(),
      local,
      table,
      control,
      durability: 'quorum',
      status,
      controlPlane: plane.pid,
      writable: () => true,
      mayClaim: (r, reason) => (reason === 'handoff' ? r?.successor === name : true),
      standbyCandidates: () => new Set(['n1', 'n2']),
      services,
      startServices: async (ctx, _g, storage) => {
        const svc = ctx.spawnLink(() => () => undefined, { label: 'fake-services' });
        served.push({ storage, pid: svc });
        return { ok: true, pid: svc };
      },
    }),
    { label: `replica-${name}` },
  );
  return { name, local, remove: dir.remove, table, status, pid, served };
}

const send = (n: Node, cmd: ReplicaCommand): void => s.send(n.pid, cmd, null);

async function currentRecord(): Promise<{ record: OwnershipRecord; seq: number }> {
  const r = await control.readGroup(G);
  assert.ok(r.ok && r.value !== undefined);
  return { record: r.value, seq: r.seq };
}

function tableRows(n: Node, name: string) {
  return n.local.table(groupTableName(G, name)).getRange({});
}

before(async () => {
  s = newScheduler(testEnv());
  streams = new MemoryStreams();
  hub = new MemoryHub();
  control = new ControlStream(streams, names, 3);
  await control.ensure();
  await streams.ensureStream(shardStreamSpec(names, G, 3));
  const boot: OwnershipRecord = { group: G, epoch: 1, owner: 'n1', ownerIncarnation: 1, standbys: ['n2'], successor: null, reason: 'bootstrap' };
  assert.ok((await control.writeGroup(boot, 0)).ok);
  n1 = startNode('n1');
  n2 = startNode('n2');
});

after(async () => {
  s.shutdown('shutdown');
  for (const n of [n1, n2]) {
    await n.local.close();
    n.remove();
  }
});

test('the recorded owner claims epoch + 1, writes its marker, then serves; the standby follows to byte-equal tables', async () => {
  send(n1, { t: 'take_over', reason: 'bootstrap' });
  await waitUntil('n1 serving', () => n1.status.phase === 'owner');
  const { record } = await currentRecord();
  assert.deepEqual({ epoch: record.epoch, owner: record.owner, reason: record.reason, standbys: record.standbys }, { epoch: 2, owner: 'n1', reason: 'bootstrap', standbys: ['n2'] });
  assert.deepEqual(streams.entries(STREAM).map((e) => e.msgId), ['2.0']);
  assert.equal(n1.served.length, 1);
  const t = n1.served[0]!.storage.table('inbox');
  // Quorum: each write waits for n2's report.
  for (let turn = 0; turn < 5; turn++) assert.deepEqual(await Promise.all([t.put([turn, 'a'], utf8.encode(`a${turn}`)), t.put([turn, 'b'], utf8.encode(`b${turn}`))]), [OK, OK]);
  await waitUntil('n2 caught up', () => n2.status.appliedSeq === 6);
  assert.deepEqual(tableRows(n2, 'inbox'), tableRows(n1, 'inbox'));
  assert.deepEqual(tableRows(n2, 'meta'), tableRows(n1, 'meta'));
  assert.equal(n2.status.phase, 'standby');
});

test('entries whose publication was lost are read from the stream by the standby (head beat), so quorum writes still complete', async () => {
  let dropped = 0;
  hub.drop = (subject) => subject === names.entrySubject(G) && dropped++ < 2;
  const t = n1.served[0]!.storage.table('inbox');
  const a = t.put(['gap', 1], utf8.encode('x'));
  await new Promise((r) => setImmediate(r));
  const b = t.put(['gap', 2], utf8.encode('y'));
  assert.deepEqual(await Promise.all([a, b]), [OK, OK]);
  hub.drop = () => false;
  await waitUntil('n2 caught up after the gap', () => n2.status.appliedSeq === n1.status.appliedSeq && n1.status.appliedSeq === 8, 5_000);
  assert.deepEqual(tableRows(n2, 'inbox'), tableRows(n1, 'inbox'));
});

test('a failover by the standby fences the old owner: its next write fails unavailable, its services stop, it follows the new owner', async () => {
  const oldStorage = n1.served[0]!.storage;
  const oldServices = n1.served[0]!.pid;
  send(n2, { t: 'take_over', reason: 'failover' });
  await waitUntil('n2 serving', () => n2.status.phase === 'owner');
  const { record } = await currentRecord();
  assert.deepEqual({ epoch: record.epoch, owner: record.owner, reason: record.reason, standbys: record.standbys }, { epoch: 3, owner: 'n2', reason: 'failover', standbys: ['n1'] });
  const stale = await oldStorage.table('inbox').put(['stale'], utf8.encode('no'));
  assert.equal(stale.ok ? 'ok' : stale.reason, 'unavailable');
  await waitUntil('n1 stepped down', () => n1.status.phase === 'standby' && !s.isAlive(oldServices));
  // Nothing of epoch 2 after epoch 3's marker.
  const ids = streams.entries(STREAM).map((e) => e.msgId);
  assert.deepEqual(ids.slice(ids.indexOf('3.0')), ['3.0']);
  assert.equal(n2.local.table(groupTableName(G, 'inbox')).get(['stale']), undefined);
  // n1 now stands by for n2: n2's quorum writes complete with n1's reports.
  const t = n2.served[0]!.storage.table('inbox');
  assert.deepEqual(await t.put(['after-failover'], utf8.encode('z')), OK);
  await waitUntil('n1 follows n2', () => n1.status.appliedSeq === n2.status.appliedSeq);
  assert.deepEqual(tableRows(n1, 'inbox'), tableRows(n2, 'inbox'));
});

test('a hand-off to the standby loses and duplicates nothing: the successor serves from the hand-off entry on', async () => {
  const before = await currentRecord();
  const announce: OwnershipRecord = { ...before.record, epoch: before.record.epoch + 1, successor: 'n1', reason: 'rebalance' };
  assert.ok((await control.writeGroup(announce, before.seq)).ok);
  const t = n2.served[0]!.storage.table('inbox');
  const inflight = [t.put(['h', 1], utf8.encode('1')), t.put(['h', 2], utf8.encode('2'))];
  send(n2, { t: 'hand_off', to: 'n1' });
  assert.deepEqual(await Promise.all(inflight), [OK, OK]);
  await waitUntil('n1 serving after the hand-off', () => n1.status.phase === 'owner', 5_000);
  await waitUntil('n2 handed off', () => n2.status.phase === 'handed_off' || n2.status.phase === 'standby');
  const { record } = await currentRecord();
  assert.deepEqual({ epoch: record.epoch, owner: record.owner, reason: record.reason, standbys: record.standbys, successor: record.successor }, { epoch: 5, owner: 'n1', reason: 'handoff', standbys: ['n2'], successor: null });
  const entries = streams.entries(STREAM);
  const kinds = entries.map((e) => decodeEntry(e.data)!.t);
  const handoffAt = kinds.indexOf('handoff');
  assert.ok(handoffAt > 0);
  assert.equal(entries[handoffAt + 1]!.msgId, '5.0');
  assert.equal(entries.length, handoffAt + 2);
  // Every write acknowledged before is on the new owner, once.
  const rows = tableRows(n1, 'inbox');
  for (const key of [['h', 1], ['h', 2], ['after-failover'], ['gap', 1], [0, 'a'], [4, 'b']]) assert.ok(rows.some((r) => JSON.stringify(r.key) === JSON.stringify(key)), `missing ${JSON.stringify(key)}`);
  const refused = await t.put(['too-late'], utf8.encode('x'));
  assert.equal(refused.ok ? 'ok' : refused.reason, 'unavailable');
  const t1 = n1.served.at(-1)!.storage.table('inbox');
  assert.deepEqual(await t1.put(['new-owner'], utf8.encode('ok')), OK);
  await waitUntil('n2 follows n1', () => n2.status.appliedSeq === n1.status.appliedSeq);
  assert.deepEqual(tableRows(n2, 'inbox'), tableRows(n1, 'inbox'));
});

/** A node whose LMDB already holds group G's copy up to `seq` (applied Msg-Id `msgId`) and one row. */
async function startNodeWithCopy(name: string, seq: number, msgId: string, known?: { record: OwnershipRecord; seq: number }): Promise<Node> {
  const dir = tempDir(`iris-replica-${name}-`);
  const seed = openStorage(dir.path);
  assert.deepEqual(
    await seed.batch([
      { type: 'put', table: groupTableName(G, 'inbox'), key: ['restored'], value: utf8.encode('r') },
      { type: 'put', table: groupTableName(G, META_TABLE), key: APPLIED_KEY, value: encodeValue([seq, msgId]) },
    ]),
    OK,
  );
  await seed.close();
  return startNode(name, dir, known);
}

async function stopNode(n: Node): Promise<void> {
  if (s.isAlive(n.pid)) s.kill(n.pid);
  await n.local.close();
  n.remove();
}

test('a local copy that is not a prefix of the stream (another Msg-Id where it applied its last entry) is refused, kept, and nothing is applied to it', async () => {
  const third = streams.entries(STREAM)[2]!;
  assert.notEqual(third.msgId, '9.9');
  const n3 = await startNodeWithCopy('n3', third.seq, '9.9');
  try {
    await waitUntil('n3 refused its copy', () => n3.status.phase === 'failed', 5_000);
    assert.match(n3.status.lastError ?? '', new RegExp(`entry ${third.seq} of stream .* is ${third.msgId!.replace('.', '\\.')} but the local copy applied 9\\.9 .*local copy was kept`));
    assert.deepEqual(tableRows(n3, 'inbox').map((r) => r.key), [['restored']]);
    assert.equal(n3.status.appliedSeq, third.seq);
  } finally {
    await stopNode(n3);
  }
});

test('a copy whose next entries were trimmed from the stream (a new node, a stale backup) is replaced by a peer snapshot and follows the stream from there', async () => {
  const t = n1.served.at(-1)!.storage.table('inbox');
  assert.deepEqual(await t.put(['before-trim'], utf8.encode('b')), OK);
  const last = streams.entries(STREAM).at(-1)!.seq;
  streams.trim(STREAM, last - 1);
  const known = await currentRecord();
  const n4 = startNode('n4', undefined, known);
  const stale = await startNodeWithCopy('n5', 2, streams.entries(STREAM)[0]!.msgId!, known);
  try {
    await waitUntil('n4 and n5 caught up by snapshot', () => n4.status.appliedSeq === n1.status.appliedSeq && stale.status.appliedSeq === n1.status.appliedSeq, 5_000);
    assert.equal(n4.status.phase, 'standby');
    assert.equal(stale.status.phase, 'standby');
    // The snapshot replaced the stale copy whole: its own row is gone, the owner's are there.
    for (const n of [n4, stale]) for (const table of ['inbox', 'meta']) assert.deepEqual(tableRows(n, table), tableRows(n1, table), `${n.name} ${table}`);
    // Then they follow the stream like any standby.
    assert.deepEqual(await t.put(['after-snapshot'], utf8.encode('a')), OK);
    await waitUntil('n4 and n5 follow n1', () => n4.status.appliedSeq === n1.status.appliedSeq && stale.status.appliedSeq === n1.status.appliedSeq);
    for (const n of [n4, stale]) assert.deepEqual(tableRows(n, 'inbox'), tableRows(n1, 'inbox'));
  } finally {
    await stopNode(n4);
    await stopNode(stale);
  }
});

test('a trimmed-away copy with no peer that can send a snapshot is refused loudly and kept, while the others go on', async () => {
  const last = streams.entries(STREAM).at(-1)!.seq;
  streams.trim(STREAM, last - 1);
  // No record known: no peer to ask.
  const n6 = startNode('n6');
  // A record naming only replicas that are not there.
  const ghost: OwnershipRecord = { ...(await currentRecord()).record, owner: 'gone1', standbys: ['gone2'] };
  const stale = await startNodeWithCopy('n7', 2, streams.entries(STREAM)[0]!.msgId!, { record: ghost, seq: 1_000 });
  try {
    await waitUntil('n6 and n7 refused', () => n6.status.phase === 'failed' && stale.status.phase === 'failed', 5_000);
    assert.match(n6.status.lastError ?? '', new RegExp(`the local copy ends at entry 0 but stream .* now starts at ${last - 1}: entries 1\\.\\.${last - 2} are gone.*no peer could send a snapshot of the group \\(no other replica recorded\\)`));
    assert.match(stale.status.lastError ?? '', new RegExp(`ends at entry 2 .* entries 3\\.\\.${last - 2} are gone.*gone1: snapshot request: no_responders; gone2: snapshot request: no_responders`));
    assert.deepEqual(tableRows(n6, 'inbox'), []);
    assert.deepEqual(tableRows(stale, 'inbox').map((r) => r.key), [['restored']]);
    // The owner and its standby, current, are not affected.
    const t = n1.served.at(-1)!.storage.table('inbox');
    assert.deepEqual(await t.put(['after-trim'], utf8.encode('t')), OK);
    await waitUntil('n2 follows n1 after the trim', () => n2.status.appliedSeq === n1.status.appliedSeq);
  } finally {
    await stopNode(n6);
    await stopNode(stale);
  }
});
