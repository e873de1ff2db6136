/**
 * The JetStream model's rules (sim/SimJetStream.ts) under seeded faults, each scenario run
 * twice with its trace hash compared: commit on quorum and PubAck from the leader after it;
 * no acknowledged entry lost to killed servers, while OS crashes inside the sync interval can
 * lose one; elections in 4–9 s; a minority leader stepping down in 10–20 s; Msg-Id chain
 * fencing of a pipelining stale writer; compare-and-append on the subject sequence with one
 * winner (and two under the 2.9.10 KV update race); the dedup window; direct gets during an
 * election and from a lagging replica; the meta leader blocking stream creation; a purge applied
 * in log order on every replica.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AppendOutcome, StreamSpec, StreamStore } from '../../runtime/Env.js';
import { SimCluster } from '../../sim/SimCluster.js';
import { META_GROUP, type SimJetStream, type SimJetStreamEvent, type SimJetStreamOptions } from '../../sim/SimJetStream.js';
import { replayTwice } from './replayTwice.js';

const STREAM = 'G1';
const SUBJECT = 'g.1';
const DEDUP_WINDOW_MS = 120_000;
const SPEC: StreamSpec = { name: STREAM, subjects: ['g.>'], replicas: 3, duplicateWindowMs: DEDUP_WINDOW_MS };
/** Slack for message hops on top of a modelled interval (a vote round trip, a route hop). */
const HOP_SLACK_MS = 50;
/** How often the meta test retries a refused stream creation, and how long one try waits. */
const POLL_MS = 250;
const REQUEST_TIMEOUT_MS = 1_000;
/** A new stream's first election ends within this (firstElectionMs' upper bound). */
const SIM_FIRST_ELECTION_MAX_MS = 800;

const bytes = (n: number): Uint8Array => new Uint8Array([n & 0xff, (n >> 8) & 0xff]);
const num = (b: Uint8Array): number => b[0]! | (b[1]! << 8);

interface World {
  readonly c: SimCluster;
  readonly js: SimJetStream;
  store(node: string): StreamStore;
  /** A node connected to `server` now. */
  nodeOn(server: string): string;
  /** Resolves after `ms` virtual ms, for loops running beside the test's own `c.run`/`c.settle` (which move time). */
  sleep(ms: number): Promise<void>;
  /** Every entry of the stream as the replica on `server` applied it, in order. */
  entries(server: string): { seq: number; msgId: string | null; value: number }[];
}

/** Three servers, three nodes (node i on server i), the stream created and led. */
async function streamWorld(seed: number, jetstream: SimJetStreamOptions = {}): Promise<World> {
  const c = new SimCluster({ seed, nodes: 3, servers: 3, jetstream });
  c.start();
  const js = c.jetstream!;
  await c.waitFor('the JetStream API', () => js.apiReady());
  const w: World = {
    c,
    js,
    store: (node) => c.node(node).env!.streams!,
    nodeOn: (server) => c.nodes.find((n) => c.serverOf(n.name) === server)!.name,
    sleep: (ms) => new Promise((resolve) => c.world.after(ms, 'test_sleep', resolve)),
    entries: (server) => {
      const view = js.replicas(STREAM).find((r) => r.server === server)!;
      const out = [];
      for (let seq = view.firstSeq; seq <= view.lastSeq; seq++) {
        const e = js.entryOn(server, STREAM, seq);
        if (e !== null) out.push({ seq, msgId: e.msgId, value: num(e.data) });
      }
      return out;
    },
  };
  assert.deepEqual(await c.settle(w.store('n0').ensureStream(SPEC)), { ok: true, created: true });
  assert.ok(js.leaderOf(STREAM) !== null, 'the stream has a leader once created');
  return w;
}

/** Wait until every live replica has applied the same entries. */
async function converged(w: World): Promise<void> {
  await w.c.waitFor('the replicas to agree', () => {
    const v = w.js.replicas(STREAM);
    return v.length === 3 && w.js.leaderOf(STREAM) !== null && v.every((r) => r.applied === v[0]!.applied && r.lastSeq === v[0]!.lastSeq && r.lastIndex === v[0]!.lastIndex);
  }, 60_000);
}

test('an append is acknowledged only by the leader, only once a quorum holds it; a leader cut off from both followers acknowledges nothing', async () => {
  const r = await replayTwice('quorum', async () => {
    const w = await streamWorld(11);
    const { c, js } = w;
    const acks: { seq: number; server: string; leader: string | null; holders: number }[] = [];
    js.onEvent = (e: SimJetStreamEvent) => {
      if (e.type === 'ack') acks.push({ seq: e.seq, server: e.server, leader: js.leaderOf(STREAM), holders: js.holders(STREAM, e.index, e.term).length });
    };
    const leader = js.leaderOf(STREAM)!;
    const near = w.nodeOn(leader);
    const followers = c.servers.filter((s) => s !== leader);
    const results: AppendOutcome[] = [];
    for (let i = 0; i < 20; i++) results.push(await c.settle(w.store(near).append(STREAM, SUBJECT, bytes(i), { msgId: `a.${i}` })));
    c.partition(leader, followers[0]!);
    for (let i = 20; i < 40; i++) results.push(await c.settle(w.store(near).append(STREAM, SUBJECT, bytes(i), { msgId: `a.${i}` })));
    c.partition(leader, followers[1]!);
    const cutAt = c.now;
    const isolated: AppendOutcome[] = [];
    for (let i = 40; i < 45; i++) isolated.push(await c.settle(w.store(near).append(STREAM, SUBJECT, bytes(i), { msgId: `a.${i}`, timeoutMs: 1_000 })));
    const inIsolatedLog = js.replicas(STREAM).find((x) => x.server === leader)!.lastIndex;
    const inFollowerLog = js.replicas(STREAM).find((x) => x.server === followers[0])!.lastIndex;
    // Heal once the lone leader has stepped down and the others elected a leader of a later
    // term: its entries are then overwritten. (Healed sooner, a leader that kept its term would
    // commit them late: a timeout is an unknown outcome, not a refusal.)
    await c.run(cutAt + js.config.lostQuorumMs + js.config.lostQuorumCheckMs + 1_000 - c.now);
    c.heal();
    await converged(w);
    return { hash: c.traceHash(), events: c.world.events, acks, results, isolated, inIsolatedLog, inFollowerLog, final: w.entries(leader === js.leaderOf(STREAM) ? leader : js.leaderOf(STREAM)!) };
  });
  assert.deepEqual(r.results.map((x) => x.ok), Array(40).fill(true), 'with a quorum every append is acknowledged');
  assert.deepEqual(r.results.map((x) => (x.ok ? x.seq : 0)), Array.from({ length: 40 }, (_, i) => i + 1));
  assert.deepEqual(r.isolated.map((x) => (x.ok ? 'ok' : x.reason)), Array(5).fill('timeout'), 'the lone leader never answers');
  assert.ok(r.inIsolatedLog > r.inFollowerLog, 'the lone leader did append the entries to its own log');
  // A new leader that applies an entry its predecessor proposed answers it too (nats-server
  // replies from whichever replica leads when the entry applies); the client takes the first.
  assert.deepEqual([...new Set(r.acks.map((a) => a.seq))], Array.from({ length: 40 }, (_, i) => i + 1), 'exactly the 40 committed entries were acknowledged');
  for (const a of r.acks) {
    assert.equal(a.server, a.leader, 'the PubAck comes from the leader');
    assert.ok(a.holders >= 2, `acknowledged with ${a.holders} holder(s)`);
  }
  assert.deepEqual(r.final.map((e) => e.msgId), Array.from({ length: 40 }, (_, i) => `a.${i}`), 'the unacknowledged entries of the lone leader were never committed');
});

/** A writer that keeps appending numbered entries, retrying each with its Msg-Id until it is acknowledged. */
function startWriter(w: World, node: string, stopAfter: number): { acked: Map<number, number>; done: Promise<void> } {
  const acked = new Map<number, number>();
  const done = (async () => {
    for (let i = 0; i < stopAfter; i++) {
      for (;;) {
        const r = await w.store(node).append(STREAM, SUBJECT, bytes(i), { msgId: `w.${i}`, timeoutMs: 2_000 });
        if (r.ok) {
          acked.set(r.seq, i);
          break;
        }
        await w.sleep(200);
      }
      await w.sleep(40);
    }
  })();
  return { acked, done };
}

for (const scheme of ['one', 'two', 'all'] as const) {
  test(`no acknowledged entry is lost when ${scheme === 'one' ? 'one server is' : scheme === 'two' ? 'two servers are' : 'all three servers are'} killed (kill -9) and restarted`, async () => {
    for (const seed of [21, 22, 23]) {
      const r = await replayTwice(`kill ${scheme} seed ${seed}`, async () => {
        const w = await streamWorld(seed);
        const { c, js } = w;
        const writer = startWriter(w, 'n0', 300);
        await c.run(2_000);
        const leader = js.leaderOf(STREAM)!;
        const victims = scheme === 'one' ? [leader] : scheme === 'two' ? [leader, c.servers.find((s) => s !== leader)!] : [...c.servers];
        for (const v of victims) c.killServer(v);
        await c.run(scheme === 'one' ? 3_000 : 5_000);
        for (const v of victims) c.restartServer(v);
        await c.settle(writer.done, 120_000);
        await converged(w);
        return { hash: c.traceHash(), events: c.world.events, acked: [...writer.acked], replicas: c.servers.map((s) => w.entries(s)) };
      });
      assert.equal(r.acked.length, 300, `seed ${seed}: every entry was eventually acknowledged`);
      for (const entries of r.replicas) {
        assert.deepEqual(entries.map((e) => e.msgId), Array.from({ length: 300 }, (_, i) => `w.${i}`), `seed ${seed}: every replica holds each entry once, in order`);
        for (const [seq, i] of r.acked) assert.equal(entries[seq - 1]?.value, i, `seed ${seed}: acknowledged seq ${seq} holds entry ${i}`);
      }
    }
  });
}

test('an acknowledged entry is lost when two servers crash with their OS inside the sync interval, kept when they are killed or crash after a sync', async () => {
  const outcome = async (fault: 'kill' | 'os' | 'os_after_sync'): Promise<{ hash: string; events: number; acked: AppendOutcome; afterSeq4: string | null; lost: boolean }> =>
    replayTwice(`loss ${fault}`, async () => {
      const w = await streamWorld(31);
      const { c, js } = w;
      for (let i = 0; i < 3; i++) assert.ok((await c.settle(w.store('n0').append(STREAM, SUBJECT, bytes(i), { msgId: `e.${i}` }))).ok);
      const leader = js.leaderOf(STREAM)!;
      const [f1, f2] = c.servers.filter((s) => s !== leader) as [string, string];
      // The third replica is down (killed: it keeps what it had), so X lives on the leader and f1 only.
      c.killServer(f2);
      const acked = await c.settle(w.store(w.nodeOn(leader)).append(STREAM, SUBJECT, bytes(99), { msgId: 'X' }));
      if (fault === 'os_after_sync') await c.run(js.config.syncIntervalMs + 1_000);
      for (const s of [leader, f1]) {
        if (fault === 'kill') c.killServer(s);
        else c.osCrashServer(s);
      }
      await c.run(1_000);
      for (const s of c.servers) c.restartServer(s);
      await c.waitFor('a stream leader', () => js.leaderOf(STREAM), 30_000);
      const next = await c.settle(w.store('n0').append(STREAM, SUBJECT, bytes(7), { msgId: 'Y' }));
      assert.ok(next.ok);
      await converged(w);
      const at4 = js.entryOn(js.leaderOf(STREAM)!, STREAM, 4);
      return { hash: c.traceHash(), events: c.world.events, acked, afterSeq4: at4?.msgId ?? null, lost: c.servers.every((s) => !w.entries(s).some((e) => e.msgId === 'X')) };
    });
  const kill = await outcome('kill');
  const os = await outcome('os');
  const synced = await outcome('os_after_sync');
  for (const r of [kill, os, synced]) assert.deepEqual(r.acked, { ok: true, seq: 4, duplicate: false }, 'X was acknowledged as seq 4');
  assert.equal(kill.lost, false);
  assert.equal(kill.afterSeq4, 'X', 'killed servers keep their page cache');
  assert.equal(os.lost, true, 'the acknowledged X is gone from every replica');
  assert.equal(os.afterSeq4, 'Y', 'and its sequence went to a later entry');
  assert.equal(synced.lost, false);
  assert.equal(synced.afterSeq4, 'X', 'what was synced before the OS crash survives');
});

test('after the stream leader dies a new one is elected 4–9 s after its last heartbeat, the time drawn per election', async () => {
  const took: number[] = [];
  for (const seed of [41, 42, 43, 44, 45, 46, 47, 48]) {
    const r = await replayTwice(`election seed ${seed}`, async () => {
      const w = await streamWorld(seed);
      const { c, js } = w;
      await c.run(3_000 + (seed % 7) * 137);
      const leader = js.leaderOf(STREAM)!;
      let elected = -1;
      js.onEvent = (e) => {
        if (e.type === 'role' && e.group === `S:${STREAM}` && e.role === 'leader' && elected < 0) elected = e.at;
      };
      const killedAt = c.now;
      c.killServer(leader);
      const during = await c.settle(w.store(w.nodeOn(c.servers.find((s) => s !== leader)!)).append(STREAM, SUBJECT, bytes(1)));
      await c.waitFor('a new leader', () => elected >= 0, 15_000);
      return { hash: c.traceHash(), events: c.world.events, took: elected - killedAt, during };
    });
    assert.deepEqual(r.during.ok ? 'ok' : r.during.reason, 'unavailable', 'no responders while there is no leader');
    took.push(r.took);
  }
  for (const t of took) assert.ok(t >= 3_000 && t <= 9_000 + HOP_SLACK_MS, `elected ${t} ms after the kill (heartbeats every 1 s, timeout 4–9 s)`);
  assert.ok(Math.max(...took) - Math.min(...took) >= 1_000, `election times vary: ${took.join(', ')}`);
});

test('a leader cut off from both followers steps down 10–20 s later while the others elect a new leader in 4–9 s; its clients are never acknowledged', async () => {
  for (const seed of [51, 52, 53]) {
    const r = await replayTwice(`minority seed ${seed}`, async () => {
      const w = await streamWorld(seed);
      const { c, js } = w;
      await c.run(2_500 + seed * 97);
      const leader = js.leaderOf(STREAM)!;
      const roles: SimJetStreamEvent[] = [];
      js.onEvent = (e) => {
        if (e.type === 'role' && e.group === `S:${STREAM}`) roles.push(e);
      };
      const cutAt = c.now;
      for (const s of c.servers) if (s !== leader) c.partition(leader, s);
      const onMinority: AppendOutcome[] = [];
      const near = w.nodeOn(leader);
      for (let i = 0; i < 8; i++) onMinority.push(await c.settle(w.store(near).append(STREAM, SUBJECT, bytes(i), { timeoutMs: 3_000 })));
      await c.run(Math.max(0, cutAt + 25_000 - c.now));
      const stepDown = roles.find((e) => e.type === 'role' && e.server === leader && e.role === 'follower');
      const newLeader = roles.find((e) => e.type === 'role' && e.server !== leader && e.role === 'leader');
      return { hash: c.traceHash(), events: c.world.events, stepDown: stepDown === undefined ? -1 : stepDown.at - cutAt, elected: newLeader === undefined ? -1 : newLeader.at - cutAt, onMinority: onMinority.map((x) => (x.ok ? 'ok' : x.reason)) };
    });
    assert.ok(r.stepDown >= 10_000 && r.stepDown <= 20_000, `seed ${seed}: stepped down ${r.stepDown} ms after the cut`);
    assert.ok(r.elected >= 3_000 && r.elected <= 9_000 + HOP_SLACK_MS, `seed ${seed}: the majority elected after ${r.elected} ms`);
    assert.ok(!r.onMinority.includes('ok'), `seed ${seed}: nothing acknowledged on the minority side (${r.onMinority.join(',')})`);
  }
});

test('a Msg-Id chain fences a pipelining stale writer: after the new writer\'s marker is acknowledged no entry of the old epoch is accepted, under kills, partitions and pauses', async () => {
  for (let seed = 61; seed <= 68; seed++) {
    const r = await replayTwice(`fencing seed ${seed}`, async () => {
      const w = await streamWorld(seed);
      const { c, js } = w;
      const nemesis = c.world.random('test/nemesis');
      let stop = false;
      const staleRefused: number[] = [];
      // The stale owner pipelines its chain 1.n (expecting 1.(n-1)), four in flight, and keeps
      // going after refusals (worse than the real owner, which stops at its first).
      const stale = (async () => {
        let n = 0;
        while (!stop) {
          const batch = [n, n + 1, n + 2, n + 3];
          const rs = await Promise.all(batch.map((k) => w.store('n1').append(STREAM, SUBJECT, bytes(k), { msgId: `1.${k}`, expectLastMsgId: k === 0 ? '' : `1.${k - 1}`, timeoutMs: 1_500 })));
          for (const x of rs) if (!x.ok && x.reason === 'wrong_last_msg_id') staleRefused.push(c.now);
          const firstBad = rs.findIndex((x) => !x.ok);
          n = firstBad < 0 ? n + 4 : batch[firstBad]!;
          await w.sleep(firstBad < 0 ? 10 : 150);
        }
      })();
      await c.run(1_500);
      // The new owner reads the end of the stream and writes its marker 2.0 expecting that entry.
      let markerSeq = -1;
      let markerAt = -1;
      const takeover = (async () => {
        while (markerSeq < 0) {
          const last = await w.store('n2').lastOnSubject(STREAM, SUBJECT, 1_500);
          if (!last.ok) {
            await w.sleep(200);
            continue;
          }
          const m = await w.store('n2').append(STREAM, SUBJECT, bytes(1000), { msgId: '2.0', expectLastMsgId: last.entry.msgId ?? '', timeoutMs: 1_500 });
          if (m.ok) {
            markerSeq = m.seq;
            markerAt = c.now;
          } else await w.sleep(100);
        }
      })();
      // The nemesis: kill a server (the leader half the time), cut a route or a node from its server, pause a server.
      for (let k = 0; k < 6; k++) {
        await c.run(nemesis.between(1_000, 4_000));
        const s = nemesis.pick(c.servers);
        switch (nemesis.int(4)) {
          case 0: {
            const v = nemesis.chance(0.5) ? js.leaderOf(STREAM) ?? s : s;
            c.killServer(v);
            c.world.after(nemesis.between(500, 6_000), 'test_restart', () => c.restartServer(v));
            break;
          }
          case 1: {
            const o = nemesis.pick(c.servers.filter((x) => x !== s));
            c.partition(s, o, nemesis.chance(0.5));
            c.world.after(nemesis.between(1_000, 8_000), 'test_heal', () => c.heal(s, o));
            break;
          }
          case 2: {
            const n = nemesis.pick(['n1', 'n2']);
            c.partition(n, c.serverOf(n) ?? s);
            c.world.after(nemesis.between(1_000, 25_000), 'test_heal', () => c.heal());
            break;
          }
          default:
            c.pauseServer(s, nemesis.between(200, 3_000));
        }
      }
      await c.settle(takeover, 120_000);
      await c.run(5_000);
      stop = true;
      c.heal();
      for (const s of c.servers) c.restartServer(s);
      await c.settle(stale, 120_000);
      await converged(w);
      return { hash: c.traceHash(), events: c.world.events, markerSeq, refusedAfter: staleRefused.filter((t) => t > markerAt).length, entries: w.entries(js.leaderOf(STREAM)!) };
    });
    assert.ok(r.markerSeq > 0, `seed ${seed}: the marker was acknowledged`);
    assert.ok(r.refusedAfter > 0, `seed ${seed}: the stale writer kept trying after the marker and was refused`);
    const ids = r.entries.map((e) => e.msgId ?? '');
    assert.equal(ids[r.markerSeq - 1], '2.0', `seed ${seed}: the marker is at its acknowledged seq`);
    assert.deepEqual(ids.slice(r.markerSeq), [], `seed ${seed}: nothing after the marker (the stale chain is fenced)`);
    assert.deepEqual(ids.slice(0, r.markerSeq - 1), Array.from({ length: r.markerSeq - 1 }, (_, i) => `1.${i}`), `seed ${seed}: the old chain is gapless before it`);
  }
});

test('even checked at apply, Expected-Last-Subject-Sequence does not fence a pipelining stale writer: its predictions line up again after one refusal, while a Msg-Id chain refuses them all', async () => {
  const r = await replayTwice('subject-seq pipeline', async () => {
    // The check at apply (2.11) is the kinder case; 2.9.10's leader-only check fences even less.
    const w = await streamWorld(71, { kvUpdateRace: false });
    const { c } = w;
    for (let i = 0; i < 3; i++) assert.ok((await c.settle(w.store('n0').append(STREAM, 'g.s', bytes(i), { msgId: `1.${i}` }))).ok);
    // A new writer's entry lands first (seq 4).
    assert.ok((await c.settle(w.store('n2').append(STREAM, 'g.s', bytes(100), { msgId: '2.0', expectLastSubjectSeq: 3 }))).ok);
    const bySeq = await c.settle(Promise.all([3, 4, 5].map((k) => w.store('n0').append(STREAM, 'g.s', bytes(k), { expectLastSubjectSeq: k }))));
    const byChain = await c.settle(Promise.all([3, 4, 5].map((k) => w.store('n0').append(STREAM, 'g.s', bytes(k), { msgId: `1.${k}`, expectLastMsgId: `1.${k - 1}` }))));
    return { hash: c.traceHash(), events: c.world.events, bySeq: bySeq.map((x) => (x.ok ? 'ok' : x.reason)), byChain: byChain.map((x) => (x.ok ? 'ok' : x.reason)) };
  });
  assert.deepEqual(r.bySeq, ['wrong_last_subject_seq', 'ok', 'ok']);
  assert.deepEqual(r.byChain, ['wrong_last_msg_id', 'wrong_last_msg_id', 'wrong_last_msg_id']);
});

/** Rounds of three nodes racing a compare-and-append on one subject; the winners per round. */
async function race(seed: number, jetstream: SimJetStreamOptions): Promise<{ hash: string; events: number; winners: number[]; stored: number }> {
  const w = await streamWorld(seed, jetstream);
  const { c, js } = w;
  const winners: number[] = [];
  let expected = 0;
  for (let round = 0; round < 12; round++) {
    const rs = await c.settle(Promise.all(['n0', 'n1', 'n2'].map((n, i) => w.store(n).append(STREAM, 'g.lease', bytes(round * 10 + i), { expectLastSubjectSeq: expected }))));
    winners.push(rs.filter((x) => x.ok).length);
    const last = await c.settle(w.store('n0').lastOnSubject(STREAM, 'g.lease'));
    assert.ok(last.ok);
    expected = last.entry.seq;
    await c.run(50);
  }
  await converged(w);
  return { hash: c.traceHash(), events: c.world.events, winners, stored: w.entries(js.leaderOf(STREAM)!).length };
}

test('with the check at apply (nats-server 2.11, the race switched off), Expected-Last-Subject-Sequence compare-and-append has exactly one winner each round', async () => {
  const r = await replayTwice('cas', () => race(81, { kvUpdateRace: false }));
  assert.deepEqual(r.winners, Array(12).fill(1));
  assert.equal(r.stored, 12);
});

test('as in nats-server 2.9.10 (the model default), racing updates with the same revision can both win (a lease built on it breaks), while creates stay safe', async () => {
  const r = await replayTwice('kv race', () => race(81, {}));
  assert.equal(r.winners[0], 1, 'the create (expected 0) is checked at apply: one winner');
  assert.ok(r.winners.slice(1).some((n) => n > 1), `some update round had several winners: ${r.winners.join(',')}`);
  assert.ok(r.stored > 12);
});

test('Msg-Id dedup: a retry within the window answers duplicate with the first sequence, even after a lost reply; past the window it is a new entry', async () => {
  const r = await replayTwice('dedup', async () => {
    const w = await streamWorld(91);
    const { c, js } = w;
    const leader = js.leaderOf(STREAM)!;
    const far = c.nodes.find((n) => c.serverOf(n.name) !== leader)!.name;
    const farServer = c.serverOf(far)!;
    const first = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(1), { msgId: 'm1' }));
    const again = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(1), { msgId: 'm1' }));
    // The reply route is cut: the entry commits (the third server is the quorum), the answer is lost.
    c.partition(leader, farServer, true);
    const lostReply = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(2), { msgId: 'm2', timeoutMs: 1_000 }));
    c.heal();
    await c.run(2_000);
    const retried = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(2), { msgId: 'm2' }));
    await c.run(DEDUP_WINDOW_MS + 1_000);
    const late = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(1), { msgId: 'm1' }));
    return { hash: c.traceHash(), events: c.world.events, first, again, lostReply, retried, late };
  });
  assert.deepEqual(r.first, { ok: true, seq: 1, duplicate: false });
  assert.deepEqual(r.again, { ok: true, seq: 1, duplicate: true });
  assert.equal(r.lostReply.ok ? 'ok' : r.lostReply.reason, 'timeout');
  assert.deepEqual(r.retried, { ok: true, seq: 2, duplicate: true }, 'the retry learns the outcome');
  assert.deepEqual(r.late, { ok: true, seq: 3, duplicate: false });
});

test('direct get is answered by a replica during an election, and a lagging replica answers with its older state', async () => {
  const r = await replayTwice('direct get', async () => {
    const w = await streamWorld(101);
    const { c, js } = w;
    for (let i = 0; i < 10; i++) assert.ok((await c.settle(w.store('n0').append(STREAM, SUBJECT, bytes(i)))).ok);
    await c.run(1_500);
    let leader = js.leaderOf(STREAM)!;
    const reader = w.nodeOn(c.servers.find((s) => s !== leader)!);
    c.killServer(leader);
    const duringElection = await c.settle(w.store(reader).get(STREAM, 5));
    const infoDuring = await c.settle(w.store(reader).info(STREAM));
    const noLeader = js.leaderOf(STREAM);
    c.restartServer(leader);
    await c.waitFor('a leader again', () => js.leaderOf(STREAM), 15_000);
    await converged(w);
    leader = js.leaderOf(STREAM)!;
    const lagging = c.servers.find((s) => s !== leader)!;
    c.partition(leader, lagging);
    for (let i = 10; i < 15; i++) assert.ok((await c.settle(w.store(w.nodeOn(leader)).append(STREAM, SUBJECT, bytes(i)))).ok);
    const onLagging = w.nodeOn(lagging);
    const stale = await c.settle(w.store(onLagging).get(STREAM, 15));
    const staleInfo = await c.settle(w.store(onLagging).info(STREAM));
    const staleLast = await c.settle(w.store(onLagging).lastOnSubject(STREAM, SUBJECT));
    const fresh = await c.settle(w.store(w.nodeOn(leader)).get(STREAM, 15));
    return { hash: c.traceHash(), events: c.world.events, duringElection, infoDuring, noLeader, stale, staleInfo, staleLast, fresh };
  });
  assert.equal(r.noLeader, null, 'the reads happened while there was no leader');
  assert.equal(r.duringElection.ok && num(r.duringElection.entry.data), 4);
  assert.deepEqual(r.infoDuring, { ok: true, firstSeq: 1, lastSeq: 10 });
  assert.equal(r.stale.ok ? 'ok' : r.stale.reason, 'not_found', 'the lagging replica does not have seq 15 yet');
  assert.deepEqual(r.staleInfo, { ok: true, firstSeq: 1, lastSeq: 10 });
  assert.equal(r.staleLast.ok && r.staleLast.entry.seq, 10);
  assert.equal(r.fresh.ok && num(r.fresh.entry.data), 14);
});

test('while the meta leader is re-elected (3–7 s after its server dies) stream creation is refused; then it works', async () => {
  // The dead server is back within a second (an R3 stream needs three servers), but the
  // others have lost their leader and elect one.
  for (const seed of [111, 112, 113]) {
    const r = await replayTwice(`meta seed ${seed}`, async () => {
      const w = await streamWorld(seed, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
      const { c, js } = w;
      await c.run(2_000 + seed * 31);
      const meta = js.metaLeader()!;
      let elected = -1;
      js.onEvent = (e) => {
        if (e.type === 'role' && e.group === META_GROUP && e.role === 'leader' && elected < 0) elected = e.at;
      };
      const node = w.nodeOn(c.servers.find((s) => s !== meta)!);
      const killedAt = c.now;
      c.killServer(meta);
      c.world.after(1_000, 'test_restart', () => c.restartServer(meta));
      const refused: { reason: string; at: number }[] = [];
      for (;;) {
        const asked = c.now;
        const res = await c.settle(w.store(node).ensureStream({ ...SPEC, name: 'G2', subjects: ['h.>'] }));
        if (res.ok) break;
        refused.push({ reason: res.reason, at: asked });
        await c.run(POLL_MS);
      }
      const createdAt = c.now;
      const appended = await c.settle(w.store(node).append('G2', 'h.1', bytes(1)));
      return { hash: c.traceHash(), events: c.world.events, elected: elected - killedAt, created: createdAt - killedAt, refused, killedAt, appended };
    });
    assert.ok(r.elected >= 2_000 && r.elected <= 7_000 + HOP_SLACK_MS, `seed ${seed}: meta leader after ${r.elected} ms`);
    // Refused at once by a server that knows no meta leader, or timed out when the leader it
    // still believes in no longer leads.
    assert.ok(r.refused.length > 0 && r.refused.every((x) => x.reason === 'unavailable' || x.reason === 'timeout'), `seed ${seed}: refused while electing: ${r.refused.map((x) => x.reason).join(',')}`);
    assert.ok(r.refused.filter((x) => x.at - r.killedAt < r.elected).length > 0, `seed ${seed}: refused before the election`);
    assert.ok(r.created >= r.elected && r.created <= r.elected + REQUEST_TIMEOUT_MS + POLL_MS + SIM_FIRST_ELECTION_MAX_MS + HOP_SLACK_MS, `seed ${seed}: created ${r.created} ms after the kill, elected at ${r.elected}`);
    assert.deepEqual(r.appended, { ok: true, seq: 1, duplicate: false });
  }
});

test('a purge goes through the stream leader and its log: every replica drops the same entries, also one killed meanwhile and restarted; sequences go on, a purged entry is not found', async () => {
  const r = await replayTwice('purge', async () => {
    const w = await streamWorld(57);
    const { c, js } = w;
    const leader = js.leaderOf(STREAM)!;
    const far = c.nodes.find((n) => c.serverOf(n.name) !== leader)!.name;
    const follower = c.servers.find((s) => s !== leader && s !== c.serverOf(far))!;
    for (let i = 1; i <= 10; i++) await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(i), { msgId: `p.${i}` }));
    c.killServer(follower);
    const purged = await c.settle(w.store(far).purge(STREAM, { keepFromSeq: 7 }));
    const next = await c.settle(w.store(far).append(STREAM, SUBJECT, bytes(11), { msgId: 'p.11' }));
    c.restartServer(follower);
    await converged(w);
    const gone = await c.settle(w.store(far).get(STREAM, 6));
    const kept = await c.settle(w.store(far).get(STREAM, 7));
    const info = await c.settle(w.store(far).info(STREAM));
    return { hash: c.traceHash(), events: c.world.events, purged, next, gone, kept, info, views: c.servers.map((s) => w.entries(s).map((e) => e.seq)) };
  });
  assert.deepEqual(r.purged, { ok: true, purged: 6 });
  assert.deepEqual(r.next, { ok: true, seq: 11, duplicate: false });
  assert.equal(r.gone.ok ? 'found' : r.gone.reason, 'not_found');
  assert.equal(r.kept.ok ? r.kept.entry.seq : r.kept.reason, 7);
  assert.deepEqual(r.info, { ok: true, firstSeq: 7, lastSeq: 11 });
  for (const v of r.views) assert.deepEqual(v, [7, 8, 9, 10, 11]);
});
