/**
 * The NATS server model (sim/SimNats.ts, sim/SimNatsClient.ts) with several servers: a
 * client moves to another server when its own dies (noticed at once) or goes silent (noticed
 * at the client's ping timeout), keeping its subscriptions; a route cut is noticed only at the
 * route ping timeout, so requests across it time out until then and answer no_responders
 * after; one-way cuts; per-publisher order across servers; a client with no server keeps
 * trying. Each scenario runs twice with its trace hash compared.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterTransport, TransportLinkState, TransportReply } from '../../runtime/Env.js';
import { NATS_PING_INTERVAL_MS, NATS_RECONNECT_WAIT_MS } from '../../runtime/defaults.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { NATS_CLIENT_MAX_PING_OUT, NATS_SERVER_MAX_PINGS_OUT, SimNats, type SimNatsOptions } from '../../sim/SimNats.js';
import type { SimNatsClient } from '../../sim/SimNatsClient.js';
import { SimWorld } from '../../sim/SimWorld.js';
import { replayTwice } from './replayTwice.js';

const SERVERS = ['s1', 's2', 's3'];
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

interface Net {
  readonly world: SimWorld;
  readonly nats: SimNats;
  connect(node: string, server: string): { client: SimNatsClient; t: ClusterTransport; states: { at: number; state: TransportLinkState }[] };
  run(ms: number): Promise<void>;
  settle<T>(p: Promise<T>): Promise<T>;
  hash(): string;
}

function net(seed: number, opts: SimNatsOptions = {}): Net {
  const world = new SimWorld({ seed });
  const nats = new SimNats(world, world.random('nats'), { servers: SERVERS, ...opts });
  return {
    world,
    nats,
    connect(node, server) {
      const owner: SimOwner = { name: node, alive: true, pausedUntil: 0, backlog: [] };
      const client = nats.connectClient(node, owner, server);
      const states: { at: number; state: TransportLinkState }[] = [];
      client.transport.onLinkState((state) => states.push({ at: world.now, state }));
      return { client, t: client.transport, states };
    },
    run: (ms) => world.runUntil(world.now + ms).then(() => undefined),
    async settle<T>(p: Promise<T>): Promise<T> {
      let done = false;
      let v: T | undefined;
      void p.then((x) => {
        done = true;
        v = x;
      });
      while (!done) await world.runUntil(world.now + 1);
      return v as T;
    },
    hash: () => world.hash.toString(16).padStart(8, '0'),
  };
}

const serve = (t: ClusterTransport, subject: string): void => {
  t.subscribe(subject, (d, _s, reply) => reply !== undefined && t.publish(reply, bytes(`re:${text(d)}`)));
};
const outcome = (r: TransportReply): string => (r.ok ? text(r.data) : r.reason);

test('a node whose server is killed notices at once and moves to another server within milliseconds, its subscriptions with it', async () => {
  const r = await replayTwice('server killed', async () => {
    const n = net(1);
    const a = n.connect('a', 's1');
    const b = n.connect('b', 's2');
    const got: string[] = [];
    b.t.subscribe('x', (d) => got.push(text(d)));
    a.t.publish('x', bytes('before'));
    await n.run(10);
    const killedAt = n.world.now;
    n.nats.crashServer('s2');
    await n.run(100);
    a.t.publish('x', bytes('after'));
    await n.run(10);
    return { hash: n.hash(), events: n.world.events, got, states: b.states.map((s) => `${s.state}@${s.at - killedAt}`), server: b.client.lastServer };
  });
  assert.deepEqual(r.got, ['before', 'after']);
  assert.equal(r.states.length, 2);
  assert.equal(r.states[0], 'down@0', 'the reset is noticed at once');
  assert.match(r.states[1]!, /^up@[1-9]$/, 'another server takes it within a few ms');
  assert.notEqual(r.server, 's2');
});

test('a silent cut between a node and its server is noticed at the client ping timeout, the node moves on, and the server keeps the abandoned connection until its own ping timeout', async () => {
  const r = await replayTwice('client cut', async () => {
    const n = net(2, { serverPingIntervalMs: 30_000 });
    const a = n.connect('a', 's1');
    const b = n.connect('b', 's2');
    serve(b.t, 'svc');
    await n.run(1_234);
    const cutAt = n.world.now;
    n.nats.partition('b', 's2');
    const during = outcome(await n.settle(a.t.request('svc', bytes('q'), 1_000)));
    await n.run(25_000);
    const sessionsAfterMove = b.client.sessions.length;
    const moved = outcome(await n.settle(a.t.request('svc', bytes('q'), 1_000)));
    await n.run(90_000);
    return { hash: n.hash(), events: n.world.events, during, moved, sessionsAfterMove, sessionsLater: b.client.sessions.length, states: b.states.map((s) => ({ state: s.state, after: s.at - cutAt })), server: b.client.lastServer };
  });
  assert.equal(r.during, 'timeout', 'before the timeout the servers still route to the cut connection');
  const [down, up] = r.states;
  const ping = NATS_PING_INTERVAL_MS;
  assert.equal(down?.state, 'down');
  assert.ok(down!.after > (NATS_CLIENT_MAX_PING_OUT + 1) * ping && down!.after <= (NATS_CLIENT_MAX_PING_OUT + 2) * ping, `noticed ${down!.after} ms after the cut`);
  assert.equal(up?.state, 'up');
  assert.ok(up!.after - down!.after < 50, 'and connected elsewhere at once');
  assert.notEqual(r.server, 's2');
  assert.equal(r.moved, 're:q', 'answered from its new server');
  assert.equal(r.sessionsAfterMove, 2, 'the old server still counts the abandoned connection');
  assert.equal(r.sessionsLater, 1, 'until its own ping timeout');
});

test('a route cut is noticed only at the route ping timeout (a request across it times out until then, answers no_responders after); healed, it is back within the reconnect delay; a crash is noticed at once', async () => {
  const routePing = 10_000;
  const r = await replayTwice('route cut', async () => {
    const n = net(3, { routePingIntervalMs: routePing });
    const a = n.connect('a', 's1');
    const b = n.connect('b', 's2');
    serve(b.t, 'svc');
    await n.run(2_500);
    const before = outcome(await n.settle(a.t.request('svc', bytes('1'), 500)));
    n.nats.partition('s1', 's2');
    const cutAt = n.world.now;
    const early = outcome(await n.settle(a.t.request('svc', bytes('2'), 500)));
    let noticedAfter = -1;
    while (noticedAfter < 0) {
      await n.run(500);
      if (n.nats.believesRoute('s1', 's2') === false) noticedAfter = n.world.now - cutAt;
    }
    const late = outcome(await n.settle(a.t.request('svc', bytes('3'), 500)));
    n.nats.heal();
    await n.run(1_100);
    const healed = outcome(await n.settle(a.t.request('svc', bytes('4'), 500)));
    n.nats.crashServer('s3');
    const crashNoticed = !n.nats.believesRoute('s1', 's3') && !n.nats.believesRoute('s2', 's3');
    return { hash: n.hash(), events: n.world.events, before, early, late, healed, noticedAfter, crashNoticed };
  });
  assert.deepEqual([r.before, r.early, r.late, r.healed], ['re:1', 'timeout', 'no_responders', 're:4']);
  assert.equal(r.crashNoticed, true, 'a crashed server is noticed by its peers at once (reset)');
  assert.ok(r.noticedAfter > NATS_SERVER_MAX_PINGS_OUT * routePing && r.noticedAfter <= (NATS_SERVER_MAX_PINGS_OUT + 1) * routePing + 500, `noticed ${r.noticedAfter} ms after the cut`);
});

test('a one-way cut between two servers loses messages in that direction only', async () => {
  const r = await replayTwice('one-way route', async () => {
    const n = net(4);
    const a = n.connect('a', 's1');
    const b = n.connect('b', 's2');
    const atA: string[] = [];
    const atB: string[] = [];
    a.t.subscribe('s', (d) => atA.push(text(d)));
    b.t.subscribe('s', (d) => atB.push(text(d)));
    n.nats.partition('s1', 's2', true);
    a.t.publish('s', bytes('from-a'));
    b.t.publish('s', bytes('from-b'));
    await n.run(50);
    return { hash: n.hash(), events: n.world.events, atA, atB };
  });
  assert.deepEqual(r.atA, ['from-a', 'from-b']);
  assert.deepEqual(r.atB, ['from-b']);
});

test('one publisher\'s messages keep their order at subscribers on its own server and across a route', async () => {
  const r = await replayTwice('order', async () => {
    const n = net(5);
    const p = n.connect('p', 's1');
    const near = n.connect('near', 's1');
    const far = n.connect('far', 's3');
    const gotNear: number[] = [];
    const gotFar: number[] = [];
    near.t.subscribe('o.*', (d) => gotNear.push(Number(text(d))));
    far.t.subscribe('o.>', (d) => gotFar.push(Number(text(d))));
    for (let i = 0; i < 500; i++) p.t.publish(i % 2 === 0 ? 'o.a' : 'o.b', bytes(String(i)));
    await n.run(100);
    return { hash: n.hash(), events: n.world.events, gotNear, gotFar };
  });
  const all = Array.from({ length: 500 }, (_, i) => i);
  assert.deepEqual(r.gotNear, all);
  assert.deepEqual(r.gotFar, all);
});

test('a node that can reach no server keeps trying, each server again after the reconnect wait, and connects when one is back', async () => {
  const r = await replayTwice('no servers', async () => {
    const n = net(6);
    const a = n.connect('a', 's1');
    for (const s of SERVERS) n.nats.crashServer(s);
    await n.run(5_000);
    const downFor = n.world.now;
    n.nats.restartServer('s3');
    await n.run(2 * NATS_RECONNECT_WAIT_MS + 50);
    return { hash: n.hash(), events: n.world.events, states: a.states.map((s) => s.state), upAfter: (a.states.at(-1)?.at ?? 0) - downFor, server: a.client.lastServer };
  });
  assert.deepEqual(r.states, ['down', 'up']);
  assert.equal(r.server, 's3');
  assert.ok(r.upAfter <= 2 * NATS_RECONNECT_WAIT_MS + 10, `connected ${r.upAfter} ms after the server came back`);
});
