/**
 * Shard-stream trimming and peer snapshots with real processes: `iris start` children on a real
 * 3-server NATS cluster (JetStream R3), real LMDB, v1 clients over real sockets, a short trim
 * interval and margin. Messages stored for offline users push every shard stream's first
 * sequence up (seen in each server's /jsz) past what a backup of node c holds; then c, wiped
 * and restored from that backup, and a new node d with an empty data directory, can only catch
 * up by a peer's snapshot. Both end up serving groups, and every stored message is read back
 * once, in order.
 *
 * Set CLUSTER_TEST_LOG=1 to have the nodes log at info level (shown when a wait times out).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterNames } from '../../core/cluster/ClusterNames.js';
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
const names = clusterNames('itest');
/** Messages stored per offline user before the backup, and after it. */
const BEFORE = 10;
const AFTER = 30;
const KEEP = 5;
let c: IrisCluster;
let backups: string;
const clients: V1TestClient[] = [];

before(async () => {
  backups = mkdtempSync(join(tmpdir(), 'iris-cluster-trim-'));
  c = await IrisCluster.start({ sets: ['stream_trim_interval_ms=300', `stream_keep_entries=${KEEP}`] });
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

/**
 * Store messages `s:<from>`..`s:<to>` for each user, sent from node a a round every 15 ms (so
 * they make many stream entries); resolves once every standby reports the owner's head.
 */
async function store(users: string[], from: number, to: number): Promise<void> {
  const x = await login('a', `ts-${from}`);
  for (let k = from; k <= to; k++) {
    for (const u of users) x.send(u, `s:${k}`);
    await new Promise((r) => setTimeout(r, 15));
  }
  await c.waitFor('every standby at its owner\'s head', async () => {
    const st = await c.status('a').catch(() => null);
    return st !== null && st.groups.every((g) => g.head_seq !== null && g.head_seq > 1 && Object.values(g.standby_lag).every((l) => l === 0));
  });
  // Nothing refused: every message sent is one the cluster took (a refusal is an ERROR frame).
  assert.deepEqual(x.frames.filter((f) => f.kind === 'error'), [], 'the sender was refused');
  x.close();
}

/** Everything stored for `user`, read through `node` and acknowledged (expects `count` messages). */
async function readAll(node: string, user: string, count: number): Promise<string[]> {
  const x = await login(node, user);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const f = await x.next<Reliable>((m) => m.kind === 'reliable_msg', 20_000).catch((e: unknown) => {
      throw new Error(`${user} through ${node}: ${out.length} of ${count} messages (${out.join(' ')}), then: ${String(e)}`);
    });
    x.ack(f.msgId);
    out.push(text(f.msg));
  }
  const extra = await x.next<Reliable>((m) => m.kind === 'reliable_msg', 300).catch(() => null);
  if (extra !== null) out.push(text(extra.msg));
  x.close();
  return out;
}

/** The lowest first sequence of group g's stream over the servers (null while one does not report it). */
async function firstSeq(g: number): Promise<number | null> {
  const views = await c.nats.streamViews(names.groupStream(g));
  if (views.length === 0 || views.some((v) => v.firstSeq === null)) return null;
  return Math.min(...views.map((v) => v.firstSeq!));
}

const ownedBy = (s: ClusterStatusBody, node: string): number[] => s.groups.filter((g) => g.owner === node).map((g) => g.group);
const allReported = (s: ClusterStatusBody): boolean => s.groups.every((g) => Object.values(g.standby_lag).every((l) => typeof l === 'number'));

test('streams trimmed past an old backup and past an empty node: both catch up by a peer snapshot, serve groups, and every stored message is read back once, in order', { timeout: 120_000 }, async () => {
  const offline = onePerGroup('to');
  await store(offline, 1, BEFORE);
  const to = join(backups, 'c-1');
  const b = await runIrisCli(['backup', '--data-dir', c.node('c').dir, '--to', to, '--json', '--set', 'node_name=c', '--set', 'cluster_name=itest']);
  assert.equal(b.code, 0, b.stderr);
  const manifest = JSON.parse(b.stdout) as BackupManifest;
  assert.equal(manifest.groups.length, GROUPS.count);

  await store(offline, BEFORE + 1, BEFORE + AFTER);
  // Every stream is trimmed past what the backup holds (the owner keeps KEEP entries below the lowest copy).
  const trimmed = await c.waitFor(
    'every shard stream trimmed past the backup',
    async () => {
      const out: number[] = [];
      for (const g of manifest.groups) {
        const f = await firstSeq(g.group);
        if (f === null || f <= g.applied_seq + 1) return null;
        out.push(f);
      }
      return out;
    },
    30_000,
  );
  console.log(`# shard streams' first sequences after trimming: ${trimmed.join(' ')} (backup at ${manifest.groups.map((g) => g.applied_seq).join(' ')})`);

  await c.kill('c');
  const dir = c.nodes.find((n) => n.name === 'c')!.dir;
  rmSync(dir, { recursive: true, force: true });
  const r = await runIrisCli(['restore', '--from', to, '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  await c.startNode('c', [], dir);
  await c.startNode('d');
  const s = await c.waitFor(
    'the restored node and the new one serving groups, every standby reporting',
    async () => {
      const st = await c.waitSettled(30_000);
      return ownedBy(st, 'c').length >= 1 && ownedBy(st, 'd').length >= 1 && allReported(st) ? st : null;
    },
    60_000,
  );
  const onCopies = [...ownedBy(s, 'c'), ...ownedBy(s, 'd')];
  const expected = Array.from({ length: BEFORE + AFTER }, (_, k) => `s:${k + 1}`);
  for (const [g, user] of offline.entries()) assert.deepEqual(await readAll('a', user, expected.length), expected, `${user} (group ${g}${onCopies.includes(g) ? ', served from a snapshot copy' : ''})`);
});
