/**
 * `iris start --processes 2` with real processes, loopback only, short timings: the supervisor
 * starts a nats-server and two node processes that share one TCP port and one WebSocket port;
 * connections to either shared port reach both processes; a message between clients on
 * different processes is delivered; a node process killed with SIGKILL is restarted and its
 * client logs in again and gets exactly what it had not acknowledged (plus what was sent
 * meanwhile), nothing it had acknowledged; SIGTERM to the supervisor stops every process it
 * started (checked by pid) and frees the ports. In that order, on one supervisor.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import type { ClusterStatusBody } from '../../server/ServiceCore.js';
import { alive, serverSideOwner, startIrisSupervisor, type IrisSupervisor } from '../support/irisSupervisor.js';
import { httpText } from '../support/nodeHttp.js';
import { V1TestClient, text } from '../support/V1TestClient.js';

type Reliable = Extract<ServerFrame, { kind: 'reliable_msg' }>;

/** Timings short enough for a test (the defaults are for production). */
const SETS = [
  'log_level=warn',
  'shard_groups=6',
  'cluster_heartbeat_ms=200',
  'cluster_down_after_ms=1000',
  'ownership_refresh_ms=500',
  'route_retry_ms=300',
  'process_restart_backoff_ms=200',
];
/** Bounded: enough connections that both processes are reached, whatever the kernel's hashing. */
const MAX_WS_CONNECTIONS = 64;

const dir = mkdtempSync(join(tmpdir(), 'iris-processes-'));
let sup: IrisSupervisor;
const clients: V1TestClient[] = [];

before(async () => {
  sup = await startIrisSupervisor(dir, 2, SETS);
  await waitServing();
});

after(async () => {
  for (const c of clients) c.close();
  if (sup !== undefined && !sup.exited) await sup.kill();
  // A supervisor killed above leaves its nats-server: stop it by pid.
  if (sup !== undefined && alive(sup.natsPid) && readFileSync(`/proc/${sup.natsPid}/cmdline`, 'utf8').includes(dir)) process.kill(sup.natsPid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Every shard group is served by a live node process, and both processes are members. */
async function waitServing(timeoutMs = 30_000): Promise<ClusterStatusBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await httpText(sup.httpPort, '/cluster/status')
      .then((b) => JSON.parse(b) as ClusterStatusBody)
      .catch(() => null);
    if (s !== null && !s.safe_mode && s.members.length === 2) {
      const names = new Set(s.members.map((m) => m.name));
      if (s.groups.every((g) => g.owner !== null && names.has(g.owner) && g.head_seq !== null)) return s;
    }
    if (Date.now() > deadline) throw new Error(`the node processes did not serve every shard group within ${timeoutMs} ms:\n${sup.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function nodePids(): number[] {
  return [...sup.nodePids.values()];
}

/** The next RELIABLE_MSG as text, acknowledged unless `ack` is false. */
async function nextText(c: V1TestClient, ack = true, timeoutMs = 15_000): Promise<string> {
  const f = await c.next<Reliable>((x) => x.kind === 'reliable_msg', timeoutMs);
  if (ack) c.ack(f.msgId);
  return text(f.msg);
}

/** Connected TCP clients (not logged in yet) on each node process, by pid. */
const onProcess = new Map<number, V1TestClient[]>();

test('iris start --processes 2 runs a nats-server and two node processes that share one TCP port and one WebSocket port', () => {
  assert.equal(sup.nodePids.size, 2);
  for (const pid of [sup.pid, sup.natsPid, ...nodePids()]) assert.ok(alive(pid), `pid ${pid} runs`);
  assert.match(readFileSync(`/proc/${sup.natsPid}/cmdline`, 'utf8'), /nats-server/);
  // The WebSocket port: each node process has its own listening socket on it (SO_REUSEPORT).
  const ws = execFileSync('ss', ['-ltnpH', `( sport = :${sup.httpPort} )`], { encoding: 'utf8' });
  const wsPids = new Set([...ws.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
  assert.deepEqual([...wsPids].sort(), nodePids().sort(), ws);
  // The TCP port: one listening socket, the supervisor's (node:cluster hands accepted sockets over).
  const tcp = execFileSync('ss', ['-ltnpH', `( sport = :${sup.tcpPort} )`], { encoding: 'utf8' });
  assert.deepEqual([...new Set([...tcp.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))], [sup.pid], tcp);
});

test('connections to the shared TCP port and to the shared WebSocket port reach both node processes', async () => {
  for (let i = 0; i < 4; i++) {
    const c = await V1TestClient.tcp(sup.tcpPort);
    clients.push(c);
    const pid = await serverSideOwner(sup.tcpPort, c.localPort, nodePids());
    onProcess.set(pid, [...(onProcess.get(pid) ?? []), c]);
  }
  // Round robin: four connections in turn reach both.
  assert.equal(onProcess.size, 2, `owners: ${[...onProcess.keys()].join(', ')}`);

  const wsOwners = new Set<number>();
  for (let i = 0; i < MAX_WS_CONNECTIONS && wsOwners.size < 2; i++) {
    const c = await V1TestClient.ws(sup.httpPort);
    clients.push(c);
    wsOwners.add(await serverSideOwner(sup.httpPort, c.localPort, nodePids()));
  }
  assert.deepEqual([...wsOwners].sort(), nodePids().sort());
});

let alice: V1TestClient;
let bob: V1TestClient;
let bobPid: number;

test('a message between two clients on different node processes is delivered, both ways', async () => {
  const [pidA, pidB] = [...onProcess.keys()];
  alice = onProcess.get(pidA!)![0]!;
  bob = onProcess.get(pidB!)![0]!;
  bobPid = pidB!;
  assert.equal((await alice.login('alice')).kind, 'login_ok');
  assert.equal((await bob.login('bob')).kind, 'login_ok');
  alice.send('bob', 'hello bob');
  assert.equal(await nextText(bob), 'hello bob');
  bob.send('alice', 'hello alice');
  assert.equal(await nextText(alice), 'hello alice');
});

test('a node process killed with SIGKILL is restarted, and its client logs in again without losing what it had not acknowledged nor getting back what it had', async () => {
  for (const m of ['m1', 'm2', 'm3']) alice.send('bob', m);
  assert.equal(await nextText(bob), 'm1');
  assert.equal(await nextText(bob), 'm2');
  assert.equal(await nextText(bob, false), 'm3'); // delivered, never acknowledged
  // ACKs travel ahead of a route to the user's own shard group: once bob's note to himself
  // arrives, his two ACKs are durable. The note is not acknowledged either.
  bob.send('bob', 'acks are durable');
  assert.equal(await nextText(bob, false), 'acks are durable');

  const name = [...sup.nodePids].find(([, pid]) => pid === bobPid)![0];
  const mark = sup.output().length;
  process.kill(bobPid, 'SIGKILL');
  await bob.closedByServer(10_000);
  alice.send('bob', 'm4'); // bob is offline; kept by whichever process owns his group
  const restarted = await sup.waitOutput(new RegExp(`node process ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(pid (\\d+)\\) restarted`), 20_000, mark);
  const newPid = Number(restarted[1]);
  assert.notEqual(newPid, bobPid);
  assert.ok(alive(newPid));
  assert.ok(!alive(bobPid));
  (sup.nodePids as Map<string, number>).set(name, newPid);
  await waitServing();

  const again = await V1TestClient.tcp(sup.tcpPort);
  clients.push(again);
  assert.equal((await again.login('bob')).kind, 'login_ok');
  const got = [await nextText(again), await nextText(again), await nextText(again)];
  assert.deepEqual(got, ['m3', 'acks are durable', 'm4']);
  // Nothing else is stored: a note to himself comes next.
  again.send('bob', 'the end');
  assert.equal(await nextText(again), 'the end');
});

test('SIGTERM to the supervisor stops every process it started, checked by pid, and frees the shared ports', async () => {
  const pids = [sup.pid, sup.natsPid, ...nodePids()];
  assert.equal(await sup.stop(30_000), 0);
  const deadline = Date.now() + 15_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pids.filter(alive), []);
  for (const port of [sup.tcpPort, sup.httpPort]) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    assert.ok(refused, `port ${port} is closed`);
  }
});
