/**
 * GroupReplica's transitions on the in-memory StreamStore and core-NATS fakes, two nodes on one
 * scheduler, each with its own LMDB: a standby follows the owner (and fills lost publications
 * from the stream), reaching byte-equal tables; the owner claims (epoch + 1) and writes its
 * marker before serving; a failover by the standby fences the old owner, whose services stop
 * and which turns standby of the new one; a hand-off to a standby loses nothing and the
 * successor serves from the hand-off entry on; messages that reach a replica while its services
 * start (a start that waits in a selective receive, as Supervisor.startLink does) wait for it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterNames } from '../../../core/cluster/ClusterNames.js';
import { groupReplica, newReplicaStatus, type ReplicaCommand, type ReplicaStatus } from '../../../core/cluster/GroupReplica.js';
import type { GroupServicesDeps } from '../../../core/cluster/GroupServices.js';
import { ControlStream, OwnershipTable, type OwnershipRecord } from '../../../core/cluster/OwnershipTable.js';
import { groupTableName, ShardGroups } from '../../../core/cluster/ShardGroups.js';
import { decodeEntry, shardStreamSpec } from '../../../core/cluster/ShardStream.js';
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

/** One NATS of the tests: streams, core subjects, the control stream with group G's bootstrap record. */
interface World {
  streams: MemoryStreams;
  hub: MemoryHub;
  control: ControlStream;
}

async function newWorld(owner: string, standbys: string[]): Promise<World> {
  const w: World = { streams: new MemoryStreams(), hub: new MemoryHub(), control: null as unknown as ControlStream };
  w.control = new ControlStream(w.streams, names, 3);
  await w.control.ensure();
  await w.streams.ensureStream(shardStreamSpec(names, G, 3));
  const boot: OwnershipRecord = { group: G, epoch: 1, owner, ownerIncarnation: 1, standbys, successor: null, reason: 'bootstrap' };
  assert.ok((await w.control.writeGroup(boot, 0)).ok);
  return w;
}

type StartServices = NonNullable<Parameters<typeof groupReplica>[0]['startServices']>;

function startNode(name: string, world: World = { streams, hub, control }, startServices?: StartServices): Node {
  const dir = tempDir(`iris-replica-${name}-`);
  const local = openStorage(dir.path);
  const table = new OwnershipTable(1);
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
      streams: world.streams,
      transport: world.hub.connect(),
      local,
      table,
      control: world.control,
      durability: 'quorum',
      status,
      controlPlane: plane.pid,
      writable: () => true,
      mayClaim: (r, reason) => (reason === 'handoff' ? r?.successor === name : true),
      standbyCandidates: () => new Set(['n1', 'n2']),
      services,
      startServices: async (ctx, g, storage, deps) => {
        if (startServices !== undefined) {
          const r = await startServices(ctx, g, storage, deps);
          if (r.ok) served.push({ storage, pid: r.pid });
          return r;
        }
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

const others: Node[] = [];

before(async () => {
  s = newScheduler(testEnv());
  ({ streams, hub, control } = await newWorld('n1', ['n2']));
  n1 = startNode('n1');
  n2 = startNode('n2');
});

after(async () => {
  s.shutdown('shutdown');
  for (const n of [n1, n2, ...others]) {
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

test('messages that reach a replica while its services start (the start waits in a selective receive, as Supervisor.startLink does) wait for it: the replica serves', async () => {
  const world = await newWorld('n3', []);
  let waiting = false;
  const n3 = startNode('n3', world, async (ctx) => {
    const svc = ctx.spawnLink(() => () => undefined, { label: 'fake-services' });
    waiting = true;
    const ack = await ctx.receive((m) => m === 'services_ready', 5_000);
    waiting = false;
    return ack === 'services_ready' ? { ok: true, pid: svc } : { ok: false, message: 'no ack' };
  });
  others.push(n3);
  send(n3, { t: 'take_over', reason: 'bootstrap' });
  await waitUntil('n3 starting its services', () => waiting);
  const { record } = await (async () => {
    const r = await world.control.readGroup(G);
    assert.ok(r.ok && r.value !== undefined);
    return { record: r.value };
  })();
  // A message the replica handles while the start's receive is pending (an ownership record).
  send(n3, { t: 'record', record });
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(s.isAlive(n3.pid), 'the replica is alive while its services start');
  s.send(n3.pid, 'services_ready', null);
  await waitUntil('n3 serving', () => n3.status.phase === 'owner');
  assert.ok(s.isAlive(n3.pid));
  assert.equal(n3.served.length, 1);
});
