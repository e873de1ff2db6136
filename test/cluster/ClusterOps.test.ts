/**
 * Operating a cluster with real processes: `iris start` children on a real 3-server NATS
 * cluster (JetStream R3), v1 clients over real sockets that keep sending while the cluster
 * changes under them, loopback only. One NATS cluster for the whole file, in this order:
 *
 * - scale-out and scale-in (docs/runbooks/scale-out.md, node-scaling.md): a 4th node joins with `iris start --join`, takes
 *   shard groups (seen with `iris cluster status`) and serves its users; `iris node drain
 *   --wait` then removes it under traffic: new clients are refused node_draining (TCP ERROR,
 *   WebSocket close 1001), connected ones are told node_draining and log in elsewhere, the node
 *   exits 0; nothing is lost, nothing acknowledged comes again, each sender's order holds;
 * - a rolling restart of every node (one drained with the CLI, the others stopped with SIGTERM,
 *   each started again on its data directory) under continuous traffic between clients that
 *   move to live nodes: the same three guarantees;
 * - a drain or leave that would cost the majority is refused would_lose_quorum (HTTP 409, the
 *   CLI exits 3 naming it) and changes nothing;
 * - kill -9 of a NATS server under traffic: nothing accepted is lost; the write pause (the
 *   election of the streams it led) is printed.
 *
 * Every client here is a Roamer: it acknowledges what it gets at once, and when told
 * node_draining it stops sending, shuts down its side, waits for the node to close (the node's
 * FIN says everything it sent was taken) and logs in on another live node.
 * Set CLUSTER_TEST_LOG=1 to have the nodes log at info level (shown when a wait times out).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { clusterNames } from '../../core/cluster/ClusterNames.js';
import { ShardGroups } from '../../core/cluster/ShardGroups.js';
import { userKey } from '../../core/UserId.js';
import type { DrainStatus } from '../../edge/admin/DrainAdmin.js';
import { V1ClientDecoder } from '../../edge/protocol/V1ClientDecoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import type { ClusterStatusBody } from '../../server/ServiceCore.js';
import { IrisCluster, TEST_ADMIN_TOKEN } from '../support/irisCluster.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';

type F<K extends ServerFrame['kind']> = Extract<ServerFrame, { kind: K }>;

const SHARD_GROUPS = 6;
const GROUPS = new ShardGroups(SHARD_GROUPS);
const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;
const CLI_TIMEOUT_MS = 60_000;
/** Pause between two messages of one sender. */
const SEND_EVERY_MS = 15;

let c: IrisCluster;
const roamers: Roamer[] = [];

before(async () => {
  // Every node reaches NATS through server 0: the other two carry only JetStream, so killing one
  // costs its streams an election and no node its NATS link.
  c = await IrisCluster.start({ pinTo: [0], sets: ['drain_client_grace_ms=2000'] });
  await Promise.all(['a', 'b', 'c'].map((n) => c.startNode(n)));
  await balanced(['a', 'b', 'c']);
});

after(async () => {
  for (const r of roamers) await r.stop();
  await c?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `iris …` as an operator would, with only PATH in its environment. */
function iris(args: readonly string[]): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iris ${args.join(' ')} did not finish within ${CLI_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, CLI_TIMEOUT_MS);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

function urlOf(node: string): string {
  return `http://127.0.0.1:${c.node(node).httpPort}`;
}

async function drainStatus(node: string): Promise<DrainStatus> {
  const r = await fetch(`${urlOf(node)}/admin/drain`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return (await r.json()) as DrainStatus;
}

/** Settled, and every live node owns its share of the groups with two standbys each and no move under way. */
async function balanced(names: readonly string[]): Promise<ClusterStatusBody> {
  await c.waitSettled(60_000);
  return c.waitFor(
    `the groups balanced over ${names.join(', ')}`,
    async () => {
      const s = await c.status(names[0]!).catch(() => null);
      if (s === null) return null;
      const owned = new Map<string, number>();
      for (const g of s.groups) {
        if (g.owner === null || g.successor !== null || g.standbys.length !== Math.min(2, names.length - 1)) return null;
        owned.set(g.owner, (owned.get(g.owner) ?? 0) + 1);
      }
      const fair = Math.floor(SHARD_GROUPS / names.length);
      return names.every((n) => (owned.get(n) ?? 0) >= fair) ? s : null;
    },
    60_000,
  );
}

/** A user name `<prefix><i>` whose shard group satisfies `pick`. */
function userIn(pick: (g: number) => boolean, prefix: string): string {
  for (let i = 0; i < 10_000; i++) if (pick(GROUPS.ofUser(userKey(utf8(`${prefix}${i}`))))) return `${prefix}${i}`;
  throw new Error(`no user for ${prefix}`);
}

/**
 * A user connected to one live node. It acknowledges every message at once. Told node_draining
 * it stops sending, shuts down its side, waits for the node to close and logs in on another node
 * `pick` names; a connection that closes without that (nothing in these tests should) is counted.
 */
class Roamer {
  x: V1TestClient | null = null;
  node = '';
  ready = false;
  told = 0;
  unexpectedCloses = 0;
  readonly errors: string[] = [];
  /** Payloads received (`sender:k`) and when. */
  readonly got: Array<{ text: string; at: number }> = [];
  /** Messages this user sent: the recipient, and when each was sent (index k-1). */
  readonly sentAt: number[] = [];
  moves: string[] = [];
  private running = true;
  private loop: Promise<void> = Promise.resolve();
  private sending: Promise<void> = Promise.resolve();
  private sendOn = false;

  constructor(
    readonly user: string,
    private readonly pick: (not: string) => string,
  ) {
    roamers.push(this);
  }

  async start(node: string): Promise<this> {
    await this.connect(node);
    this.loop = this.read();
    return this;
  }

  /** Send `user:k` to `to` every SEND_EVERY_MS while connected, until `stopSending`. */
  sendTo(to: string): void {
    this.sendOn = true;
    this.sending = (async () => {
      while (this.sendOn) {
        if (this.ready && this.x !== null && !this.x.closed) {
          this.x.send(to, `${this.user}:${this.sentAt.length + 1}`);
          this.sentAt.push(Date.now());
        }
        await sleep(SEND_EVERY_MS);
      }
    })();
  }

  async stopSending(): Promise<number> {
    this.sendOn = false;
    await this.sending;
    return this.sentAt.length;
  }

  /** The numbers received from `sender`, in arrival order. */
  from(sender: string): number[] {
    return this.got.filter((g) => g.text.startsWith(`${sender}:`)).map((g) => Number(g.text.slice(sender.length + 1)));
  }

  async stop(): Promise<void> {
    this.sendOn = false;
    this.running = false;
    await this.sending;
    await this.loop;
    this.x?.close();
  }

  private async connect(node: string): Promise<void> {
    const x = await V1TestClient.tcp(c.node(node).tcpPort);
    const f = await x.login(this.user);
    if (f.kind !== 'login_ok') {
      x.close();
      throw new Error(`${this.user} could not log in on ${node}: ${f.kind}`);
    }
    this.x = x;
    this.node = node;
    this.ready = true;
  }

  private async moveAway(): Promise<void> {
    const from = this.node;
    for (let attempt = 0; attempt < 50 && this.running; attempt++) {
      const to = this.pick(from);
      try {
        await this.connect(to);
        this.moves.push(`${from}->${to}`);
        return;
      } catch {
        await sleep(100);
      }
    }
    throw new Error(`${this.user} found no live node to move to from ${from}`);
  }

  private async read(): Promise<void> {
    while (this.running) {
      const x = this.x!;
      const f = await x.next(() => true, 200).catch(() => null);
      if (f === null) {
        if (x.closed && this.running) {
          this.ready = false;
          this.unexpectedCloses++;
          await this.moveAway();
        }
        continue;
      }
      if (f.kind === 'reliable_msg') {
        x.ack(f.msgId);
        this.got.push({ text: text(f.msg), at: Date.now() });
      } else if (f.kind === 'error' && f.reason === 'node_draining') {
        this.ready = false;
        this.told++;
        x.end();
        await x.closedByServer(30_000);
        await this.moveAway();
      } else if (f.kind === 'error') this.errors.push(f.reason);
    }
  }
}

/** Round robin over `targets()` without `not`. */
function picker(targets: () => readonly string[]): (not: string) => string {
  let i = 0;
  return (not) => {
    const live = targets().filter((n) => n !== not);
    return live[i++ % live.length]!;
  };
}

/** Stop the senders, wait until every message sent reached its recipient, check each pair: 1..n once, in order. */
async function settleTraffic(pairs: ReadonlyArray<[Roamer, Roamer]>): Promise<number> {
  const sent = new Map<Roamer, number>();
  for (const [s] of pairs) sent.set(s, await s.stopSending());
  await c
    .waitFor('every message sent delivered', () => pairs.every(([s, r]) => r.from(s.user).length >= sent.get(s)!), 30_000)
    .catch(() => undefined);
  await sleep(300); // anything delivered twice would arrive now
  let total = 0;
  for (const [s, r] of pairs) {
    const n = sent.get(s)!;
    total += n;
    assert.deepEqual(
      r.from(s.user),
      Array.from({ length: n }, (_, k) => k + 1),
      `${s.user} -> ${r.user}: every message once and in order (moves: ${s.user} ${s.moves.join(' ')}, ${r.user} ${r.moves.join(' ')})`,
    );
  }
  for (const [s, r] of pairs) for (const x of [s, r]) assert.deepEqual([x.unexpectedCloses, x.errors], [0, []], `${x.user}: closed only after node_draining, no refusal`);
  return total;
}

/** A v1 frame sequence and close code a WebSocket client sees from `node`. */
async function wsVisit(node: string): Promise<{ frames: ServerFrame[]; code: number; reason: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${c.node(node).httpPort}/ws`);
  const decoder = new V1ClientDecoder();
  const frames: ServerFrame[] = [];
  ws.on('message', (d: Buffer) => {
    decoder.push(new Uint8Array(d));
    for (let r = decoder.next(); r.kind === 'frame'; r = decoder.next()) frames.push(r.frame);
  });
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the WebSocket was not closed')), 5_000);
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ frames, code, reason: reason.toString() });
    });
  });
}

test('scale-out then scale-in under traffic: a 4th node joins and serves its users; `iris node drain --wait` removes it with nothing lost or repeated, its clients told node_draining', async () => {
  // Scale out: the runbook's `iris start --join` (the test cluster passes nats_servers).
  const t0 = Date.now();
  await c.startNode('d');
  const s = await balanced(['a', 'b', 'c', 'd']);
  const joinMs = Date.now() - t0;
  const dGroups = s.groups.filter((g) => g.owner === 'd').map((g) => g.group);
  const dStandby = s.groups.filter((g) => g.standbys.includes('d')).length;
  assert.ok(dGroups.length >= 1, 'd owns shard groups');
  const shown = await iris(['cluster', 'status', '--url', urlOf('a')]);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`^d\\s+edge,core\\s+\\d+\\s+up\\s+${dGroups.length}\\s+\\d+\\s`, 'm'), shown.stdout);
  const json = await iris(['cluster', 'status', '--url', urlOf('d'), '--json']);
  assert.deepEqual((JSON.parse(json.stdout) as ClusterStatusBody).members.map((m) => [m.name, m.draining]), [['a', false], ['b', false], ['c', false], ['d', false]]);
  console.log(`# scale-out: d joined and owns ${dGroups.length} of ${SHARD_GROUPS} groups ${joinMs} ms after its start\n${shown.stdout.split('\n').map((l) => `#   ${l}`).join('\n')}`);

  // Traffic to and from d's users: s1 on d sends to a user on a; s2 on b and s3 on c send to users of d's groups, r2 on d.
  let targets = ['a', 'b', 'c', 'd'];
  const pick = picker(() => targets);
  const ofD = (prefix: string) => userIn((g) => dGroups.includes(g), prefix);
  const s1 = await new Roamer('so1', pick).start('d');
  const r1 = await new Roamer('ro1', pick).start('a');
  const s2 = await new Roamer('so2', pick).start('b');
  const r2 = await new Roamer(ofD('ro2-'), pick).start('d');
  const s3 = await new Roamer(ofD('so3-'), pick).start('c');
  const r3 = await new Roamer(ofD('ro3-'), pick).start('c');
  const pairs: Array<[Roamer, Roamer]> = [
    [s1, r1],
    [s2, r2],
    [s3, r3],
  ];
  for (const [from, to] of pairs) from.sendTo(to.user);
  await c.waitFor('messages flowing to and from d', () => pairs.every(([, r]) => r.got.length >= 20), 20_000);

  // Scale in: drain d with the CLI while the traffic goes on.
  targets = ['a', 'b', 'c'];
  const dHttp = c.node('d').httpPort;
  const cli = iris(['node', 'drain', '--url', urlOf('d'), '--admin-token', TEST_ADMIN_TOKEN, '--wait']);
  await c.waitFor('the drain of d under way', async () => (await drainStatus('d').catch(() => null))?.state !== 'serving', 10_000);
  // While it drains, d refuses new clients with the reason, and its /health says so.
  const health = await fetch(`http://127.0.0.1:${dHttp}/health`);
  assert.deepEqual([health.status, ((await health.json()) as { status: string }).status], [503, 'draining']);
  const late = await V1TestClient.tcp(c.node('d').tcpPort);
  assert.deepEqual(await late.next<F<'error'>>((f) => f.kind === 'error'), { kind: 'error', reason: 'node_draining' });
  await late.closedByServer();
  const lateWs = await wsVisit('d');
  assert.deepEqual([lateWs.frames, lateWs.code, lateWs.reason], [[{ kind: 'error', reason: 'node_draining' }], 1001, 'node_draining']);
  const done = await cli;
  assert.equal(done.status, 0, `${done.stdout}\n${done.stderr}`);
  assert.match(done.stdout, /^drained: d has left the cluster after [\d.]+ s$/m);
  assert.equal(await c.exited('d'), 0, 'a drained node exits 0');
  await sleep(500); // traffic goes on without d
  const total = await settleTraffic(pairs);
  assert.deepEqual([s1.told, r2.told, s2.told + r1.told + s3.told + r3.told], [1, 1, 0], 'the clients of d were told node_draining once; the others never');
  const after = await balanced(['a', 'b', 'c']);
  assert.deepEqual(
    after.members.map((m) => m.name),
    ['a', 'b', 'c'],
  );
  console.log(`# scale-in: iris node drain --wait of d (owner of ${dGroups.length} groups, standby for ${dStandby}) took ${done.ms} ms; ${total} messages, none lost or repeated\n${done.stdout.split('\n').filter((l) => l !== '').map((l) => `#   ${l}`).join('\n')}`);
  for (const r of pairs.flat()) await r.stop();
});

test('rolling restart of every node (drained with the CLI or stopped with SIGTERM, started again on its data) under continuous traffic: nothing lost, nothing acknowledged repeated, each sender in order', async () => {
  const names = ['a', 'b', 'c'];
  let targets = [...names];
  const pick = picker(() => targets);
  const senders = await Promise.all(names.map((n, i) => new Roamer(`rs${i}`, pick).start(n)));
  const receivers = await Promise.all(names.map((n, i) => new Roamer(`rr${i}`, pick).start(names[(i + 1) % names.length]!)));
  const pairs = senders.map((s, i): [Roamer, Roamer] => [s, receivers[i]!]);
  for (const [s, r] of pairs) s.sendTo(r.user);
  await c.waitFor('messages flowing', () => receivers.every((r) => r.got.length >= 10), 20_000);
  const t0 = Date.now();
  const steps: string[] = [];
  for (const n of names) {
    targets = names.filter((x) => x !== n);
    const t1 = Date.now();
    if (n === 'a') {
      const r = await iris(['node', 'drain', '--url', urlOf(n), '--admin-token', TEST_ADMIN_TOKEN, '--wait']);
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.equal(await c.exited(n), 0);
    } else assert.equal(await c.stop(n, 60_000), 0, `SIGTERM of ${n} exits 0 after its drain`);
    const downMs = Date.now() - t1;
    const t2 = Date.now();
    await c.restart(n);
    targets = [...names];
    await balanced(names);
    steps.push(`${n}: ${n === 'a' ? 'iris node drain' : 'SIGTERM'} ${downMs} ms, back and balanced ${Date.now() - t2} ms`);
  }
  const restartMs = Date.now() - t0;
  await sleep(300);
  const total = await settleTraffic(pairs);
  const told = pairs.flat().reduce((n, r) => n + r.told, 0);
  console.log(`# rolling restart of a, b, c: ${restartMs} ms (${steps.join('; ')}); ${total} messages, ${told} client moves, none lost or repeated`);
  assert.ok(told >= 3, `clients were told to move (${told})`);
  for (const r of pairs.flat()) await r.stop();
});

test('a drain or leave that would cost the cluster its majority is refused would_lose_quorum (HTTP 409; the CLI exits 3 naming it) and changes nothing', async () => {
  await c.kill('c');
  await c.waitFor('a and b see each other only, outside safe mode', async () => {
    const h = await Promise.all(['a', 'b'].map((n) => c.health(n)));
    return h.every((x) => x.node_count === 2 && !x.safe_mode);
  });
  const r = await fetch(`${urlOf('a')}/admin/drain`, { method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, body: '{}' });
  const body = (await r.json()) as { code: string; message: string };
  assert.equal(r.status, 409);
  assert.equal(body.code, 'would_lose_quorum');
  assert.match(body.message, /1 of the 3 expected nodes would remain/);
  const cli = await iris(['node', 'drain', '--url', urlOf('b'), '--admin-token', TEST_ADMIN_TOKEN, '--wait']);
  assert.equal(cli.status, 3, cli.stderr);
  assert.match(cli.stderr, /would_lose_quorum: after this node leaves, 1 of the 3 expected nodes would remain/);
  for (const n of ['a', 'b']) {
    assert.equal((await drainStatus(n)).state, 'serving');
    assert.equal((await c.health(n)).status, 'ok');
  }
  const unauthorized = await fetch(`${urlOf('a')}/admin/drain`, { method: 'POST', body: '{}' });
  assert.equal(unauthorized.status, 401);
});

test('kill -9 of a NATS server under traffic: nothing accepted is lost; the write pause is the election of the streams it led', async () => {
  // No group moving (c's groups failed over in the previous test): only the NATS server's loss is measured.
  await balanced(['a', 'b']);
  const names = clusterNames('itest');
  const leaders = await Promise.all(Array.from({ length: SHARD_GROUPS }, (_, g) => c.nats.streamLeader(names.groupStream(g))));
  // Kill the server (not the one the nodes use) that leads the most shard streams; the messages go to users of those groups.
  const victim = [1, 2].sort((x, y) => leaders.filter((l) => l === y).length - leaders.filter((l) => l === x).length)[0]!;
  const led = leaders.map((l, g) => (l === victim ? g : -1)).filter((g) => g >= 0);
  const inLed = (g: number): boolean => led.length === 0 || led.includes(g);
  const pick = picker(() => ['a', 'b']);
  const s1 = await new Roamer('ns1', pick).start('a');
  const r1 = await new Roamer(userIn(inLed, 'nr1-'), pick).start('b');
  const s2 = await new Roamer('ns2', pick).start('b');
  const r2 = await new Roamer(userIn(inLed, 'nr2-'), pick).start('a');
  const pairs: Array<[Roamer, Roamer]> = [
    [s1, r1],
    [s2, r2],
  ];
  for (const [s, r] of pairs) s.sendTo(r.user);
  await c.waitFor('messages flowing', () => pairs.every(([, r]) => r.got.length >= 20), 20_000);
  const tKill = Date.now();
  await c.nats.kill(victim);
  await c.waitFor('a message sent 1 s after the kill delivered', () => pairs.every(([s, r]) => r.from(s.user).some((k) => s.sentAt[k - 1]! > tKill + 1_000)), 30_000);
  await sleep(500);
  const total = await settleTraffic(pairs);
  // The write pause: the longest a message sent after the kill took to arrive.
  let pause = 0;
  for (const [s, r] of pairs) {
    for (const g of r.got) {
      const k = Number(g.text.slice(s.user.length + 1));
      if (!g.text.startsWith(`${s.user}:`) || s.sentAt[k - 1]! < tKill - 100) continue;
      pause = Math.max(pause, g.at - s.sentAt[k - 1]!);
    }
  }
  console.log(`# NATS server ${c.nats.serverName(victim)} killed (leader of ${led.length} of ${SHARD_GROUPS} shard streams): longest write pause ${pause} ms; ${total} messages, none lost or repeated`);
  assert.ok(pause < 20_000, `write pause ${pause} ms`);
  for (const r of pairs.flat()) await r.stop();
});
