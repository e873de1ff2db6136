/**
 * Backup and restore of a clustered node with real processes: `iris start` children on a real
 * 3-server NATS cluster (JetStream R3), real LMDB, v1 clients over real sockets. In order:
 *
 * - a core node is backed up (`iris backup`) while clients send; its manifest holds every shard
 *   group's applied stream position; it is killed (-9), its data directory wiped and restored
 *   (`iris restore`), and started again: its replicas catch up on the shard streams from the
 *   restored positions and it takes groups back; every message sent was delivered once and in
 *   order, and nothing acknowledged comes back — also when read from the restored node;
 * - a new node with an empty data directory (no backup) catches up from the streams alike and
 *   serves the groups it is given, with nothing acknowledged coming back.
 *
 * Set CLUSTER_TEST_LOG=1 to have the nodes log at info level (shown when a wait times out).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardGroups } from '../../core/cluster/ShardGroups.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import type { BackupManifest } from '../../server/BackupManifest.js';
import type { ClusterStatusBody } from '../../server/ServiceCore.js';
import { runIrisCli } from '../support/irisCli.js';
import { loginOn, onePerGroup as usersPerGroup } from '../support/clusterClients.js';
import { IrisCluster } from '../support/irisCluster.js';
import { V1TestClient, text } from '../support/V1TestClient.js';

type Reliable = Extract<ServerFrame, { kind: 'reliable_msg' }>;

const GROUPS = new ShardGroups(6);
/** Messages stored for each offline user before the backup. */
const STORED = 300;
let c: IrisCluster;
let backups: string;
const clients: V1TestClient[] = [];

before(async () => {
  backups = mkdtempSync(join(tmpdir(), 'iris-cluster-backups-'));
  c = await IrisCluster.start();
  await Promise.all(['a', 'b', 'c'].map((n) => c.startNode(n)));
  await c.waitSettled();
});

after(async () => {
  for (const x of clients) x.close();
  await c?.close();
  rmSync(backups, { recursive: true, force: true });
});

const login = (node: string, user: string): Promise<V1TestClient> => loginOn(c, clients, node, user);

const onePerGroup = (prefix: string): string[] => usersPerGroup(GROUPS, prefix);

/** Per user, the marker left stored (not acknowledged) by the last drain. */
const leftStored = new Map<string, string>();

/**
 * Everything stored for `me` (in order), read up to a marker `<tag>-a` it sends itself, all
 * acknowledged; then a second marker `<tag>-b` is sent and awaited but not acknowledged: waiting
 * acknowledgements go out before any route to the user's own group, so once it is back every
 * acknowledgement before it is durable, and `<tag>-b` is the one thing left stored.
 */
async function drainStored(x: V1TestClient, me: string, tag: string): Promise<string[]> {
  const next = () => x.next<Reliable>((m) => m.kind === 'reliable_msg', 20_000);
  x.send(me, `${tag}-a`);
  const out: string[] = [];
  for (let i = 0; ; i++) {
    if (i > 1_000) throw new Error('no marker');
    const f = await next();
    x.ack(f.msgId);
    if (text(f.msg) === `${tag}-a`) break;
    out.push(text(f.msg));
  }
  x.send(me, `${tag}-b`);
  assert.equal(text((await next()).msg), `${tag}-b`);
  leftStored.set(me, `${tag}-b`);
  return out;
}

/** A new login of `name` on `node` finds nothing stored but the marker its last drain left. */
async function nothingCameBack(node: string, name: string, tag: string, why: string): Promise<void> {
  const expected = leftStored.has(name) ? [leftStored.get(name)!] : [];
  const x = await login(node, name);
  assert.deepEqual(await drainStored(x, name, tag), expected, `${name}: ${why}`);
  x.close();
}

/** Groups `node` owns in `s`. */
const ownedBy = (s: ClusterStatusBody, node: string): number[] => s.groups.filter((g) => g.owner === node).map((g) => g.group);

/**
 * Senders on node `from` send `m:<k>` to each recipient (one sender each) every `everyMs`;
 * recipients read and acknowledge. `stop()` ends the sending and, once everything sent has
 * arrived (or the deadline passed), the reading; returns what each recipient got.
 */
async function traffic(from: string, to: string, names: string[], everyMs: number) {
  const senders = await Promise.all(names.map((_, i) => login(from, `bs${names[0]}-${i}`)));
  const recipients = await Promise.all(names.map((n) => login(to, n)));
  const got: number[][] = names.map(() => []);
  const sent = names.map(() => 0);
  let sending = true;
  let receiving = true;
  const readers = recipients.map(async (x, i) => {
    while (receiving && !x.closed) {
      const f = await x.next<Reliable>((m) => m.kind === 'reliable_msg', 200).catch(() => null);
      if (f === null) continue;
      x.ack(f.msgId);
      got[i]!.push(Number(text(f.msg).split(':')[1]));
    }
  });
  const writers = senders.map(async (x, i) => {
    for (let k = 1; sending && k < 100_000; k++) {
      x.send(names[i]!, `m:${k}`);
      sent[i] = k;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  });
  return {
    got,
    sent,
    async stop(): Promise<void> {
      sending = false;
      await Promise.all(writers);
      await c.waitFor('every message sent delivered', () => got.every((g, i) => g.length >= sent[i]!), 30_000).catch(() => undefined);
      receiving = false;
      await Promise.all(readers);
      // Make every acknowledgement durable before the connections close.
      for (const [i, x] of recipients.entries()) assert.deepEqual(await drainStored(x, names[i]!, 'flush'), [], `${names[i]}: nothing after the last message`);
      for (const x of recipients) x.close();
    },
  };
}

test('a core node backed up under traffic, killed, wiped and restored catches up from the shard streams: every message is delivered once and in order, and nothing acknowledged comes back', { timeout: 240_000 }, async () => {
  await c.waitSettled();
  const victim = c.node('c');
  const dir = victim.dir;
  // Stored messages: users of every group, offline, get STORED messages each.
  const offline = onePerGroup('bo');
  const body = 'z'.repeat(200);
  const stored = Array.from({ length: STORED }, (_, k) => `s:${k + 1}:${body}`);
  for (const [i, name] of offline.entries()) {
    const x = await login('a', `bso-${i}`);
    for (const m of stored) x.send(name, m);
  }
  const names = onePerGroup('br');
  const t = await traffic('a', 'b', names, 20);
  await c.waitFor('messages flowing', () => t.got.every((g) => g.length >= 10));
  await new Promise((r) => setTimeout(r, 1_000)); // the stored messages reach the streams and every copy

  const to = join(backups, 'c-1');
  const b = await runIrisCli(['backup', '--data-dir', dir, '--to', to, '--json', '--set', 'node_name=c', '--set', 'cluster_name=itest']);
  assert.equal(b.code, 0, b.stderr);
  const manifest = JSON.parse(b.stdout) as BackupManifest;
  assert.deepEqual([manifest.node, manifest.cluster], ['c', 'itest']);
  assert.deepEqual(manifest.groups.map((g) => g.group), [0, 1, 2, 3, 4, 5], 'every group is held by every node of three (owner or standby)');
  for (const g of manifest.groups) assert.ok(g.applied_seq > 0 && /^\d+\.\d+$/.test(g.applied_msg_id), `group ${g.group}: ${g.applied_seq} ${g.applied_msg_id}`);
  await new Promise((r) => setTimeout(r, 500)); // the streams move on past the backup

  await c.kill('c');
  rmSync(dir, { recursive: true, force: true });
  const tRestore = Date.now();
  const r = await runIrisCli(['restore', '--from', to, '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /each shard group catches up on its stream from: 0:\d+ 1:\d+ 2:\d+ 3:\d+ 4:\d+ 5:\d+/);
  const restoreMs = Date.now() - tRestore;
  await c.startNode('c', [], dir);
  const s = await c.waitFor(
    'the restored node caught up and serving groups again',
    async () => {
      const st = await c.waitSettled(60_000);
      return ownedBy(st, 'c').length === 2 && st.groups.every((g) => Object.values(g.standby_lag).every((l) => typeof l === 'number')) ? st : null;
    },
    90_000,
  );
  const caughtUpMs = Date.now() - tRestore;
  const sizes = `${manifest.files[0]!.bytes} bytes, ${manifest.records} records`;
  console.log(`# cluster node backup under traffic (${STORED * offline.length} messages stored before it): ${sizes}, ${b.ms} ms (command), ${manifest.took_ms} ms (copy + check + hash); restore ${restoreMs} ms; restore + start + catch-up until it owns ${ownedBy(s, 'c').join(',')} again ${caughtUpMs} ms`);
  await new Promise((r) => setTimeout(r, 500)); // keep sending to the groups it serves now
  await t.stop();
  for (let i = 0; i < names.length; i++) {
    assert.deepEqual(t.got[i], Array.from({ length: t.sent[i]! }, (_, k) => k + 1), `${names[i]} (group ${i}): every message once, in order`);
  }
  // What was stored for the offline users, read through the restored node: all of it, once, in order.
  for (const name of offline) assert.deepEqual(await drainStored(await login('c', name), name, 'read'), stored, `${name}: every stored message once, in order`);
  // Acknowledged means gone, also where the restored node serves the inbox.
  for (const name of names) await nothingCameBack('c', name, 'end-1', 'nothing acknowledged came back');
});

test('a new node with an empty data directory catches up from the shard streams and serves the groups it is given; nothing acknowledged comes back', { timeout: 180_000 }, async () => {
  const names = onePerGroup('bn');
  const t = await traffic('b', 'a', names, 20);
  await c.waitFor('messages flowing', () => t.got.every((g) => g.length >= 10));
  const t0 = Date.now();
  await c.startNode('d');
  const s = await c.waitFor(
    'the new node serving groups',
    async () => {
      const st = await c.waitSettled(60_000);
      return ownedBy(st, 'd').length >= 1 && st.groups.every((g) => Object.values(g.standby_lag).every((l) => typeof l === 'number')) ? st : null;
    },
    90_000,
  );
  console.log(`# new empty node: start + catch-up until it owns ${ownedBy(s, 'd').join(',')} ${Date.now() - t0} ms`);
  await new Promise((r) => setTimeout(r, 500)); // keep sending to the groups the new node serves now
  await t.stop();
  for (let i = 0; i < names.length; i++) {
    assert.deepEqual(t.got[i], Array.from({ length: t.sent[i]! }, (_, k) => k + 1), `${names[i]} (group ${i}): every message once, in order`);
  }
  for (const name of names) await nothingCameBack('d', name, 'end-2', 'nothing acknowledged came back');
  // Also the first test's users, whose messages were acknowledged long ago, on the new node's groups.
  for (const g of ownedBy(s, 'd')) await nothingCameBack('d', onePerGroup('br')[g]!, 'end-3', "nothing acknowledged came back from the new node's copy");
});
