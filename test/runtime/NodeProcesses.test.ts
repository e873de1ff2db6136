/**
 * Distribution between real node processes over a real 3-server nats-server cluster: this
 * test process is node `driver` (two schedulers), the others are child processes started and
 * killed by pid. Proves remote FIFO across worker schedulers of two processes, GenServer calls
 * with timeout and `noconnection`, down detection in time after SIGKILL, links and monitors
 * firing `noconnection` from a worker scheduler, a restarted process being a new incarnation,
 * the loss of a node's NATS server (it reconnects elsewhere and comes back as a new view with
 * its processes alive), a route cut between NATS servers (both sides see the other down, then
 * up), and global names and process groups across processes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, type CallResult } from '../../actors/Call.js';
import * as GlobalRegistry from '../../actors/GlobalRegistry.js';
import * as ProcessGroups from '../../actors/ProcessGroups.js';
import { isDownMessage, isExitMessage } from '../../runtime/ExitReason.js';
import type { MembershipEvent } from '../../runtime/Membership.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ModuleSpec } from '../../runtime/ProcessContext.js';
import { RuntimeNode } from '../../runtime/node/RuntimeNode.js';
import { BODIES } from '../support/bodies.js';
import { CLUSTER_BODIES } from '../support/clusterBodies.js';
import { startNodeProcess, waitForMembers, type ChildNodeOptions, type NodeProcess } from '../support/clusterNodes.js';
import { spawnProbe, until } from '../support/kernel.js';
import { NatsCluster } from '../support/natsCluster.js';

const CLUSTER = 'procs';
const TIMING = { heartbeatMs: 250, downAfterMs: 1_500 };
/** Allowed on top of downAfterMs for detection on a loaded 2-core machine. */
const DETECT_SLACK_MS = 1_500;

let nats: NatsCluster;
let driver: RuntimeNode;
const children: NodeProcess[] = [];
const events: MembershipEvent[] = [];

function child(name: string, server: number, extra: Partial<ChildNodeOptions> = {}): Promise<NodeProcess> {
  return startNodeProcess({ name, cluster: CLUSTER, servers: [nats.url(server)], ignoreClusterUpdates: true, schedulers: 2, ...TIMING, ...extra }).then((p) => {
    children.push(p);
    return p;
  });
}

function isUp(name: string, incarnation?: number) {
  return (peers: { name: string; incarnation: number }[]) => peers.some((p) => p.name === name && (incarnation === undefined || p.incarnation === incarnation));
}

async function spawnThere(node: string, sched: number, spec: ModuleSpec): Promise<Pid> {
  const r = await driver.spawnOn(sched, spec, undefined, node);
  assert.ok(r.ok, `spawn on ${node}: ${JSON.stringify(r)}`);
  return r.pid;
}

before(async () => {
  nats = await NatsCluster.start();
  driver = await RuntimeNode.start({
    name: 'driver',
    schedulers: 2,
    dirtyThreads: 1,
    logLevel: 'silent',
    cluster: { cluster: CLUSTER, servers: [nats.url(0)], ignoreClusterUpdates: true, ...TIMING },
  });
  driver.cluster!.subscribe((e) => events.push(e));
  assert.ok((await GlobalRegistry.start(driver.main)).ok);
  assert.ok((await ProcessGroups.start(driver.main, 'pg')).ok);
  await Promise.all([child('n1', 1, { global: true, pgScope: 'pg' }), child('n2', 2)]);
  await waitForMembers(driver.cluster!, 'n1 and n2 up', (peers) => isUp('n1')(peers) && isUp('n2')(peers));
});

after(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await driver?.stop();
  await nats?.stopAll();
});

test('50,000 messages between worker schedulers of two node processes arrive in per-pair FIFO order', async () => {
  const probe = spawnProbe(driver.main);
  const sink = await spawnThere('n2', 1, { module: BODIES, fn: 'sink', args: [probe.pid] });
  await spawnThere('n1', 1, { module: BODIES, fn: 'blaster', args: [sink, 50_000] });
  const r = await probe.next<{ count: number; inOrder: boolean }>(undefined, 60_000);
  assert.deepEqual(r, { count: 50_000, inOrder: true });
});

test('global names and process groups reach across node processes', async () => {
  const probe = spawnProbe(driver.main);
  const svc = driver.spawn(() => () => {});
  assert.deepEqual(await GlobalRegistry.register(driver.main, 'driver-svc', svc), { ok: true });
  // Ask n1 to read the name until the registration has reached it (bounded: 100 reads).
  let seen: Pid | null = null;
  for (let i = 0; i < 100 && seen === null; i++) {
    await spawnThere('n1', 0, { module: CLUSTER_BODIES, fn: 'whereisGlobal', args: ['driver-svc', probe.pid] });
    const r = await probe.next<{ pid: Pid | null }>((m) => (m as { name?: string }).name === 'driver-svc', 5_000);
    if (r.pid !== null) seen = r.pid;
    else await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal(seen?.key, svc.key);
  await spawnThere('n1', 0, { module: CLUSTER_BODIES, fn: 'groupMember', args: ['pg', 'workers', probe.pid] });
  assert.deepEqual(await probe.next((m) => (m as { joined?: boolean }).joined !== undefined, 5_000), { joined: true });
  await until(() => ProcessGroups.getMembers(driver.main, 'pg', 'workers').length === 1, 10_000, 'the member of n1 in the driver');
  assert.equal(ProcessGroups.getMembers(driver.main, 'pg', 'workers')[0]!.node, 'n1');
});

test('SIGKILL of a node process: down in time, a pending call and a worker-thread link and monitor get noconnection; its restart is a new incarnation', async () => {
  const victim = await child('victim', 1);
  await waitForMembers(driver.cluster!, 'victim up', isUp('victim', victim.incarnation));
  const probe = spawnProbe(driver.main);
  await spawnThere('victim', 0, { module: CLUSTER_BODIES, fn: 'echoServer', args: [probe.pid] });
  const { server } = await probe.next<{ server: Pid }>((m) => (m as { server?: Pid }).server !== undefined, 5_000);
  // a watcher on the driver's worker scheduler links to and monitors the server
  const watch = spawnProbe(driver.main);
  const w = await driver.spawnOn(1, { module: CLUSTER_BODIES, fn: 'watcher', args: [server, watch.pid] });
  assert.ok(w.ok);
  await watch.next((m) => (m as { watching?: Pid }).watching !== undefined);
  const results: CallResult[] = [];
  driver.main.spawn(async (ctx) => {
    results.push(await call(ctx, server, 'hi', 5_000));
    results.push(await call(ctx, server, 'hang', 300));
    results.push(await call(ctx, server, 'hang', 30_000));
  });
  await until(() => results.length === 2, 10_000, 'the first two calls');
  assert.deepEqual(results, [{ ok: true, value: { echo: 'hi', node: 'victim' } }, { ok: false, reason: 'timeout' }]);
  const from = events.length;
  const killedAt = Date.now();
  await victim.kill();
  await waitForMembers(driver.cluster!, 'victim down', (peers) => !isUp('victim')(peers), 10_000);
  const took = Date.now() - killedAt;
  assert.ok(took <= TIMING.downAfterMs + DETECT_SLACK_MS, `down detected after ${took} ms (limit ${TIMING.downAfterMs} + ${DETECT_SLACK_MS})`);
  const first = events.slice(from).find((e) => e.member.name === 'victim');
  assert.equal(first?.type === 'down' ? first.cause : first?.type, 'silence');
  await until(() => results.length === 3, 5_000, 'the pending call');
  assert.deepEqual(results[2], { ok: false, reason: 'noconnection' });
  const exit = await watch.next<{ seen: { reason: unknown } }>((m) => isExitMessage((m as { seen?: unknown }).seen), 5_000);
  const down = await watch.next<{ seen: { reason: unknown } }>((m) => isDownMessage((m as { seen?: unknown }).seen), 5_000);
  assert.equal(exit.seen.reason, 'noconnection');
  assert.equal(down.seen.reason, 'noconnection');

  const again = await child('victim', 2);
  assert.ok(again.incarnation > victim.incarnation, 'a restarted node has a larger incarnation');
  await waitForMembers(driver.cluster!, 'the new victim up', isUp('victim', again.incarnation));
  const late: CallResult[] = [];
  driver.main.spawn(async (ctx) => {
    late.push(await call(ctx, server, 'hi', 5_000));
  });
  await until(() => late.length === 1, 10_000, 'a call to a pid of the old life');
  assert.deepEqual(late, [{ ok: false, reason: 'noproc' }]);
});

test('a cut route between NATS servers partitions the cluster: both sides see the other down, and both are up again once the route is back', async () => {
  const probe = spawnProbe(driver.main);
  const onN1 = await spawnThere('n1', 0, { module: CLUSTER_BODIES, fn: 'nodeEvents', args: [probe.pid] });
  await probe.next((m) => (m as { monitoringNodes?: boolean }).monitoringNodes === true, 5_000);
  const from = events.length;
  await nats.isolate(1);
  await waitForMembers(driver.cluster!, 'n1 down behind the cut', (peers) => !isUp('n1')(peers), 10_000);
  await nats.rejoin(1);
  await waitForMembers(driver.cluster!, 'n1 back', isUp('n1'), 15_000);
  const seq = events.slice(from).filter((e) => e.member.name === 'n1').map((e) => e.type);
  assert.deepEqual(seq.slice(0, 2), ['down', 'up']);
  driver.send(onN1, { report: probe.pid });
  const r = await probe.next<{ nodeEvents: Array<{ type: string; node: string }> }>((m) => (m as { nodeEvents?: unknown }).nodeEvents !== undefined, 5_000);
  const aboutDriver = r.nodeEvents.filter((e) => e.node === 'driver').map((e) => e.type);
  assert.deepEqual(aboutDriver.slice(0, 2), ['NODE_DOWN', 'NODE_UP'], 'n1 saw the driver go down and come back');
});

test('losing its NATS server: the node fires noconnection, reconnects to another server, and comes back as a new view with its processes alive', async () => {
  const roamer = await child('roamer', 2, { servers: [nats.url(2), nats.url(1)], noRandomize: true });
  await waitForMembers(driver.cluster!, 'roamer up', isUp('roamer', roamer.incarnation));
  const probe = spawnProbe(driver.main);
  const echo = await spawnThere('roamer', 0, { module: BODIES, fn: 'echo' });
  // Not linked to anything: it must outlive the lost link (the linked echo dies with noconnection).
  const survivor = await spawnThere('roamer', 0, { module: BODIES, fn: 'echo' });
  const watch = spawnProbe(driver.main);
  assert.ok((await driver.spawnOn(0, { module: CLUSTER_BODIES, fn: 'watcher', args: [echo, watch.pid] })).ok);
  await watch.next((m) => (m as { watching?: Pid }).watching !== undefined);
  // on the roamer: a recorder monitoring a driver process, asked for what it saw afterwards
  const recorder = await spawnThere('roamer', 1, { module: BODIES, fn: 'recorder' });
  const target = driver.spawn(() => () => {});
  await spawnThere('roamer', 1, { module: CLUSTER_BODIES, fn: 'watcher', args: [target, recorder, probe.pid] });
  await probe.next((m) => (m as { watching?: Pid }).watching !== undefined, 5_000);
  driver.send(survivor, { replyTo: probe.pid, body: 'ready' });
  await probe.next((m) => (m as { echo?: string }).echo === 'ready', 5_000);
  const down = events.length;
  await nats.kill(2);
  const ex = await watch.next<{ seen: { reason: unknown } }>((m) => isExitMessage((m as { seen?: unknown }).seen), 10_000);
  assert.equal(ex.seen.reason, 'noconnection');
  await waitForMembers(driver.cluster!, 'roamer back', (peers) => events.slice(down).some((e) => e.type === 'down' && e.member.name === 'roamer') && isUp('roamer', roamer.incarnation)(peers), 15_000);
  const seq = events.slice(down).filter((e) => e.member.name === 'roamer').map((e) => e.type);
  assert.deepEqual(seq.slice(0, 2), ['down', 'up'], 'peers see it down and up again');
  driver.send(survivor, { replyTo: probe.pid, body: 'after' });
  const r = await probe.next<{ echo: string }>((m) => (m as { echo?: string }).echo === 'after', 10_000);
  assert.equal(r.echo, 'after', 'its processes survived the lost link');
  driver.send(recorder, { report: probe.pid });
  const report = await probe.next<{ seen: unknown[] }>((m) => Array.isArray((m as { seen?: unknown }).seen), 5_000);
  const onRoamer = report.seen.map((m) => (m as { seen?: { type?: string; reason?: unknown } }).seen).filter((m) => m !== undefined);
  assert.ok(onRoamer.some((m) => m!.type === 'DOWN' && m!.reason === 'noconnection'), `the roamer's monitor fired noconnection: ${JSON.stringify(report.seen)}`);
  await nats.restart(2);
});
