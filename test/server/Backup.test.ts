/**
 * Backup and restore of a single node (no NATS), with real `iris` processes and real LMDB:
 *
 * - `iris backup` copies a running node's data directory while clients send; after kill -9, a
 *   wiped directory and `iris restore`, the node delivers every message that was durable before
 *   the backup exactly once and in order, nothing acknowledged before it comes back, and of the
 *   messages sent during the backup an in-order prefix without duplicates;
 * - a damaged or incomplete backup is refused with a clear message and a non-zero exit, before
 *   anything is written; a data directory with files is refused unless `--force`, which moves
 *   the LMDB files aside (never deletes them), and never while a node has them open;
 * - a data file damaged in the middle is reported at start, naming the file and the fix; the
 *   node does not start and the file is kept byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackupManifest } from '../../server/BackupManifest.js';
import { runIrisCli } from '../support/irisCli.js';
import { startIrisChild, type IrisChild } from '../support/irisChild.js';
import { drainToMarker, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { V1TestClient, text } from '../support/V1TestClient.js';

// No shaping: the tests send thousands of messages at once.
const SETS = ['router_pool_size=1', 'rate_limit_messages_burst=100000', 'rate_limit_messages_per_s=100000'];

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

async function login(node: IrisChild, user: string, clients: V1TestClient[]): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(user)).kind, 'login_ok', `login of ${user}`);
  return c;
}

/**
 * Every write issued before the call is durable once a fresh user's session has read its
 * inbox (the session reads only after a storage flush), and with one router shard the probe's
 * append comes after every earlier one (see test/service/ServerCrash.test.ts).
 */
let probes = 0;
async function durabilityBarrier(node: IrisChild, sender: V1TestClient, clients: V1TestClient[]): Promise<void> {
  const user = `probe-${++probes}`;
  sender.send(user, 'probe');
  await roundTrip(sender);
  const p = await login(node, user, clients);
  const f = await p.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'probe');
  p.ack(f.msgId);
}

/** What `user` holds now, in order (texts), read up to a marker from `sender`. */
async function held(node: IrisChild, user: string, sender: V1TestClient, clients: V1TestClient[], timeoutMs = 20_000): Promise<string[]> {
  const c = await login(node, user, clients);
  const marker = `marker-${user}-${Date.now()}`;
  sender.send(user, marker);
  return (await drainToMarker(c, marker, timeoutMs)).map((f) => text(f.msg));
}

test('a single node backed up while clients send, then killed, wiped and restored, delivers everything durable before the backup exactly once, and nothing acknowledged comes back', { timeout: 120_000 }, async () => {
  const dir = tempDir('iris-backup-node-');
  const backups = tempDir('iris-backups-');
  const to = join(backups, 'b1');
  const clients: V1TestClient[] = [];
  let node: IrisChild | null = null;
  try {
    node = await startIrisChild(dir, SETS);
    const alice = await login(node, 'alice', clients);
    // dave is online and acknowledges what he gets: those must never come back.
    const dave = await login(node, 'dave', clients);
    const D = Array.from({ length: 20 }, (_, i) => `d:${i + 1}`);
    for (const m of D) alice.send('dave', m);
    for (let i = 0; i < D.length; i++) {
      const f = await dave.next<Reliable>(isReliable);
      assert.equal(text(f.msg), D[i]);
      dave.ack(f.msgId);
    }
    await roundTrip(dave);
    dave.close();
    // carol is offline: N messages stored.
    const N = 3_000;
    const body = 'x'.repeat(200);
    const C = Array.from({ length: N }, (_, i) => `c:${i + 1}:${body}`);
    for (const m of C) alice.send('carol', m);
    await durabilityBarrier(node, alice, clients);

    // Traffic while the backup runs: erin (offline) gets a message every 2 ms.
    let sending = true;
    let sentToErin = 0;
    const traffic = (async () => {
      for (let k = 1; sending && k < 100_000; k++) {
        alice.send('erin', `e:${k}`);
        sentToErin = k;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const b = await runIrisCli(['backup', '--data-dir', dir, '--to', to, '--json']);
    sending = false;
    await traffic;
    assert.equal(b.code, 0, b.stderr);
    const manifest = JSON.parse(b.stdout) as BackupManifest;
    assert.deepEqual([manifest.kind, manifest.format, manifest.node, manifest.cluster, manifest.groups], ['iris-node-backup', 1, 'iris@local', null, []]);
    assert.equal(manifest.files[0]!.sha256, sha256(join(to, 'data.mdb')));
    console.log(`# single node: backup of ${N + D.length} messages while sending (${sentToErin} sent during it): ${manifest.files[0]!.bytes} bytes, ${manifest.records} records, ${b.ms} ms (command), ${manifest.took_ms} ms (copy + check + hash)`);

    // kill -9, wipe, restore, start.
    for (const c of clients) c.close();
    await node.kill();
    node = null;
    rmSync(dir, { recursive: true, force: true });
    const t0 = Date.now();
    const r = await runIrisCli(['restore', '--from', to, '--data-dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /restored the backup of node iris@local/);
    node = await startIrisChild(dir, SETS);
    console.log(`# single node: restore ${r.ms} ms, restore + start ${Date.now() - t0} ms`);
    const sender = await login(node, 'zed', clients);
    assert.deepEqual(await held(node, 'carol', sender, clients), C, 'carol: every stored message, once, in order');
    assert.deepEqual(await held(node, 'dave', sender, clients), [], 'dave: nothing acknowledged comes back');
    const e = await held(node, 'erin', sender, clients);
    assert.deepEqual(e, Array.from({ length: e.length }, (_, i) => `e:${i + 1}`), 'erin: an in-order prefix of what was sent during the backup');
    assert.ok(e.length <= sentToErin);
  } finally {
    for (const c of clients) c.close();
    await node?.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(backups, { recursive: true, force: true });
  }
});

test('a damaged or incomplete backup is refused with a clear message and a non-zero exit before anything is written; a directory with files needs --force, which moves them aside and never deletes', { timeout: 60_000 }, async () => {
  const dir = tempDir('iris-backup-node-');
  const backups = tempDir('iris-backups-');
  const clients: V1TestClient[] = [];
  let node: IrisChild | null = null;
  try {
    node = await startIrisChild(dir, SETS);
    const alice = await login(node, 'alice', clients);
    for (let i = 1; i <= 50; i++) alice.send('bob', `b:${i}`);
    await durabilityBarrier(node, alice, clients);
    // Nothing to back up where there is no environment.
    const none = await runIrisCli(['backup', '--data-dir', join(backups, 'no-node-here'), '--to', join(backups, 'none')]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /nothing to back up: .*data\.mdb does not exist/);
    assert.ok(!existsSync(join(backups, 'no-node-here')), 'the data directory is not created');
    const good = join(backups, 'good');
    const made = await runIrisCli(['backup', '--data-dir', dir, '--to', good]);
    assert.equal(made.code, 0, made.stderr);
    // A second backup into the same directory is refused: a backup never overwrites another.
    const again = await runIrisCli(['backup', '--data-dir', dir, '--to', good]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /is not empty: back up into a new or empty directory/);
    // Restoring into the running node's directory: refused (not empty), and with --force refused (in use).
    const busy = await runIrisCli(['restore', '--from', good, '--data-dir', dir]);
    assert.equal(busy.code, 2);
    assert.match(busy.stderr, /is not empty \(.*data\.mdb.*\): restore into an empty directory, or add --force/);
    const inUse = await runIrisCli(['restore', '--from', good, '--data-dir', dir, '--force']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, new RegExp(`process ${node.pid} has the environment in .* open: stop the node`));
    for (const c of clients) c.close();
    await node.kill();
    node = null;

    // Damaged copies of the good backup.
    const damaged: Array<[string, (d: string) => void, RegExp]> = [
      ['one byte changed', (d) => flipByte(join(d, 'data.mdb'), Math.floor(statSync(join(d, 'data.mdb')).size / 2)), /has SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64} \(its bytes changed since the backup\)/],
      ['truncated', (d) => writeFileSync(join(d, 'data.mdb'), readFileSync(join(d, 'data.mdb')).subarray(0, 8192)), /is 8192 bytes, the manifest says \d+ \(truncated or replaced\)/],
      ['no manifest', (d) => rmSync(join(d, 'iris-backup.json')), /iris-backup\.json does not exist: .* is not a backup made by iris backup, or the backup did not finish/],
      ['manifest not JSON', (d) => writeFileSync(join(d, 'iris-backup.json'), '{"kind": "iris-node-ba'), /is not a valid backup manifest \(not JSON/],
    ];
    for (const [name, damage, expected] of damaged) {
      const copy = join(backups, name.replace(/ /g, '-'));
      mkdirSync(copy);
      for (const f of readdirSync(good)) writeFileSync(join(copy, f), readFileSync(join(good, f)));
      damage(copy);
      const target = join(backups, `target-${name.replace(/ /g, '-')}`);
      const r = await runIrisCli(['restore', '--from', copy, '--data-dir', target]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, expected, name);
      assert.ok(!existsSync(join(target, 'data.mdb')), `${name}: nothing restored`);
    }

    // --force on a stopped node's directory: its LMDB files are moved aside, the rest stays.
    const before = sha256(join(dir, 'data.mdb'));
    const forced = await runIrisCli(['restore', '--from', good, '--data-dir', dir, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const aside = readdirSync(dir).find((f) => f.startsWith('replaced-'));
    assert.ok(aside !== undefined, 'the previous files were moved aside');
    assert.equal(sha256(join(dir, aside, 'data.mdb')), before, 'the previous data file is kept byte for byte');
    assert.ok(existsSync(join(dir, 'admin.token')), 'files that are not LMDB stay where they are');
    node = await startIrisChild(dir, SETS);
    const x = await login(node, 'x', clients);
    assert.deepEqual(await held(node, 'bob', x, clients), Array.from({ length: 50 }, (_, i) => `b:${i + 1}`));
  } finally {
    for (const c of clients) c.close();
    await node?.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(backups, { recursive: true, force: true });
  }
});

test('a data file damaged in the middle is reported at start, naming the file and the fix; the node does not start and the file is kept byte for byte', { timeout: 60_000 }, async () => {
  const dir = tempDir('iris-damaged-node-');
  const clients: V1TestClient[] = [];
  let node: IrisChild | null = null;
  try {
    node = await startIrisChild(dir, SETS);
    const alice = await login(node, 'alice', clients);
    const body = 'y'.repeat(300);
    for (let i = 1; i <= 3_000; i++) alice.send(`u${i % 40}`, `m:${i}:${body}`);
    await durabilityBarrier(node, alice, clients);
    for (const c of clients) c.close();
    assert.equal(await node.stop(), 0);
    node = null;
    const file = join(dir, 'data.mdb');
    const size = statSync(file).size;
    // Overwrite pages in the middle of the file (page-aligned), as a bad disk sector run would.
    const from = Math.floor((size * 0.4) / 4096) * 4096;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(Math.floor((size * 0.2) / 4096) * 4096, 0x5a), 0, undefined, from);
    closeSync(fd);
    const damaged = sha256(file);
    const t0 = Date.now();
    const started = await runIrisCli(['start', '--port', '0', '--http-port', '0', '--data', dir, '--set', 'log_level=warn'], 30_000);
    const ms = Date.now() - t0;
    const r = { code: started.code, out: started.stdout + started.stderr };
    assert.notEqual(r.code, 0, r.out);
    assert.doesNotMatch(r.out, /is up/);
    assert.match(r.out, new RegExp(`iris: cannot start: wal_directory: ${file.replace(/[.]/g, '\\.')} is damaged`));
    assert.match(r.out, /the file was left untouched; restore the node from a backup \(iris restore --from BACKUP_DIR --data-dir .* --force\)/);
    assert.equal(sha256(file), damaged, 'the damaged file is kept byte for byte');
    assert.equal(statSync(file).size, size);
    console.log(`# damaged data file (${size} bytes) reported at start in ${ms} ms: ${r.out.split('\n').find((l) => l.includes('cannot start'))?.slice(0, 300)}`);
  } finally {
    for (const c of clients) c.close();
    await node?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

function flipByte(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = b[at]! ^ 0xff;
  writeFileSync(file, b);
}
