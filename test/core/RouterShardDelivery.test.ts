/**
 * RouterShard delivery (core/RouterShard.ts), as pure logic over a fake Inbox whose writes
 * the test settles by hand: a message reaches the recipient's session only once its inbox
 * write is durable; deliveries to one recipient keep append order when writes settle out of
 * order; a failed write is never delivered, its sender hears `storage_unavailable`, and a
 * SEND_SEQ whose write failed is given back at once so a resend of it is taken; inbox reads
 * wait while the shard is not readable (safe mode).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendResult, Inbox, InboxPage } from '../../core/Inbox.js';
import type { Delivery, DirectMessage, Notice } from '../../core/Delivery.js';
import { newCoreCounters } from '../../core/CoreCounters.js';
import { PresenceTable } from '../../core/Presence.js';
import { routerShard, type RouterMessage } from '../../core/RouterShard.js';
import { userBytes, userKey, type UserKey } from '../../core/UserId.js';
import type { StorageEngine } from '../../runtime/Env.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { SimDisk, SimStorageEngine } from '../../sim/SimStorage.js';
import { SimWorld } from '../../sim/SimWorld.js';
import { newScheduler, spawnProbe, until, type Probe } from '../support/kernel.js';

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const ALICE = userKey(text('alice'));
const BOB = userKey(text('bob'));
const SENDER = text('sender');

/** One append the fake inbox took: its id, and the handle to settle its write. */
interface PendingAppend {
  user: UserKey;
  payload: string;
  id: Uint8Array;
  settle(durable: boolean): void;
}

/** An Inbox whose writes become durable (or fail) only when the test says so. */
class ManualInbox implements Inbox {
  readonly appends: PendingAppend[] = [];
  /** When set, append may first do this (a fake that also writes through the storage). */
  onAppend: ((a: PendingAppend) => Promise<boolean> | null) | null = null;

  append(user: UserKey, rec: Delivery): AppendResult {
    const payload = (rec as DirectMessage).body;
    let settle!: (durable: boolean) => void;
    const own = new Promise<boolean>((r) => (settle = r));
    const id = new Uint8Array(16);
    new DataView(id.buffer).setUint32(12, this.appends.length + 1);
    const a: PendingAppend = { user, payload: decode(payload), id, settle };
    this.appends.push(a);
    const through = this.onAppend?.(a) ?? null;
    return { ok: true, id, durable: through ?? own };
  }

  storeNotice(): boolean {
    return true;
  }

  page(): Promise<InboxPage> {
    return Promise.resolve({ items: [], more: false });
  }

  takeNotices(): Promise<Notice[]> {
    return Promise.resolve([]);
  }

  ack(): Promise<boolean> {
    return Promise.resolve(true);
  }
}

interface ShardRig {
  sched: Scheduler;
  shard: Pid;
  inbox: ManualInbox;
  presence: PresenceTable;
  world: SimWorld;
  disk: SimDisk;
  storage: StorageEngine;
  /** A probe registered as `user`'s session (after its `registered` reply). */
  session(user: UserKey): Promise<Probe>;
  route(to: UserKey, payload: string, opts?: { replyTo?: Pid; seq?: bigint }): void;
  /**
   * Wait until the shard has handled everything sent to it so far: a register for a marker
   * user is answered in order after every earlier message.
   */
  sync(): Promise<void>;
}

function shardRig(opts: { readable?: () => boolean } = {}): ShardRig {
  const sched = newScheduler();
  const inbox = new ManualInbox();
  const presence = new PresenceTable();
  const world = new SimWorld({ seed: 17 });
  const owner: SimOwner = { name: 'shard-node', alive: true, pausedUntil: 0, backlog: [] };
  const disk = new SimDisk();
  const storage = new SimStorageEngine(world, owner, disk, world.random('disk'));
  const shard = sched.spawn(routerShard({ inbox, presence, storage, counters: newCoreCounters(), ...opts }));
  const marker = spawnProbe(sched);
  let syncs = 0;
  const send = (m: RouterMessage) => sched.send(shard, m, null);
  return {
    sched,
    shard,
    inbox,
    presence,
    world,
    disk,
    storage,
    async session(user) {
      const p = spawnProbe(sched);
      send({ t: 'register', user, session: p.pid });
      await p.next((m) => (m as { t: string }).t === 'registered');
      return p;
    },
    route(to, payload, opts = {}) {
      send({ t: 'route', to, rec: { k: 'direct', from: SENDER, body: text(payload), format: 'opaque' }, replyTo: opts.replyTo ?? null, ...(opts.seq !== undefined ? { seq: opts.seq } : {}) });
    },
    async sync() {
      send({ t: 'register', user: userKey(text(`marker-${syncs++}`)), session: marker.pid });
      await marker.next((m) => (m as { t: string }).t === 'registered');
    },
  };
}

type Delivered = { t: 'deliver'; id: Uint8Array; rec: DirectMessage };
const isDeliver = (m: unknown): m is Delivered => (m as { t?: string }).t === 'deliver';
const deliveries = (p: Probe) => p.received.filter(isDeliver).map((m) => decode(m.rec.body));
const isRefusal = (m: unknown) => (m as { t?: string }).t === 'route_refused';

test('a message reaches the recipient only once its inbox write is durable', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  rig.route(ALICE, 'hello');
  await rig.sync();
  assert.equal(rig.inbox.appends.length, 1);
  assert.equal(rig.inbox.appends[0]!.user, ALICE);
  // Written but not durable: the shard has handled the route and holds the message back.
  assert.deepEqual(deliveries(alice), []);
  rig.inbox.appends[0]!.settle(true);
  const d = await alice.next<Delivered>(isDeliver);
  assert.equal(decode(d.rec.body), 'hello');
  assert.deepEqual(d.id, rig.inbox.appends[0]!.id);
});

test('deliveries to one recipient keep append order when the writes settle out of order', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  const bob = await rig.session(BOB);
  for (const p of ['a1', 'a2', 'a3']) rig.route(ALICE, p);
  rig.route(BOB, 'b1');
  await rig.sync();
  const [a1, a2, a3, b1] = rig.inbox.appends;
  a3!.settle(true);
  a2!.settle(true);
  b1!.settle(true);
  // Another recipient's settled write is not held back by alice's first one.
  assert.equal(decode((await bob.next<Delivered>(isDeliver)).rec.body), 'b1');
  await rig.sync();
  assert.deepEqual(deliveries(alice), [], 'a2 and a3 wait for a1');
  a1!.settle(true);
  await until(() => deliveries(alice).length === 3, 2000, 'three deliveries to alice');
  assert.deepEqual(deliveries(alice), ['a1', 'a2', 'a3']);
  const ids = alice.received.filter(isDeliver).map((m) => m.id);
  assert.deepEqual(ids, [a1!.id, a2!.id, a3!.id]);
});

test('a failed write is not delivered, its sender hears storage_unavailable, and later messages still arrive in order', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  const sender = spawnProbe(rig.sched);
  for (const p of ['m1', 'm2', 'm3']) rig.route(ALICE, p, { replyTo: sender.pid });
  await rig.sync();
  const [m1, m2, m3] = rig.inbox.appends;
  m3!.settle(true);
  m2!.settle(false);
  m1!.settle(true);
  await until(() => deliveries(alice).length === 2, 2000, 'two deliveries to alice');
  assert.deepEqual(deliveries(alice), ['m1', 'm3']);
  assert.deepEqual(await sender.next(isRefusal), { t: 'route_refused', code: 'storage_unavailable' });
  await rig.sync();
  assert.equal(sender.received.filter(isRefusal).length, 1, 'one refusal, for the one failed write');
});

test('a repeated SEND_SEQ is dropped while its first copy is taken', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  rig.route(ALICE, 'seq 1', { seq: 1n });
  rig.route(ALICE, 'seq 1 again', { seq: 1n });
  rig.route(ALICE, 'seq 2', { seq: 2n });
  await rig.sync();
  assert.deepEqual(rig.inbox.appends.map((a) => a.payload), ['seq 1', 'seq 2']);
  for (const a of rig.inbox.appends) a.settle(true);
  await until(() => deliveries(alice).length === 2, 2000, 'two deliveries');
  assert.deepEqual(deliveries(alice), ['seq 1', 'seq 2']);
});

test('a failed write gives its SEND_SEQ back: a resend of the same seq is taken and delivered', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  const sender = spawnProbe(rig.sched);
  rig.route(ALICE, 'first try', { seq: 1n, replyTo: sender.pid });
  await rig.sync();
  // The shard's own seq record reaches the disk; only the message's write fails.
  await rig.world.runUntil(10);
  assert.equal(rig.disk.stats.groups, 1);
  rig.inbox.appends[0]!.settle(false);
  assert.deepEqual(await sender.next(isRefusal), { t: 'route_refused', code: 'storage_unavailable' });
  rig.route(ALICE, 'resent', { seq: 1n, replyTo: sender.pid });
  await rig.sync();
  assert.deepEqual(rig.inbox.appends.map((a) => a.payload), ['first try', 'resent'], 'the resend of seq 1 was dropped as a repeat');
  rig.inbox.appends[1]!.settle(true);
  const d = await alice.next<Delivered>(isDeliver);
  assert.equal(decode(d.rec.body), 'resent');
});

test('a SEND_SEQ whose write failed is free for its resend at once, while an earlier write to the recipient is still in flight', async () => {
  const rig = shardRig();
  await rig.session(ALICE);
  rig.route(ALICE, 'earlier, still being written');
  rig.route(ALICE, 'first try', { seq: 1n });
  await rig.sync();
  rig.inbox.appends[1]!.settle(false);
  await rig.sync();
  // Deliveries and refusals wait behind the earlier write; the number does not.
  rig.route(ALICE, 'resent', { seq: 1n });
  await rig.sync();
  assert.deepEqual(rig.inbox.appends.map((a) => a.payload), ['earlier, still being written', 'first try', 'resent']);
});

test('SEND_SEQ numbers whose writes failed together are all free again, whichever settles first', async () => {
  const rig = shardRig();
  await rig.session(ALICE);
  rig.route(ALICE, 'one', { seq: 1n });
  rig.route(ALICE, 'two', { seq: 2n });
  await rig.sync();
  rig.inbox.appends[0]!.settle(false);
  rig.inbox.appends[1]!.settle(false);
  await rig.sync();
  rig.route(ALICE, 'one again', { seq: 1n });
  rig.route(ALICE, 'two again', { seq: 2n });
  await rig.sync();
  assert.deepEqual(rig.inbox.appends.map((a) => a.payload), ['one', 'two', 'one again', 'two again']);
});

test('when the message and its SEND_SEQ fail in one storage group, a resend of the same seq is taken', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  const sender = spawnProbe(rig.sched);
  // This fake inbox writes through the shard's storage, so both writes share one group.
  rig.inbox.onAppend = (a) => rig.storage.table('inbox').put([userBytes(a.user), a.id], text(a.payload)).then((r) => r.ok);
  rig.disk.faults.full = true;
  rig.route(ALICE, 'first try', { seq: 1n, replyTo: sender.pid });
  await rig.sync();
  await rig.world.runUntil(10);
  assert.deepEqual(rig.disk.stats, { groups: 0, failedGroups: 1, writes: 0 });
  assert.deepEqual(await sender.next(isRefusal), { t: 'route_refused', code: 'storage_unavailable' });
  rig.disk.faults.full = false;
  rig.route(ALICE, 'resent', { seq: 1n, replyTo: sender.pid });
  await rig.sync();
  assert.deepEqual(rig.inbox.appends.map((a) => a.payload), ['first try', 'resent']);
  await rig.world.runUntil(20);
  const d = await alice.next<Delivered>(isDeliver);
  assert.equal(decode(d.rec.body), 'resent');
  assert.deepEqual(deliveries(alice), ['resent']);
});

test('a message for a user with no session is stored and not delivered anywhere', async () => {
  const rig = shardRig();
  const alice = await rig.session(ALICE);
  rig.route(BOB, 'for bob');
  await rig.sync();
  rig.inbox.appends[0]!.settle(true);
  await rig.sync();
  await rig.sync(); // the settle's `stored` note has been handled by now
  assert.equal(rig.inbox.appends.length, 1);
  assert.deepEqual(deliveries(alice), []);
  assert.equal(rig.presence.status(BOB).online, false);
  assert.equal(rig.presence.status(ALICE).online, true);
});

test('a shard that may no longer own its group (safe mode) leaves inbox reads unanswered, and answers them again once readable', async () => {
  let readable = false;
  const rig = shardRig({ readable: () => readable });
  const reader = spawnProbe(rig.sched);
  const read = (): void => rig.sched.send(rig.shard, { t: 'inbox_read', user: ALICE, afterId: null, maxCount: 10, maxBytes: 1 << 16, notices: 0, replyTo: reader.pid, ref: rig.sched.makeRef() } satisfies RouterMessage, null);
  const isReply = (m: unknown) => (m as { t?: string }).t === 'inbox_read_reply';
  read();
  await rig.sync();
  await reader.nothing(isReply, 50);
  readable = true;
  read();
  await reader.next(isReply);
});
