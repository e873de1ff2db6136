/**
 * The simulated NATS the cluster will run on in the simulator: wildcard subjects, queue
 * groups, per-publisher order, request/reply with no_responders and timeouts, partitions
 * (symmetric and one-way) losing what crosses the cut, and nothing delivered to a crashed node.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SimOwner } from '../../sim/EventQueue.js';
import { SimNats, subjectMatches } from '../../sim/SimNats.js';
import { SimWorld } from '../../sim/SimWorld.js';

const owner = (name: string): SimOwner => ({ name, alive: true, pausedUntil: 0, backlog: [] });
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function setup(): { world: SimWorld; nats: SimNats } {
  const world = new SimWorld({ seed: 5 });
  return { world, nats: new SimNats(world, world.random('nats')) };
}

test('subjects match with * for one token and > for the rest', () => {
  const m = (p: string, s: string): boolean => subjectMatches(p.split('.'), s);
  assert.equal(m('a.b', 'a.b'), true);
  assert.equal(m('a.*', 'a.b'), true);
  assert.equal(m('a.*', 'a.b.c'), false);
  assert.equal(m('a.>', 'a.b.c'), true);
  assert.equal(m('a.>', 'a'), false);
  assert.equal(m('*.b', 'x.b'), true);
  assert.equal(m('a.b', 'a.c'), false);
});

test('a queue group gets each message once, plain subscribers get every message, in publish order', async () => {
  const { world, nats } = setup();
  const a = nats.connect('a', owner('a'));
  const b = nats.connect('b', owner('b'));
  const c = nats.connect('c', owner('c'));
  const plain: string[] = [];
  const grouped: string[] = [];
  a.subscribe('work.*', (d) => plain.push(text(d)));
  b.subscribe('work.>', (d) => grouped.push(`b:${text(d)}`), { queue: 'q' });
  c.subscribe('work.*', (d) => grouped.push(`c:${text(d)}`), { queue: 'q' });
  for (let i = 0; i < 50; i++) a.publish('work.x', bytes(String(i)));
  await world.runUntil(1000);
  assert.deepEqual(plain, Array.from({ length: 50 }, (_, i) => String(i)));
  assert.equal(grouped.length, 50);
  const seen = grouped.map((g) => Number(g.slice(2)));
  assert.deepEqual([...seen].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.ok(grouped.some((g) => g.startsWith('b:')) && grouped.some((g) => g.startsWith('c:')), 'both members take a share');
  for (const who of ['b:', 'c:']) {
    const mine = grouped.filter((g) => g.startsWith(who)).map((g) => Number(g.slice(2)));
    assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `${who} sees its messages in publish order`);
  }
});

test('request/reply: an answer, no_responders when nobody listens, timeout across a partition', async () => {
  const { world, nats } = setup();
  const a = nats.connect('a', owner('a'));
  const b = nats.connect('b', owner('b'));
  b.subscribe('echo', (d, _s, reply) => reply !== undefined && b.publish(reply, bytes(`re:${text(d)}`)));
  const answered = a.request('echo', bytes('hi'), 100);
  const nobody = a.request('nobody', bytes('x'), 100);
  await world.runUntil(200);
  assert.deepEqual(await answered, { ok: true, data: bytes('re:hi') });
  assert.deepEqual(await nobody, { ok: false, reason: 'no_responders' });
  nats.partition('a', 'b');
  const cut = a.request('echo', bytes('lost'), 100);
  await world.runUntil(400);
  assert.deepEqual(await cut, { ok: false, reason: 'timeout' });
});

test('a one-way partition loses messages in one direction only; heal restores both', async () => {
  const { world, nats } = setup();
  const a = nats.connect('a', owner('a'));
  const b = nats.connect('b', owner('b'));
  const atA: string[] = [];
  const atB: string[] = [];
  a.subscribe('s', (d) => atA.push(text(d)));
  b.subscribe('s', (d) => atB.push(text(d)));
  nats.partition('a', 'b', true);
  a.publish('s', bytes('from-a'));
  b.publish('s', bytes('from-b'));
  await world.runUntil(100);
  assert.deepEqual(atB, ['from-b'], 'a -> b is cut');
  assert.deepEqual(atA, ['from-a', 'from-b'], 'b -> a still flows');
  nats.heal();
  a.publish('s', bytes('again'));
  await world.runUntil(200);
  assert.deepEqual(atB, ['from-b', 'again']);
});

test('a crashed node receives nothing; a closed transport neither sends nor receives', async () => {
  const { world, nats } = setup();
  const ob = owner('b');
  const a = nats.connect('a', owner('a'));
  const b = nats.connect('b', ob);
  const got: string[] = [];
  b.subscribe('s', (d) => got.push(text(d)));
  a.publish('s', bytes('1'));
  ob.alive = false;
  await world.runUntil(100);
  assert.deepEqual(got, []);
  const c = nats.connect('c', owner('c'));
  const atC: string[] = [];
  c.subscribe('s', (d) => atC.push(text(d)));
  await c.close();
  a.publish('s', bytes('2'));
  c.publish('s', bytes('3'));
  await world.runUntil(200);
  assert.deepEqual(atC, []);
  assert.deepEqual(await c.request('s', bytes('x'), 10), { ok: false, reason: 'closed' });
});
