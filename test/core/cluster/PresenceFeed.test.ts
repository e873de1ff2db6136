/**
 * The presence feed over the in-memory core-NATS fake: a shard's changes on one node reach every
 * other node's table in one message per turn; a node that starts late gets the owner's snapshot
 * of each group (paged), asked again until the owner the table names answers, and a live change
 * that crossed it is not undone by it; a node does not re-apply its own publications; only the
 * owner of a user's group is listened to about the user; a change lost on the way is noticed
 * by the gap in the sender's batch numbers (at the latest at its next beat) and repaired by a
 * snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterNames } from '../../../core/cluster/ClusterNames.js';
import { OwnershipTable, type OwnershipRecord } from '../../../core/cluster/OwnershipTable.js';
import { PresenceFeed } from '../../../core/cluster/PresenceFeed.js';
import { ShardGroups } from '../../../core/cluster/ShardGroups.js';
import { PRESENCE_BEAT_MS, PRESENCE_SNAPSHOT_CHUNK } from '../../../core/defaults.js';
import { PresenceTable } from '../../../core/Presence.js';
import { userKey } from '../../../core/UserId.js';
import type { ClusterTransport } from '../../../runtime/Env.js';
import { decodeValue } from '../../../runtime/Envelope.js';
import { testEnv } from '../../support/kernel.js';
import { MemoryHub } from '../../support/memoryTransport.js';
import { waitUntil } from '../../support/serviceKit.js';

const names = clusterNames('presence-unit');
const groups = new ShardGroups(4);
const utf8 = new TextEncoder();
const u = (s: string) => userKey(utf8.encode(s));

function ownedBy(owner: string): OwnershipTable {
  const t = new OwnershipTable(groups.count);
  for (const g of groups.all()) t.apply({ group: g, epoch: 1, owner, ownerIncarnation: 1, standbys: [], successor: null, reason: 'bootstrap' } satisfies OwnershipRecord, g + 1);
  return t;
}

function feed(hub: MemoryHub, node: string, table: PresenceTable, ownership: OwnershipTable): PresenceFeed {
  return new PresenceFeed({ env: testEnv(), transport: hub.connect(), names, node, table, groups, ownership });
}

/** Nodes n1 and n2, both started, whose tables name n1 the owner of every group. */
function twoNodes(): { hub: MemoryHub; t1: PresenceTable; t2: PresenceTable; f1: PresenceFeed; f2: PresenceFeed } {
  const hub = new MemoryHub();
  const t1 = new PresenceTable();
  const t2 = new PresenceTable();
  const f1 = feed(hub, 'n1', t1, ownedBy('n1'));
  const f2 = feed(hub, 'n2', t2, ownedBy('n1'));
  f1.start();
  f2.start();
  return { hub, t1, t2, f1, f2 };
}

test('changes made by one node\'s shards reach the other nodes in one message per turn, and nobody re-applies its own', async () => {
  const { hub, t1, t2, f1, f2 } = twoNodes();
  let messages = 0;
  hub.connect().subscribe(names.presence, (d) => {
    if (((decodeValue(d) as unknown[])[1] as unknown[]).length > 0) messages++; // not the empty beats
  });
  t1.setOnline(u('alice'));
  t1.setOnline(u('bob'));
  t1.setOffline(u('bob'), 1234);
  await waitUntil('n2 sees alice and bob', () => t2.status(u('alice')).online && t2.status(u('bob')).lastSeen === 1234);
  assert.equal(messages, 1);
  assert.deepEqual(t2.status(u('bob')), { online: false, lastSeen: 1234 });
  assert.equal(f1.stats.applied, 0);
  f1.stop();
  f2.stop();
});

test('a node that starts late gets each group\'s snapshot from its owner, page by page', async () => {
  const hub = new MemoryHub();
  const t1 = new PresenceTable();
  const f1 = feed(hub, 'n1', t1, ownedBy('n1'));
  f1.start();
  const n = PRESENCE_SNAPSHOT_CHUNK * 2 + 7;
  for (let i = 0; i < n; i++) t1.apply(u(`user${i}`), i % 2 === 0, i % 2 === 0 ? 0 : 1000 + i);
  const t2 = new PresenceTable();
  const f2 = feed(hub, 'n2', t2, ownedBy('n1'));
  f2.start();
  await waitUntil('n2 has every group\'s snapshot', () => f2.stats.snapshots === groups.count, 5_000);
  for (let i = 0; i < n; i++) assert.deepEqual(t2.status(u(`user${i}`)), t1.status(u(`user${i}`)));
  f1.stop();
  f2.stop();
});

test('only the owner of a user\'s group speaks for the user: a deposed owner\'s change reaches neither the other nodes nor the owner', async () => {
  const hub = new MemoryHub();
  const t1 = new PresenceTable();
  const t2 = new PresenceTable();
  const t3 = new PresenceTable();
  // n1 owns every group now; n2 owned them before and still publishes what its sessions did.
  const f1 = feed(hub, 'n1', t1, ownedBy('n1'));
  const f2 = feed(hub, 'n2', t2, ownedBy('n1'));
  const f3 = feed(hub, 'n3', t3, ownedBy('n1'));
  for (const f of [f1, f2, f3]) f.start();
  t1.setOnline(u('alice'));
  await waitUntil('n3 sees alice online', () => t3.status(u('alice')).online);
  t2.setOffline(u('alice'), 99);
  await waitUntil('n1 and n3 heard n2', () => f1.stats.notFromOwner === 1 && f3.stats.notFromOwner === 1);
  assert.equal(t1.status(u('alice')).online, true);
  assert.equal(t3.status(u('alice')).online, true);
  for (const f of [f1, f2, f3]) f.stop();
});

test('a snapshot is had from the owner the table names: a node that still believes it owns the group does not answer, and a request nobody answered is asked again', async () => {
  const hub = new MemoryHub();
  // n3 owned every group before and has not heard otherwise; n1 owns them now but starts last.
  const t3 = new PresenceTable();
  const f3 = feed(hub, 'n3', t3, ownedBy('n3'));
  f3.start();
  t3.setOffline(u('alice'), 7);
  const t2 = new PresenceTable();
  const f2 = feed(hub, 'n2', t2, ownedBy('n1'));
  f2.start();
  await waitUntil('n2 failed to get the snapshots once', () => f2.stats.snapshotFailures >= groups.count);
  assert.equal(f2.stats.snapshots, 0);
  const t1 = new PresenceTable();
  t1.setOnline(u('alice'));
  const f1 = feed(hub, 'n1', t1, ownedBy('n1'));
  f1.start();
  await waitUntil('n2 has every group\'s snapshot from n1', () => f2.stats.snapshots === groups.count, 5_000);
  assert.equal(t2.status(u('alice')).online, true);
  for (const f of [f1, f2, f3]) f.stop();
});

test('a snapshot answered before a live change but applied after it leaves that user\'s newer state', async () => {
  const hub = new MemoryHub();
  const t1 = new PresenceTable();
  t1.setOffline(u('alice'), 5);
  const f1 = feed(hub, 'n1', t1, ownedBy('n1'));
  f1.start();
  // n2's snapshot answers are held until the test lets them through (a reply whose handling comes late).
  let answered = 0;
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const base = hub.connect();
  const slow: ClusterTransport = {
    ...base,
    request: async (subject, data, ms) => {
      const r = await base.request(subject, data, ms);
      answered++;
      await held;
      return r;
    },
  };
  const t2 = new PresenceTable();
  const f2 = new PresenceFeed({ env: testEnv(), transport: slow, names, node: 'n2', table: t2, groups, ownership: ownedBy('n1') });
  f2.start();
  await waitUntil('n1 answered every snapshot request (alice offline)', () => answered === groups.count);
  t1.setOnline(u('alice'));
  await waitUntil('the live change reached n2', () => t2.status(u('alice')).online);
  release();
  await waitUntil('n2 applied every snapshot', () => f2.stats.snapshots === groups.count);
  assert.equal(t2.status(u('alice')).online, true);
  f1.stop();
  f2.stop();
});

test('a change lost on the way is noticed by the gap in its sender\'s numbered batches, at the latest at the sender\'s next beat, and repaired by a snapshot', async () => {
  const { hub, t1, t2, f1, f2 } = twoNodes();
  try {
    await waitUntil('n2 has every group\'s first snapshot', () => f2.stats.snapshots === groups.count, 5_000);
    t1.setOnline(u('alice'));
    await waitUntil('n2 sees alice', () => t2.status(u('alice')).online);
    // bob's change is lost (core NATS is at most once), and n1 publishes nothing after it.
    hub.drop = (subject) => subject === names.presence;
    t1.setOnline(u('bob'));
    await new Promise((r) => setImmediate(r));
    hub.drop = () => false;
    assert.equal(t2.status(u('bob')).online, false);
    await waitUntil('the next beat shows the gap and the snapshot brings bob', () => t2.status(u('bob')).online, PRESENCE_BEAT_MS * 4);
    assert.equal(f2.stats.gaps, 1);
  } finally {
    f1.stop();
    f2.stop();
  }
});
