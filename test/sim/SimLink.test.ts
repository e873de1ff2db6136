/**
 * The simulated client connection (sim/SimLink.ts), seen from both ends: bytes keep their
 * order per direction whatever the latencies, split segments concatenate to what was sent
 * (and `whole` sends are never split), the send buffer's high-water mark and drain, read
 * pause and resume, resets and graceful closes, and clogging.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ClientLink } from '../../edge/ClientLink.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { LINK_HIGH_WATER, LINK_LOW_WATER, SimLink, type LinkProfile } from '../../sim/SimLink.js';
import type { SimRandom } from '../../sim/SimRandom.js';
import { SimWorld } from '../../sim/SimWorld.js';

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const str = (chunks: Uint8Array[]) => decode(concat(chunks));
function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

interface Rig {
  world: SimWorld;
  server: SimOwner;
  link: SimLink;
  /** What the client side heard. */
  client: { data: Uint8Array[]; closes: number };
  /** What the server's handlers heard (through the AcceptLink). */
  srv: { links: ClientLink[]; data: Uint8Array[]; drains: number; closes: number };
  /** At each drain: when, what was still buffered, and how much the client had received. */
  drains: { at: number; buffered: number; received: number }[];
  /** Every callback in order, with its virtual time. */
  log: string[];
  /** Called after the server's data handler recorded a piece (to act from inside it). */
  hooks: { serverData: ((bytes: Uint8Array) => void) | null };
  /** Latency of the next segments, ms (the profile reads it per segment). */
  latency: { ms: number };
}

function rig(profile: Partial<LinkProfile> = {}, seed = 5): Rig {
  const world = new SimWorld({ seed });
  const server: SimOwner = { name: 'server', alive: true, pausedUntil: 0, backlog: [] };
  const latency = { ms: 5 };
  const log: string[] = [];
  const client = { data: [] as Uint8Array[], closes: 0 };
  const srv = { links: [] as ClientLink[], data: [] as Uint8Array[], drains: 0, closes: 0 };
  const drains: Rig['drains'] = [];
  const hooks: Rig['hooks'] = { serverData: null };
  const full: LinkProfile = { latencyMs: () => latency.ms, splitRate: 0, ...profile };
  const link = new SimLink(world, world.random('link'), full, server, '10.0.0.1', {
    onData: (bytes) => {
      client.data.push(bytes);
      log.push(`client data ${decode(bytes)}@${world.now}`);
    },
    onClose: () => {
      client.closes++;
      log.push(`client close@${world.now}`);
    },
  }, 1);
  link.attach((l) => {
    srv.links.push(l);
    return {
      data: (bytes) => {
        srv.data.push(bytes);
        log.push(`server data ${decode(bytes)}@${world.now}`);
        hooks.serverData?.(bytes);
      },
      drain: () => {
        srv.drains++;
        drains.push({ at: world.now, buffered: link.bufferedBytes(), received: concat(client.data).length });
        log.push(`server drain@${world.now}`);
      },
      close: () => {
        srv.closes++;
        log.push(`server close@${world.now}`);
      },
    };
  });
  return { world, server, link, client, srv, drains, hooks, log, latency };
}

test('attach hands the link to the accept function once, open, with its address and transport', () => {
  const { link, srv } = rig();
  assert.equal(srv.links.length, 1);
  assert.equal(srv.links[0], link);
  assert.equal(link.isOpen, true);
  assert.equal(link.transport, 'sim');
  assert.equal(link.remoteAddress, '10.0.0.1');
});

test('bytes arrive in order in each direction whatever the latencies and splits', async () => {
  const send = fc.record({ toServer: fc.boolean(), at: fc.nat(40), len: fc.integer({ min: 1, max: 12 }) });
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.constantFrom(0, 0.5, 1), fc.array(send, { maxLength: 40 }), async (seed, splitRate, sends) => {
      const { world, link, client, srv } = rig({ latencyMs: (r: SimRandom) => r.int(30) + r.float(), splitRate }, seed);
      const toServer: Uint8Array[] = [];
      const toClient: Uint8Array[] = [];
      let counter = 0;
      for (const s of sends) {
        const bytes = Uint8Array.from({ length: s.len }, () => counter++ & 0xff);
        world.schedule(s.at, 'test_send', () => {
          if (s.toServer) {
            toServer.push(bytes);
            link.send(bytes);
          } else {
            toClient.push(bytes);
            link.write(bytes);
          }
        });
      }
      await world.runUntil(1_000);
      assert.deepEqual(concat(srv.data), concat(toServer));
      assert.deepEqual(concat(client.data), concat(toClient));
      assert.equal(link.bufferedBytes(), 0);
      if (splitRate === 0) assert.equal(srv.data.length, toServer.length);
    }),
    { numRuns: 150 },
  );
});

test('with splitRate 1 each segment of two or more bytes arrives in pieces that concatenate to it; whole sends and single bytes are never split', async () => {
  const { world, link, client, srv } = rig({ splitRate: 1 });
  const segments = ['hello', 'wo', 'rld!!', 'x'].map(text);
  for (const s of segments) {
    srv.data.length = 0;
    link.send(s);
    await world.runUntil(world.now + 10);
    assert.deepEqual(concat(srv.data), s);
    assert.ok(srv.data.every((p) => p.length > 0), 'no empty piece');
    if (s.length === 1) assert.equal(srv.data.length, 1);
    else assert.ok(srv.data.length >= 2 && srv.data.length <= 3, `${decode(s)} came in ${srv.data.length} pieces`);
  }

  srv.data.length = 0;
  const whole = ['LOGIN alice', 'a second segment', 'third'].map(text);
  for (const s of whole) link.send(s, true);
  await world.runUntil(200);
  assert.deepEqual(srv.data, whole);

  for (const s of segments) link.write(s);
  await world.runUntil(300);
  assert.equal(str(client.data), 'helloworld!!x');
  assert.ok(client.data.length >= 7, 'server writes are split too');
});

test('write returns false from the high-water mark on, and drain follows once, when the client has taken enough', async () => {
  const { world, link, srv, drains, latency } = rig();
  latency.ms = 10;
  const chunk = LINK_HIGH_WATER / 4;
  const returned: boolean[] = [];
  // One chunk a millisecond: they reach the client at 10, 11, 12 and 13.
  for (let i = 0; i < 4; i++) world.schedule(i, 'test_write', () => returned.push(link.write(new Uint8Array(chunk))));
  await world.runUntil(3);
  assert.deepEqual(returned, [true, true, true, false]);
  assert.equal(link.bufferedBytes(), LINK_HIGH_WATER);
  await world.runUntil(11);
  assert.equal(srv.drains, 0, 'no drain while more than the low-water mark is buffered');
  await world.runUntil(30);
  assert.deepEqual(drains, [{ at: 12, buffered: LINK_HIGH_WATER - 3 * chunk, received: 3 * chunk }]);
  assert.ok(drains[0]!.buffered <= LINK_LOW_WATER);
  // Below the mark again: a write succeeds and no second drain comes.
  assert.equal(link.write(new Uint8Array(chunk)), true);
  await world.runUntil(60);
  assert.equal(srv.drains, 1);
  assert.equal(link.bufferedBytes(), 0);
});

test('writes that stay below the high-water mark never cause a drain', async () => {
  const { world, link, srv } = rig();
  const chunk = LINK_LOW_WATER / 2;
  for (let sent = 0; sent + chunk < LINK_HIGH_WATER; sent += chunk) assert.equal(link.write(new Uint8Array(chunk)), true);
  assert.ok(link.bufferedBytes() < LINK_HIGH_WATER);
  await world.runUntil(50);
  assert.equal(srv.drains, 0);
});

test('pause holds client data; resume hands it over in order before anything newer', async () => {
  const { world, link, srv, log, latency } = rig();
  link.pause();
  link.send(text('a'));
  world.schedule(2, 'test_send', () => link.send(text('b')));
  await world.runUntil(20);
  assert.deepEqual(srv.data, [], 'nothing is delivered while reading is paused');
  // At 20: one segment that arrives at once (queued before the resume), the resume, one more.
  latency.ms = 0;
  link.send(text('c'));
  link.resume();
  link.send(text('d'));
  latency.ms = 3;
  link.send(text('e'));
  await world.runUntil(40);
  assert.equal(str(srv.data), 'abcde');
  assert.deepEqual(log, ['server data a@20', 'server data b@20', 'server data c@20', 'server data d@20', 'server data e@23']);
});

test('a pause from inside a data handler stops the hand-over; the next resume hands over the rest', async () => {
  const { world, link, srv, hooks } = rig();
  link.pause();
  for (const x of ['a', 'b', 'c']) link.send(text(x));
  await world.runUntil(10);
  hooks.serverData = () => {
    hooks.serverData = null;
    link.pause();
  };
  link.resume();
  await world.runUntil(20);
  assert.equal(str(srv.data), 'a');
  link.resume();
  await world.runUntil(30);
  assert.equal(str(srv.data), 'abc');
});

test('reset tells the client at once and the server once, drops bytes in flight, and later calls do nothing', async () => {
  const { world, link, client, srv, log, latency } = rig();
  latency.ms = 10;
  link.send(text('to-server'));
  link.write(text('to-client'));
  world.schedule(5, 'test_reset', () => {
    link.reset();
    assert.equal(client.closes, 1, 'the client hears the reset synchronously');
    link.reset();
    link.destroy();
    link.end();
    link.clientEnd();
  });
  await world.runUntil(50);
  assert.deepEqual(log, ['client close@5', 'server close@5']);
  assert.equal(link.isOpen, false);
  assert.equal(link.write(text('late')), false);
  link.send(text('late'));
  await world.runUntil(100);
  assert.deepEqual([client.data, srv.data, client.closes, srv.closes], [[], [], 1, 1]);
});

test("a reset on a crashed server's link still tells the client, never the dead server", async () => {
  const { world, link, server, log } = rig();
  server.alive = false;
  link.reset();
  await world.runUntil(10);
  assert.deepEqual(log, ['client close@0']);
});

test('end closes the link after the bytes written before it have reached the client', async () => {
  const { world, link, log, latency } = rig();
  latency.ms = 10;
  link.write(text('bye'));
  link.end();
  assert.equal(link.isOpen, true, 'still open until the queued bytes are out');
  await world.runUntil(50);
  assert.deepEqual(log, ['client data bye@10', 'client close@10', 'server close@10']);
});

test('clientEnd closes the link after the bytes the client sent before it have reached the server', async () => {
  const { world, link, log, latency } = rig();
  latency.ms = 10;
  link.send(text('last words'));
  link.clientEnd();
  await world.runUntil(50);
  assert.deepEqual(log, ['server data last words@10', 'client close@10', 'server close@10']);
});

test('clientEnd while the server has paused reading: the held bytes are still handed over, before the close', async () => {
  const { world, link, srv, log } = rig();
  link.pause();
  link.send(text('ack 1'));
  link.clientEnd();
  await world.runUntil(20);
  link.resume();
  await world.runUntil(40);
  // Like TCP: a FIN queues behind the data; a reader that resumes reads the data, then EOF.
  assert.equal(str(srv.data), 'ack 1', `log: ${JSON.stringify(log)}`);
  assert.ok(log.indexOf('server data ack 1@20') < log.findIndex((l) => l.startsWith('server close')));
});

test('clientEnd while the server process is paused: the bytes sent before it still reach the server when it resumes', async () => {
  const { world, link, srv, log, server } = rig();
  world.pause(server, 20);
  link.send(text('ack 1'));
  link.clientEnd();
  await world.runUntil(40);
  assert.equal(str(srv.data), 'ack 1', `log: ${JSON.stringify(log)}`);
  assert.ok(log.indexOf('server data ack 1@20') < log.indexOf('server close@20'));
});

test('clogUntil holds every segment sent during the clog until it clears, then data flows with its latency', async () => {
  const { world, link, log } = rig();
  link.clogUntil = 50;
  link.send(text('a'));
  world.schedule(10, 'test_write', () => link.write(text('b')));
  world.schedule(20, 'test_send', () => link.send(text('c')));
  world.schedule(60, 'test_send', () => link.send(text('d')));
  await world.runUntil(100);
  assert.deepEqual(log, ['server data a@50', 'client data b@50', 'server data c@50', 'server data d@65']);
});
