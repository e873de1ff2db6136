/**
 * Several Iris nodes in one simulated world (sim/SimCluster.ts): the unchanged distribution
 * layer on each node's own connection to the NATS server model, its membership across faults
 * of nodes, servers and the network, and the JetStream model reached through each node's Env.
 * Each scenario runs twice with its trace hash compared.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLUSTER_DOWN_AFTER_MS, CLUSTER_HEARTBEAT_MS, NATS_PING_INTERVAL_MS } from '../../runtime/defaults.js';
import { SimCluster } from '../../sim/SimCluster.js';
import { NATS_CLIENT_MAX_PING_OUT } from '../../sim/SimNats.js';
import { replayTwice } from './replayTwice.js';

/** A down is noticed at the distribution's next sweep after down-after (its tick is an eighth of it). */
const DETECT_SLACK_MS = CLUSTER_DOWN_AFTER_MS / 8 + 50;

async function started(seed: number, nodes = 5): Promise<SimCluster> {
  const c = new SimCluster({ seed, nodes, servers: 3 });
  c.start();
  await c.waitFor('every node to see every other', () => c.converged(), 5_000);
  return c;
}

/** What `observer` saw of `subject` since `from`: `down:<cause>` and `up`, in order. */
function seen(c: SimCluster, observer: string, subject: string, from: number): string[] {
  return c.node(observer).membership.filter((m) => m.at >= from && m.event.member.name === subject).map((m) => (m.event.type === 'down' ? `down:${m.event.cause}` : 'up'));
}

function firstDownAt(c: SimCluster, observer: string, subject: string, from: number): number {
  return c.node(observer).membership.find((m) => m.at >= from && m.event.member.name === subject && m.event.type === 'down')?.at ?? -1;
}

test('five nodes on three servers see each other up within a second and stay so', async () => {
  const r = await replayTwice('start', async () => {
    const c = new SimCluster({ seed: 1, nodes: 5, servers: 3 });
    c.start();
    await c.waitFor('convergence', () => c.converged(), 1_000);
    const at = c.now;
    await c.run(30_000);
    const downs = c.nodes.flatMap((n) => n.membership.filter((m) => m.event.type === 'down'));
    return { hash: c.traceHash(), events: c.world.events, at, converged: c.converged(), downs: downs.length, servers: c.nodes.map((n) => c.serverOf(n.name)) };
  });
  assert.ok(r.at <= 1_000);
  assert.equal(r.converged, true);
  assert.equal(r.downs, 0, 'no node was ever seen down');
  assert.deepEqual(r.servers, ['nats1', 'nats2', 'nats3', 'nats1', 'nats2']);
});

test('a node cut off from its server is seen down by every other node in time, notices at its ping timeout, reconnects elsewhere and comes back as a new view', async () => {
  const r = await replayTwice('node cut', async () => {
    const c = await started(2);
    await c.run(777);
    const server = c.serverOf('n1')!;
    const cutAt = c.now;
    c.partition('n1', server);
    await c.waitFor('n1 on another server and everyone converged', () => c.serverOf('n1') !== null && c.serverOf('n1') !== server && c.converged(), 60_000);
    const others = ['n0', 'n2', 'n3', 'n4'];
    return {
      hash: c.traceHash(),
      events: c.world.events,
      downAfter: others.map((o) => firstDownAt(c, o, 'n1', cutAt) - cutAt),
      views: others.map((o) => seen(c, o, 'n1', cutAt)),
      n1Saw: seen(c, 'n1', 'n0', cutAt),
      linkLost: c.node('n1').membership.some((m) => m.at >= cutAt && m.event.type === 'down' && m.event.cause === 'link_lost'),
      backAfter: c.now - cutAt,
    };
  });
  // Silence counts from n1's last heartbeat, up to one interval before the cut.
  for (const d of r.downAfter) assert.ok(d >= CLUSTER_DOWN_AFTER_MS - CLUSTER_HEARTBEAT_MS && d <= CLUSTER_DOWN_AFTER_MS + DETECT_SLACK_MS, `seen down ${d} ms after the cut`);
  for (const v of r.views) assert.deepEqual(v, ['down:silence', 'up'], 'down by silence, then up again: a new view');
  assert.deepEqual(r.n1Saw, ['down:silence', 'up'], 'n1 saw the others go silent, then back');
  assert.equal(r.linkLost, false, 'the others were already down by silence when n1 noticed its link');
  assert.ok(r.backAfter > (NATS_CLIENT_MAX_PING_OUT + 1) * NATS_PING_INTERVAL_MS, `back ${r.backAfter} ms after the cut, not before its client noticed`);
});

test('a NATS server crash: its nodes notice at once, reconnect to the other servers and every node sees them up again after a reset', async () => {
  const r = await replayTwice('server crash', async () => {
    const c = await started(3);
    await c.run(1_111);
    const victims = c.nodes.filter((n) => c.serverOf(n.name) === 'nats1').map((n) => n.name);
    const at = c.now;
    c.killServer('nats1');
    await c.waitFor('every node converged on the remaining servers', () => victims.every((v) => c.serverOf(v) !== null && c.serverOf(v) !== 'nats1') && c.converged(), 10_000);
    const tookMs = c.now - at;
    await c.run(10_000);
    return {
      hash: c.traceHash(),
      events: c.world.events,
      victims,
      tookMs,
      movedTo: victims.map((v) => c.serverOf(v)),
      victimSaw: seen(c, victims[0]!, 'n2', at),
      othersSaw: seen(c, 'n2', victims[0]!, at),
      converged: c.converged(),
    };
  });
  assert.deepEqual(r.victims, ['n0', 'n3']);
  assert.ok(r.movedTo.every((s) => s === 'nats2' || s === 'nats3'));
  assert.ok(r.tookMs < CLUSTER_HEARTBEAT_MS * 2, `converged ${r.tookMs} ms after the crash`);
  assert.deepEqual(r.victimSaw, ['down:link_lost', 'up'], 'a node that lost its link takes every peer down at once');
  assert.deepEqual(r.othersSaw, ['down:reset', 'up'], 'its peers reset the connection: no link or monitor survives the blip');
  assert.equal(r.converged, true);
});

test('a route cut between servers splits the nodes on either side; healed, they come back as new views', async () => {
  const r = await replayTwice('route cut', async () => {
    const c = await started(4);
    const cutAt = c.now;
    c.partition('nats1', 'nats2');
    c.partition('nats1', 'nats3');
    await c.run(CLUSTER_DOWN_AFTER_MS + DETECT_SLACK_MS);
    const split = { n0: c.viewOf('n0'), n2: c.viewOf('n2') };
    const healAt = c.now;
    c.heal();
    await c.waitFor('convergence after the heal', () => c.converged(), 10_000);
    return { hash: c.traceHash(), events: c.world.events, split, tookMs: c.now - healAt, n2Saw: seen(c, 'n2', 'n0', cutAt) };
  });
  assert.deepEqual(r.split, { n0: ['n0', 'n3'], n2: ['n1', 'n2', 'n4'] });
  assert.deepEqual(r.n2Saw, ['down:silence', 'up']);
  assert.ok(r.tookMs <= CLUSTER_HEARTBEAT_MS * 2, `healed views within ${r.tookMs} ms (the routes never noticed the cut)`);
});

test('a crashed node is seen down by silence and its restart is a new incarnation seen up everywhere', async () => {
  const r = await replayTwice('node crash', async () => {
    const c = await started(5);
    const before = c.node('n4').dist!.self.incarnation;
    const at = c.now;
    c.crashNode('n4');
    await c.run(CLUSTER_DOWN_AFTER_MS + DETECT_SLACK_MS);
    const without = c.viewOf('n0');
    c.restartNode('n4');
    await c.waitFor('convergence with the new incarnation', () => c.converged(), 5_000);
    const seenInc = c.node('n0').dist!.peers().find((m) => m.name === 'n4')?.incarnation;
    return { hash: c.traceHash(), events: c.world.events, before, after: c.node('n4').dist!.self.incarnation, seenInc, without, causes: seen(c, 'n0', 'n4', at) };
  });
  assert.deepEqual(r.without, ['n0', 'n1', 'n2', 'n3']);
  assert.ok(r.after > r.before);
  assert.equal(r.seenInc, r.after);
  assert.deepEqual(r.causes, ['down:silence', 'up']);
});

test('a pause longer than down-after is seen down and back; clock skew and wall-clock jumps change nothing', async () => {
  const r = await replayTwice('pause and clocks', async () => {
    const c = new SimCluster({ seed: 6, nodes: 5, servers: 3 });
    c.skewClock('n1', 4_321);
    c.skewClock('n2', -2_500);
    c.start();
    await c.waitFor('every node to see every other', () => c.converged(), 5_000);
    c.jumpClock('n3', -60_000);
    c.jumpClock('n2', 90_000);
    await c.run(10_000);
    const quiet = c.nodes.flatMap((n) => n.membership.filter((m) => m.event.type === 'down')).length;
    const at = c.now;
    c.pauseNode('n0', CLUSTER_DOWN_AFTER_MS * 2);
    await c.run(CLUSTER_DOWN_AFTER_MS * 2);
    await c.waitFor('convergence after the pause', () => c.converged(), 10_000);
    return { hash: c.traceHash(), events: c.world.events, quiet, causes: seen(c, 'n1', 'n0', at) };
  });
  assert.equal(r.quiet, 0, 'skew and jumps took nobody down');
  assert.deepEqual(r.causes, ['down:silence', 'up']);
});

test('a node\'s Env streams go through its own server to the JetStream model, and answer unavailable at once while its link is down', async () => {
  const r = await replayTwice('streams', async () => {
    const c = await started(7, 3);
    const js = c.jetstream!;
    await c.waitFor('the JetStream API', () => js.apiReady());
    const store = (n: string) => c.node(n).env!.streams!;
    const created = await c.settle(store('n0').ensureStream({ name: 'S', subjects: ['s.>'], replicas: 3, duplicateWindowMs: 120_000 }));
    const appended = [];
    for (const n of ['n0', 'n1', 'n2']) appended.push(await c.settle(store(n).append('S', 's.x', new Uint8Array([1]), { msgId: n })));
    c.disconnectNode('n2');
    const offline = await c.settle(store('n2').append('S', 's.x', new Uint8Array([2])));
    c.reconnectNode('n2');
    const last = await c.settle(store('n2').lastOnSubject('S', 's.x'));
    return { hash: c.traceHash(), events: c.world.events, created, appended: appended.map((a) => (a.ok ? a.seq : a.reason)), offline: offline.ok ? 'ok' : offline.reason, last: last.ok ? last.entry.msgId : last.reason };
  });
  assert.deepEqual(r.created, { ok: true, created: true });
  assert.deepEqual(r.appended, [1, 2, 3]);
  assert.equal(r.offline, 'unavailable');
  assert.equal(r.last, 'n2');
});
