/**
 * The ClusterTransport contract, written once and run against the production transport
 * (test/runtime/NatsTransport.test.ts, real nats-server) and the simulator's
 * (test/sim/TransportRules.test.ts, SimNats), so the two stay twins: wildcard subjects, queue
 * groups, request/reply with no_responders and timeouts, per-publisher order, at most once,
 * link state when a node's link is lost and back, and a closed transport.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClusterTransport, TransportLinkState } from '../../runtime/Env.js';
import { connectNats, type NatsTransport } from '../../runtime/node/NatsTransport.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { SimNats } from '../../sim/SimNats.js';
import { SimWorld } from '../../sim/SimWorld.js';
import { NatsCluster } from './natsCluster.js';
import { TcpProxy } from './tcpProxy.js';

export interface TransportHarness {
  readonly kind: 'nats' | 'sim';
  /** A transport for node `name` (a fresh client connection). */
  connect(name: string): Promise<ClusterTransport>;
  /** The link of `name`'s transport is lost (`restore` brings it back). */
  lose(name: string): Promise<void>;
  restore(name: string): Promise<void>;
  waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs?: number): Promise<T>;
  settle<T>(p: Promise<T>): Promise<T>;
  idle(ms: number): Promise<void>;
  close(): Promise<void>;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Real NATS: a 3-server cluster; each transport through a proxy to a different server. */
export async function natsTransportHarness(): Promise<TransportHarness> {
  const cluster = await NatsCluster.start({ jetstream: false });
  const made = new Map<string, { t: NatsTransport; proxy: TcpProxy }>();
  let placed = 0;
  const h: TransportHarness = {
    kind: 'nats',
    async connect(name) {
      const proxy = await TcpProxy.start(cluster.port(placed++ % cluster.size));
      const r = await connectNats({ servers: [proxy.url], name, ignoreClusterUpdates: true, reconnectWaitMs: 50 });
      if (!r.ok) throw new Error(r.message);
      made.set(name, { t: r.transport, proxy });
      await r.transport.flush();
      return r.transport;
    },
    async lose(name) {
      const m = made.get(name)!;
      m.proxy.pause();
      m.proxy.sever();
      await h.waitFor('the link to drop', () => m.t.linkState === 'down');
    },
    async restore(name) {
      const m = made.get(name)!;
      m.proxy.resume();
      await h.waitFor('the link back', () => m.t.linkState === 'up');
      await m.t.flush();
    },
    async waitFor(what, probe, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    settle: (p) => p,
    idle: (ms) => new Promise((r) => setTimeout(r, ms)),
    async close() {
      for (const m of made.values()) {
        await m.t.close();
        await m.proxy.close();
      }
      await cluster.stopAll();
    },
  };
  return h;
}

/** SimNats in virtual time. */
export function simTransportHarness(seed = 11): TransportHarness {
  const world = new SimWorld({ seed });
  const nats = new SimNats(world, world.random('nats'));
  const h: TransportHarness = {
    kind: 'sim',
    async connect(name) {
      const owner: SimOwner = { name, alive: true, pausedUntil: 0, backlog: [] };
      return nats.connect(name, owner);
    },
    async lose(name) {
      nats.disconnect(name);
      await world.runUntil(world.now + 1);
    },
    async restore(name) {
      nats.reconnect(name);
      await world.runUntil(world.now + 1);
    },
    async waitFor(what, probe, timeoutMs = 5_000) {
      const deadline = world.now + timeoutMs;
      for (;;) {
        const v = probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (world.now >= deadline) throw new Error(`timed out waiting for ${what}`);
        await world.runUntil(Math.min(deadline, world.now + 5));
      }
    },
    async settle(p) {
      let done = false;
      let failed = false;
      let value: unknown;
      p.then(
        (v) => {
          done = true;
          value = v;
        },
        (e: unknown) => {
          done = failed = true;
          value = e;
        },
      );
      await h.waitFor('a promise', () => done);
      if (failed) throw value;
      return value as Awaited<typeof p>;
    },
    idle: (ms) => world.runUntil(world.now + ms).then(() => undefined),
    async close() {},
  };
  return h;
}

/** Register the transport rules as tests of this file. */
export function transportRules(make: () => Promise<TransportHarness> | TransportHarness): void {
  let h: TransportHarness;
  let n = 0;
  const fresh = (): string => `t${++n}`;
  before(async () => {
    h = await make();
  });
  let probes = 0;
  /**
   * Wait until what `pub` publishes reaches the subscriptions `sub` has made so far. In a NATS
   * cluster a subscription's interest crosses the routes after `flush` returns; a connection's
   * subscriptions travel in order, so a probe subscribed last arrives only after the others.
   */
  const heard = async (pub: ClusterTransport, sub: ClusterTransport): Promise<void> => {
    const subject = `probe.${++probes}`;
    let got = false;
    const probe = sub.subscribe(subject, () => {
      got = true;
    });
    await sub.flush();
    for (let i = 0; i < 100 && !got; i++) {
      pub.publish(subject, bytes('?'));
      await pub.flush();
      await h.idle(20);
    }
    probe.unsubscribe();
    assert.ok(got, `${subject} never arrived`);
  };
  after(async () => {
    await h?.close();
  });

  test('a subscription gets exactly the subjects its pattern matches (* one token, > the rest)', async () => {
    const [pub, sub] = [await h.connect(fresh()), await h.connect(fresh())];
    const star: string[] = [];
    const rest: string[] = [];
    const exact: string[] = [];
    sub.subscribe('w.*', (_d, s) => star.push(s));
    sub.subscribe('w.>', (_d, s) => rest.push(s));
    sub.subscribe('w.a', (_d, s) => exact.push(s));
    await heard(pub, sub);
    for (const s of ['w.a', 'w.b.c', 'x.a', 'w']) pub.publish(s, bytes(s));
    pub.publish('w.end', bytes('end'));
    await h.waitFor('the last message', () => star.includes('w.end'));
    assert.deepEqual(star, ['w.a', 'w.end']);
    assert.deepEqual(rest, ['w.a', 'w.b.c', 'w.end']);
    assert.deepEqual(exact, ['w.a']);
  });

  test('a queue group gets each message once, spread over its members, each member in publish order', async () => {
    const [pub, m1, m2, plain] = [await h.connect(fresh()), await h.connect(fresh()), await h.connect(fresh()), await h.connect(fresh())];
    const got1: number[] = [];
    const got2: number[] = [];
    const all: number[] = [];
    m1.subscribe('q.work', (d) => got1.push(Number(text(d))), { queue: 'workers' });
    m2.subscribe('q.work', (d) => got2.push(Number(text(d))), { queue: 'workers' });
    plain.subscribe('q.work', (d) => all.push(Number(text(d))));
    for (const t of [m1, m2, plain]) await heard(pub, t);
    const N = 200;
    for (let i = 0; i < N; i++) pub.publish('q.work', bytes(String(i)));
    await h.waitFor('every message once in the group', () => got1.length + got2.length === N && all.length === N);
    assert.deepEqual([...got1, ...got2].sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i));
    assert.ok(got1.length > 0 && got2.length > 0, `both members take a share (${got1.length}/${got2.length})`);
    assert.deepEqual(got1, [...got1].sort((x, y) => x - y));
    assert.deepEqual(got2, [...got2].sort((x, y) => x - y));
    assert.deepEqual(all, Array.from({ length: N }, (_, i) => i));
  });

  test('one publisher\'s messages reach a subscriber in publish order, across subjects', async () => {
    const [pub, sub] = [await h.connect(fresh()), await h.connect(fresh())];
    const got: string[] = [];
    sub.subscribe('o.a', (d) => got.push(text(d)));
    sub.subscribe('o.b', (d) => got.push(text(d)));
    await heard(pub, sub);
    const sent: string[] = [];
    for (let i = 0; i < 1_000; i++) {
      const m = `${i % 3 === 0 ? 'a' : 'b'}${i}`;
      sent.push(m);
      pub.publish(i % 3 === 0 ? 'o.a' : 'o.b', bytes(m));
    }
    await h.waitFor('all', () => got.length === sent.length);
    assert.deepEqual(got, sent);
  });

  test('request/reply: the first answer, no_responders when nobody listens, timeout when nobody answers', async () => {
    const [client, server] = [await h.connect(fresh()), await h.connect(fresh())];
    server.subscribe('svc.echo', (d, _s, reply) => {
      if (reply !== undefined) server.publish(reply, bytes(`re:${text(d)}`));
    });
    server.subscribe('svc.silent', () => {});
    await heard(client, server);
    const answered = await h.settle(client.request('svc.echo', bytes('hi'), 2_000));
    assert.equal(answered.ok, true);
    assert.equal(answered.ok && text(answered.data), 're:hi');
    assert.deepEqual(await h.settle(client.request('svc.nobody', bytes('x'), 2_000)), { ok: false, reason: 'no_responders' });
    assert.deepEqual(await h.settle(client.request('svc.silent', bytes('x'), 150)), { ok: false, reason: 'timeout' });
  });

  test('a lost link is reported down, what is published to it meanwhile is lost, and it is up again with its subscriptions', async () => {
    const subName = fresh();
    const [pub, sub] = [await h.connect(fresh()), await h.connect(subName)];
    const states: TransportLinkState[] = [];
    sub.onLinkState((s) => states.push(s));
    const got: string[] = [];
    sub.subscribe('l.s', (d) => got.push(text(d)));
    await heard(pub, sub);
    pub.publish('l.s', bytes('before'));
    await h.waitFor('before', () => got.length === 1);
    await h.lose(subName);
    assert.equal(sub.linkState, 'down');
    pub.publish('l.s', bytes('while-down'));
    await pub.flush();
    await h.idle(100);
    await h.restore(subName);
    assert.equal(sub.linkState, 'up');
    await heard(pub, sub);
    pub.publish('l.s', bytes('after'));
    await h.waitFor('after', () => got.includes('after'));
    assert.deepEqual(got, ['before', 'after']);
    assert.deepEqual(states, ['down', 'up']);
  });

  test('a closed transport neither sends nor receives, and reports closed', async () => {
    const [pub, sub] = [await h.connect(fresh()), await h.connect(fresh())];
    const got: string[] = [];
    const states: TransportLinkState[] = [];
    sub.onLinkState((s) => states.push(s));
    sub.subscribe('c.s', (d) => got.push(text(d)));
    await sub.flush();
    await sub.close();
    pub.publish('c.s', bytes('x'));
    sub.publish('c.s', bytes('y'));
    await pub.flush();
    await h.idle(50);
    assert.deepEqual(got, []);
    assert.equal(sub.linkState, 'closed');
    assert.deepEqual(states, ['closed']);
    assert.deepEqual(await h.settle(sub.request('c.s', bytes('z'), 100)), { ok: false, reason: 'closed' });
    assert.ok(pub.maxPayload >= 1024 * 1024, 'max payload is at least the server default');
  });
}
