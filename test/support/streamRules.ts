/**
 * The StreamStore contract (runtime/Env.ts), written once against the interface and a small
 * fault harness, and run on JetStreamStore against real nats-server 2.9.10 servers
 * (test/runtime/JetStreamStore.test.ts); the simulator's JetStream model runs the same rules.
 * Each rule is a test named after the behaviour; figures measured on the way (election
 * pauses, how a minority answers) go to the test's diagnostics.
 *
 * The rules never sleep to synchronise: they wait on outcomes with deadlines (`waitFor`), and
 * every loop is bounded. They see servers only through the harness.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, test, type TestContext } from 'node:test';
import type { AppendOutcome, GetOutcome, StreamEntry, StreamSpec, StreamStore } from '../../runtime/Env.js';
import { JetStreamStore } from '../../runtime/node/JetStreamStore.js';
import { connectNats, type NatsTransport } from '../../runtime/node/NatsTransport.js';
import { SimCluster } from '../../sim/SimCluster.js';
import type { SimJetStreamOptions } from '../../sim/SimJetStream.js';
import { NatsCluster } from './natsCluster.js';

/** What the rules need from a cluster of stream servers (real nats-servers, or the simulator's). */
export interface StreamHarness {
  readonly kind: 'nats' | 'sim';
  /** Servers in the cluster (the rules need 3). */
  readonly servers: number;
  /**
   * A StreamStore on a fresh client connection. Pinned to `server`, the client talks only to
   * that server (and waits while it is down); unpinned, it uses any running server.
   */
  store(server?: number): Promise<StreamStore>;
  /** The server leading `stream` now, as a majority of the servers sees it; null while there is none. */
  streamLeader(stream: string): Promise<number | null>;
  /**
   * True when `stream` has a leader, every server holds it up to the leader's last entry and
   * the leader counts every replica current. Faults are injected only into such a stream: one
   * whose replica is still catching up can stay leaderless for a minute when its leader dies
   * (seen on 2.9.10), which is a different rule.
   */
  replicasCurrent(stream: string): Promise<boolean>;
  /** kill -9 server `i` (nothing flushed; the OS keeps what the process wrote). */
  kill(i: number): Promise<void>;
  /** Start server `i` again on its store and wait until it is routed to the running others. */
  restart(i: number): Promise<void>;
  running(i: number): boolean;
  /** Monotonic milliseconds (virtual in the simulator). */
  now(): number;
  /** Poll `probe` until it gives a value (not undefined, null or false), or throw at the deadline. */
  waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs?: number): Promise<T>;
  /**
   * Resolves after `ms` (paces retry loops; never used to wait for an outcome). Like a store
   * call, it is awaited directly only inside a promise the rule hands to `settle`.
   */
  idle(ms: number): Promise<void>;
  /**
   * Await `p` (the simulator runs its world until it settles). Rules await store calls through
   * it, except inside an async function whose own promise goes to `settle`.
   */
  settle<T>(p: Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Ids from a round counter, so each rule works on its own streams. */
let streamCounter = 0;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** How long the rules give a stream to be created while the meta leader is elected. */
const ENSURE_DEADLINE_MS = 30_000;
/** How long a replica may take to show an acked entry (it applies a few ms after the ack). */
const CATCH_UP_MS = 10_000;
/** How long a stream may take to elect a leader after a crash (cluster.md: 4–9 s), with room for a loaded machine. */
const ELECTION_DEADLINE_MS = 30_000;
/** Rounds of the racing rules (cluster.md's measurements used 20). */
const ROUNDS = 20;
/** Appends one fenced writer keeps in flight. */
const FENCE_WINDOW = 16;
/** Entries the fenced writer gets acked before the new writer starts its marker. */
const FENCE_BEFORE_MARKER = 10;
/** Appends the fenced writer still sends after the marker is acked (all must be refused). */
const FENCE_AFTER_MARKER = 20;
/** Bound on the fenced writer's appends before the marker lands. */
const FENCE_MAX_SENDS = 3_000;
/** Bound on the new writer's marker attempts. */
const FENCE_MARKER_TRIES = 3_000;
/** Short append timeout for the fault rules, so an unanswered append costs little. */
const FAULT_APPEND_TIMEOUT_MS = 1_500;
/** An append must answer within its timeout plus this much (event loop, load). */
const ANSWER_SLACK_MS = 1_500;
/** Pause between two attempts of a retry loop against an unavailable stream. */
const RETRY_PACE_MS = 20;
/** Bound on the attempts of a retry loop (with the pace above, well past any deadline). */
const MAX_ATTEMPTS = 5_000;

export function streamSpec(name: string, extra: Partial<StreamSpec> = {}): StreamSpec {
  return { name, subjects: [`${name.toLowerCase()}.>`], replicas: 3, duplicateWindowMs: 120_000, ...extra };
}

/** Register the StreamStore rules as tests of this file. */
export function streamRules(make: () => Promise<StreamHarness> | StreamHarness): void {
  let h: StreamHarness;
  /** One store per server (pinned), and one that uses any server. */
  let pinned: StreamStore[] = [];
  let any: StreamStore;

  before(async () => {
    h = await make();
    pinned = [];
    for (let i = 0; i < h.servers; i++) pinned.push(await h.store(i));
    any = await h.store();
  });
  after(async () => {
    await h?.close();
  });

  const newStream = async (extra: Partial<StreamSpec> = {}): Promise<{ name: string; subject: (s: string) => string; spec: StreamSpec }> => {
    const name = `RULE${++streamCounter}`;
    const spec = streamSpec(name, extra);
    await h.waitFor(`stream ${name} to be created`, async () => (await h.settle(any.ensureStream(spec))).ok, ENSURE_DEADLINE_MS);
    // A stream just created may not be served through every server yet (its leader not elected
    // or not known there): a race started at once would count those refusals as losers.
    for (const [i, store] of pinned.entries()) {
      await h.waitFor(`stream ${name} served through server ${i}`, async () => (await h.settle(store.info(name, 1_000))).ok, ENSURE_DEADLINE_MS);
    }
    return { name, subject: (s) => `${name.toLowerCase()}.${s}`, spec };
  };

  const append = (store: StreamStore, stream: string, subject: string, data: string, opts?: Parameters<StreamStore['append']>[3]): Promise<AppendOutcome> =>
    h.settle(store.append(stream, subject, enc(data), opts));

  const okSeq = (r: AppendOutcome, what: string): number => {
    assert.ok(r.ok, `${what}: ${JSON.stringify(r)}`);
    return r.seq;
  };

  /** Wait until `store`'s replica shows `seq` (so reads of seqs up to it are exact from then on). */
  const caughtUp = (store: StreamStore, stream: string, seq: number, timeoutMs = CATCH_UP_MS): Promise<StreamEntry> =>
    h.waitFor(`${stream} seq ${seq} on a replica`, async () => {
      const r = await h.settle(store.get(stream, seq, { timeoutMs: 1_000 }));
      return r.ok ? r.entry : undefined;
    }, timeoutMs);

  const readRange = async (store: StreamStore, stream: string, from: number, to: number, timeoutMs = CATCH_UP_MS): Promise<StreamEntry[]> => {
    const out: StreamEntry[] = [];
    for (let s = from; s <= to; s++) out.push(await caughtUp(store, stream, s, timeoutMs));
    return out;
  };

  const lastSeq = async (stream: string): Promise<number> => {
    const r = await h.waitFor(`info of ${stream}`, async () => {
      const i = await h.settle(any.info(stream, 2_000));
      return i.ok ? i : undefined;
    }, ELECTION_DEADLINE_MS);
    return r.lastSeq;
  };

  /** Append until acked, always with the same Msg-Id: the way to settle an append whose outcome is unknown. */
  const settleById = (stream: string, subject: string, id: string): Promise<{ seq: number; duplicate: boolean }> => {
    return h.waitFor(`${id} settled`, async () => {
      const r = await append(any, stream, subject, id, { msgId: id, timeoutMs: FAULT_APPEND_TIMEOUT_MS });
      return r.ok ? { seq: r.seq, duplicate: r.duplicate } : undefined;
    }, ELECTION_DEADLINE_MS);
  };

  const waitCurrent = (stream: string): Promise<true> =>
    h.waitFor(`every replica of ${stream} current`, async () => (await h.replicasCurrent(stream)) || undefined, ELECTION_DEADLINE_MS);

  const waitLeader = (stream: string): Promise<number> =>
    h.waitFor(`a leader for ${stream}`, async () => {
      const l = await h.streamLeader(stream);
      return l === null ? undefined : l;
    }, ELECTION_DEADLINE_MS);

  // ---- creating ---------------------------------------------------------------------------

  test('ensureStream creates a stream once, is idempotent for the same spec, and refuses another spec under the same name', async () => {
    const name = `RULE${++streamCounter}`;
    const spec = streamSpec(name, { maxEntryBytes: 4_096, maxAgeMs: 3_600_000 });
    const first = await h.waitFor('the stream created', async () => {
      const r = await h.settle(any.ensureStream(spec));
      return r.ok ? r : undefined;
    }, ENSURE_DEADLINE_MS);
    assert.deepEqual(first, { ok: true, created: true });
    // A timeout is an unknown outcome (the JetStream API of a cluster just started can be slow):
    // asked again; what it finally answers is what is checked.
    const again = await h.waitFor('the same spec answered', async () => {
      const r = await h.settle(pinned[1]!.ensureStream(spec));
      return !r.ok && r.reason === 'timeout' ? undefined : r;
    }, ENSURE_DEADLINE_MS);
    assert.deepEqual(again, { ok: true, created: false });
    const other = await h.waitFor('another spec answered', async () => {
      const r = await h.settle(any.ensureStream({ ...spec, maxEntryBytes: 8_192 }));
      return !r.ok && r.reason === 'timeout' ? undefined : r;
    }, ENSURE_DEADLINE_MS);
    assert.equal(other.ok, false);
    assert.equal(!other.ok && other.reason, 'invalid');
    assert.deepEqual(await h.settle(any.info(name)), { ok: true, firstSeq: 0, lastSeq: 0 });
    const missing = await h.settle(any.info(`${name}X`));
    assert.equal(!missing.ok && missing.reason, 'invalid');
  });

  // ---- purging ------------------------------------------------------------------------------

  test('a purge keeps the entries from its sequence on every replica: the first sequence rises, an entry below is not found, appends go on after the last one with the Msg-Id chain', async () => {
    const s = await newStream();
    for (let i = 1; i <= 8; i++) okSeq(await append(any, s.name, s.subject('a'), `p${i}`, { msgId: `1.${i}`, ...(i > 1 ? { expectLastMsgId: `1.${i - 1}` } : {}) }), `append ${i}`);
    assert.deepEqual(await h.settle(any.purge(s.name, { keepFromSeq: 6, timeoutMs: 5_000 })), { ok: true, purged: 5 });
    assert.deepEqual(await h.settle(any.info(s.name, 2_000)), { ok: true, firstSeq: 6, lastSeq: 8 });
    for (const store of pinned) {
      await h.waitFor('the purge on every replica', async () => {
        const r = await h.settle(store.get(s.name, 5, { timeoutMs: 1_000 }));
        return !r.ok && r.reason === 'not_found';
      }, CATCH_UP_MS);
      assert.equal(dec((await caughtUp(store, s.name, 6)).data), 'p6');
    }
    // Purging again below the first sequence removes nothing.
    assert.deepEqual(await h.settle(any.purge(s.name, { keepFromSeq: 3, timeoutMs: 5_000 })), { ok: true, purged: 0 });
    const next = await append(any, s.name, s.subject('a'), 'p9', { msgId: '1.9', expectLastMsgId: '1.8' });
    assert.deepEqual(next, { ok: true, seq: 9, duplicate: false });
    const missing = await h.settle(any.purge(`${s.name}X`, { keepFromSeq: 2, timeoutMs: 5_000 }));
    assert.equal(missing.ok ? 'ok' : missing.reason, 'invalid');
  });

  // ---- appending and reading --------------------------------------------------------------

  test("appends get consecutive sequences, and one writer's pipelined acks arrive in sequence order", async () => {
    const s = await newStream();
    const N = 300;
    const order: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      all.push(pinned[0]!.append(s.name, s.subject(i % 2 === 0 ? 'a' : 'b'), enc(`e${i}`)).then((r) => {
        order.push(okSeq(r, `append ${i}`));
      }));
    }
    await h.settle(Promise.all(all));
    assert.deepEqual(order, Array.from({ length: N }, (_, i) => i + 1), 'acks in seq order, seqs 1..N');
    assert.deepEqual(await h.settle(any.info(s.name)), { ok: true, firstSeq: 1, lastSeq: N });
  });

  test('an acked entry is readable by get on every server, as it was appended', async () => {
    const s = await newStream();
    const acked: Array<{ seq: number; subject: string; data: string; msgId: string | null }> = [];
    for (let i = 0; i < 20; i++) {
      const msgId = i % 3 === 0 ? null : `id-${i}`;
      const subject = s.subject(`k${i % 4}`);
      const r = await append(pinned[i % h.servers]!, s.name, subject, `v${i}`, msgId === null ? {} : { msgId });
      acked.push({ seq: okSeq(r, `append ${i}`), subject, data: `v${i}`, msgId });
    }
    for (let server = 0; server < h.servers; server++) {
      const got = await readRange(pinned[server]!, s.name, 1, acked.length);
      assert.deepEqual(got.map((e) => ({ seq: e.seq, subject: e.subject, data: dec(e.data), msgId: e.msgId })), acked, `server ${server}`);
    }
  });

  test('get by seq, next at or after a seq (on a subject or any), lastOnSubject, and not_found for what is not there', async () => {
    const s = await newStream();
    const subjects = ['a', 'b', 'a', 'b', 'a', 'c'];
    for (const [i, sub] of subjects.entries()) okSeq(await append(any, s.name, s.subject(sub), `${sub}${i + 1}`, { msgId: `m${i + 1}` }), 'append');
    const reader = pinned[2]!;
    await caughtUp(reader, s.name, subjects.length);
    const brief = (r: GetOutcome): unknown => (r.ok ? { seq: r.entry.seq, subject: r.entry.subject, data: dec(r.entry.data), msgId: r.entry.msgId } : r.reason);
    const at = (seq: number, sub: string): unknown => ({ seq, subject: s.subject(sub), data: `${sub}${seq}`, msgId: `m${seq}` });
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 3))), at(3, 'a'));
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 2, { next: true, subject: s.subject('a') }))), at(3, 'a'));
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 3, { next: true, subject: s.subject('a') }))), at(3, 'a'), 'at or after: the seq itself');
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 5, { next: true, subject: s.subject('b') }))), 'not_found');
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 4, { next: true }))), at(4, 'b'));
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 0, { next: true }))), at(1, 'a'));
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 7, { next: true }))), 'not_found');
    assert.deepEqual(brief(await h.settle(reader.lastOnSubject(s.name, s.subject('a')))), at(5, 'a'));
    assert.deepEqual(brief(await h.settle(reader.lastOnSubject(s.name, s.subject('c')))), at(6, 'c'));
    assert.deepEqual(brief(await h.settle(reader.lastOnSubject(s.name, s.subject('z')))), 'not_found');
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 99))), 'not_found');
    assert.deepEqual(brief(await h.settle(reader.get(s.name, 0))), 'not_found');
    const plain = okSeq(await append(any, s.name, s.subject('p'), 'plain'), 'append without a Msg-Id');
    assert.equal((await caughtUp(reader, s.name, plain)).msgId, null);
  });

  test('dedup: the same Msg-Id within the window answers duplicate with the first seq and adds nothing, whatever its expectations, also when appends race', async () => {
    const s = await newStream();
    const first = okSeq(await append(any, s.name, s.subject('d'), 'first', { msgId: 'dup-1' }), 'first');
    assert.deepEqual(await append(pinned[1]!, s.name, s.subject('d'), 'second', { msgId: 'dup-1' }), { ok: true, seq: first, duplicate: true });
    assert.equal(await lastSeq(s.name), first);
    assert.equal(dec((await caughtUp(pinned[2]!, s.name, first)).data), 'first');
    // Dedup comes before the expectations: re-sending an entry exactly as first sent settles it,
    // even after the stream moved on; a new entry with the same stale expectation is refused.
    const chained = okSeq(await append(any, s.name, s.subject('d'), 'chained', { msgId: 'c.1', expectLastMsgId: 'dup-1' }), 'chained');
    okSeq(await append(any, s.name, s.subject('d'), 'marker', { msgId: 'c.2', expectLastMsgId: 'c.1' }), 'marker');
    assert.deepEqual(await append(pinned[0]!, s.name, s.subject('d'), 'chained', { msgId: 'c.1', expectLastMsgId: 'dup-1' }), { ok: true, seq: chained, duplicate: true });
    assert.deepEqual(await append(pinned[0]!, s.name, s.subject('d'), 'chained', { msgId: 'c.1', expectLastSubjectSeq: 0, expectLastSeq: 0 }), { ok: true, seq: chained, duplicate: true });
    const stale = await append(pinned[0]!, s.name, s.subject('d'), 'new', { msgId: 'c.3', expectLastMsgId: 'dup-1' });
    assert.equal(!stale.ok && stale.reason, 'wrong_last_msg_id');
    for (let r = 0; r < 5; r++) {
      const racing = await h.settle(Promise.all(pinned.flatMap((st, i) => [0, 1, 2].map((k) => st.append(s.name, s.subject('d'), enc(`w${i}${k}`), { msgId: `race-${r}` })))));
      const fresh = racing.filter((x) => x.ok && !x.duplicate);
      assert.equal(fresh.length, 1, `round ${r}: one append adds the entry (${JSON.stringify(racing)})`);
      const seq = okSeq(fresh[0]!, 'winner');
      assert.ok(racing.every((x) => x.ok && x.seq === seq), `round ${r}: every racer is told the same seq`);
      assert.equal(await lastSeq(s.name), seq, `round ${r}: nothing else was added`);
      assert.equal(seq, chained + 2 + r);
    }
  });

  test("an entry over the stream's max size is refused too_large and nothing is appended", async () => {
    const max = 4_096;
    const s = await newStream({ maxEntryBytes: max });
    const big = await h.settle(any.append(s.name, s.subject('x'), new Uint8Array(max + 1), { msgId: 'big' }));
    assert.equal(big.ok, false);
    assert.equal(!big.ok && big.reason, 'too_large');
    assert.deepEqual(await h.settle(any.info(s.name)), { ok: true, firstSeq: 0, lastSeq: 0 });
    // Headers (Msg-Id, expectations) count toward the limit: leave them room.
    const fits = await h.settle(any.append(s.name, s.subject('x'), new Uint8Array(max - 512), { msgId: 'fits' }));
    assert.deepEqual(fits, { ok: true, seq: 1, duplicate: false });
  });

  // ---- compare-and-append -----------------------------------------------------------------

  test('expectLastSubjectSeq 0 is a compare-and-append: of racing writers on three servers exactly one wins (20 rounds)', async () => {
    const s = await newStream();
    for (let r = 0; r < ROUNDS; r++) {
      const subject = s.subject(`cas.${r}`);
      const racing = await h.settle(Promise.all(pinned.flatMap((st, i) => [0, 1, 2].map((k) => st.append(s.name, subject, enc(`w${i}${k}`), { expectLastSubjectSeq: 0 })))));
      const won = racing.filter((x) => x.ok);
      assert.equal(won.length, 1, `round ${r}: ${JSON.stringify(racing)}`);
      assert.ok(racing.every((x) => x.ok || x.reason === 'wrong_last_subject_seq'), `round ${r}: losers are told wrong_last_subject_seq: ${JSON.stringify(racing)}`);
      const winner = racing.findIndex((x) => x.ok);
      const entry = await caughtUp(pinned[0]!, s.name, okSeq(won[0]!, 'winner'));
      assert.equal(dec(entry.data), `w${Math.floor(winner / 3)}${winner % 3}`, `round ${r}: the entry is the winner's`);
      assert.equal(entry.subject, subject);
    }
    assert.equal(await lastSeq(s.name), ROUNDS, 'one entry per round');
  });

  test('expectLastSeq is a compare-and-append: of racing writers on three servers exactly one wins (20 rounds)', async () => {
    const s = await newStream();
    let base = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const racing = await h.settle(Promise.all(pinned.flatMap((st, i) => [0, 1, 2].map((k) => st.append(s.name, s.subject(`w${i}`), enc(`r${r}w${i}${k}`), { expectLastSeq: base })))));
      const won = racing.filter((x) => x.ok);
      assert.equal(won.length, 1, `round ${r}: ${JSON.stringify(racing)}`);
      assert.ok(racing.every((x) => x.ok || x.reason === 'wrong_last_seq'), `round ${r}: losers are told wrong_last_seq: ${JSON.stringify(racing)}`);
      base = okSeq(won[0]!, 'winner');
      assert.equal(base, r + 1);
    }
    assert.equal(await lastSeq(s.name), ROUNDS);
  });

  test('expectLastSubjectSeq > 0 refuses a stale writer, and racing writers whose Msg-Id names the new state add exactly one entry (20 rounds)', async () => {
    const s = await newStream();
    const subject = s.subject('owner');
    let seq = okSeq(await append(any, s.name, subject, 'epoch-1', { expectLastSubjectSeq: 0, msgId: 'owner.1' }), 'epoch 1');
    const moved = okSeq(await append(pinned[0]!, s.name, subject, 'epoch-2', { expectLastSubjectSeq: seq, msgId: 'owner.2' }), 'epoch 2');
    const stale = await append(pinned[1]!, s.name, subject, 'stale', { expectLastSubjectSeq: seq, msgId: 'owner.2-stale' });
    assert.equal(!stale.ok && stale.reason, 'wrong_last_subject_seq', 'a writer that read seq before epoch 2 is refused');
    seq = moved;
    for (let r = 0; r < ROUNDS; r++) {
      const epoch = r + 3;
      const before = await lastSeq(s.name);
      const racing = await h.settle(Promise.all(pinned.flatMap((st, i) => [0, 1, 2].map((k) => st.append(s.name, subject, enc(`e${epoch}w${i}${k}`), { expectLastSubjectSeq: seq, msgId: `owner.${epoch}` })))));
      const fresh = racing.filter((x) => x.ok && !x.duplicate);
      assert.equal(fresh.length, 1, `round ${r}: ${JSON.stringify(racing)}`);
      const won = okSeq(fresh[0]!, 'winner');
      assert.ok(racing.every((x) => (x.ok && x.duplicate && x.seq === won) || (x.ok && !x.duplicate) || (!x.ok && x.reason === 'wrong_last_subject_seq')), `round ${r}: the others are duplicates of the winner or refused`);
      assert.equal(await lastSeq(s.name), before + 1, `round ${r}: one entry`);
      seq = won;
    }
  });

  test('expectLastSubjectSeq > 0 between racing writers: every loser is refused and the stream holds exactly the winners (nats-server 2.9.10: often more than one)', async (t: TestContext) => {
    const s = await newStream();
    let multi = 0;
    let most = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const subject = s.subject(`race.${r}`);
      const base = okSeq(await append(any, s.name, subject, 'base', { expectLastSubjectSeq: 0 }), 'base');
      const before = await lastSeq(s.name);
      const racing = await h.settle(Promise.all(pinned.flatMap((st, i) => [0, 1, 2].map((k) => st.append(s.name, subject, enc(`w${i}${k}`), { expectLastSubjectSeq: base })))));
      const won = racing.filter((x) => x.ok);
      assert.ok(won.length >= 1, `round ${r}: someone wins`);
      assert.ok(racing.every((x) => x.ok || x.reason === 'wrong_last_subject_seq'), `round ${r}: ${JSON.stringify(racing)}`);
      assert.equal(await lastSeq(s.name), before + won.length, `round ${r}: the stream holds exactly the winners`);
      if (won.length > 1) multi++;
      most = Math.max(most, won.length);
    }
    t.diagnostic(`${h.kind}: racing expectLastSubjectSeq > 0 (9 writers): ${multi} of ${ROUNDS} rounds had more than one winner (at most ${most})`);
  });

  test('a Msg-Id chain fences a pipelining writer: once the marker is acked none of its entries lands (20 rounds)', async (t: TestContext) => {
    const s = await newStream();
    const subject = s.subject('log');
    let prevId: string | undefined;
    let prevSeq = 0;
    let raced = 0;
    let refusedTotal = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const [a, b] = [pinned[r % h.servers]!, pinned[(r + 1) % h.servers]!];
      const eA = 2 * r + 1;
      const eB = 2 * r + 2;
      const firstSeq = okSeq(await append(a, s.name, subject, `${eA}.1`, { msgId: `${eA}.1`, ...(prevId !== undefined ? { expectLastMsgId: prevId } : {}) }), `round ${r} first`);
      assert.equal(firstSeq, prevSeq + 1);
      const acks = new Map<number, number>([[1, firstSeq]]);
      let lastAcked = 1;
      const refusals: Array<{ n: number; reason: string; afterMarker: boolean }> = [];
      let marker: { seq: number; expected: number; inFlight: number } | null = null;
      let sentAfter = 0;
      let sent = 1;
      let enoughAcked!: () => void;
      const startMarker = new Promise<void>((res) => (enoughAcked = res));
      let markerAcked!: () => void;
      const markerIn = new Promise<void>((res) => (markerAcked = res));
      const inFlight = new Set<Promise<void>>();
      const writerA = async (): Promise<void> => {
        while (sentAfter < FENCE_AFTER_MARKER) {
          if (marker === null && sent >= FENCE_MAX_SENDS) await markerIn;
          while (inFlight.size >= FENCE_WINDOW) await Promise.race(inFlight);
          const n = ++sent;
          const afterMarker = marker !== null;
          if (afterMarker) sentAfter++;
          const p: Promise<void> = a.append(s.name, subject, enc(`${eA}.${n}`), { msgId: `${eA}.${n}`, expectLastMsgId: `${eA}.${n - 1}` }).then((res) => {
            inFlight.delete(p);
            if (res.ok) {
              acks.set(n, res.seq);
              lastAcked = Math.max(lastAcked, n);
              if (acks.size >= FENCE_BEFORE_MARKER) enoughAcked();
            } else refusals.push({ n, reason: res.reason, afterMarker });
          });
          inFlight.add(p);
        }
        await Promise.all(inFlight);
      };
      const writerB = async (): Promise<void> => {
        await startMarker;
        for (let i = 0; i < FENCE_MARKER_TRIES; i++) {
          const expected = lastAcked;
          const res = await b.append(s.name, subject, enc(`${eB}.0`), { msgId: `${eB}.0`, expectLastMsgId: `${eA}.${expected}` });
          if (res.ok) {
            marker = { seq: res.seq, expected, inFlight: inFlight.size };
            markerAcked();
            return;
          }
          assert.equal(res.reason, 'wrong_last_msg_id', `marker attempt: ${res.message}`);
        }
        throw new Error(`round ${r}: the marker did not land in ${FENCE_MARKER_TRIES} attempts`);
      };
      await h.settle(Promise.all([writerA(), writerB()]));
      const m = marker as { seq: number; expected: number; inFlight: number } | null;
      assert.ok(m !== null, `round ${r}: the marker landed`);
      assert.ok(refusals.every((x) => x.reason === 'wrong_last_msg_id'), `round ${r}: refusals are wrong_last_msg_id: ${JSON.stringify(refusals.filter((x) => x.reason !== 'wrong_last_msg_id').slice(0, 3))}`);
      assert.equal(refusals.filter((x) => x.afterMarker).length, FENCE_AFTER_MARKER, `round ${r}: every append sent after the marker's ack is refused`);
      assert.ok([...acks.values()].every((seq) => seq < m.seq), `round ${r}: every acked entry of the old writer is before the marker`);
      // The old writer's accepted entries are an unbroken chain 1..expected, then the marker, then nothing.
      assert.equal(acks.size, m.expected, `round ${r}: acked ${acks.size}, marker expected ${m.expected}`);
      assert.equal(await lastSeq(s.name), m.seq, `round ${r}: nothing landed after the marker`);
      const entries = await readRange(pinned[(r + 2) % h.servers]!, s.name, firstSeq, m.seq);
      assert.deepEqual(entries.map((e) => e.msgId), [...Array.from({ length: m.expected }, (_, i) => `${eA}.${i + 1}`), `${eB}.0`], `round ${r}: the stream holds the chain and the marker`);
      if (m.inFlight > 0) raced++;
      refusedTotal += refusals.length;
      prevId = `${eB}.0`;
      prevSeq = m.seq;
    }
    t.diagnostic(`${h.kind}: Msg-Id fencing: ${raced} of ${ROUNDS} rounds had old-writer appends in flight when the marker was acked; ${refusedTotal} appends refused; 0 landed after a marker`);
    assert.ok(raced > 0, 'at least one round raced the marker against in-flight appends');
  });

  // ---- faults -----------------------------------------------------------------------------

  test('an acked entry survives the kill -9 of one server and of all three', async (t: TestContext) => {
    const s = await newStream();
    const N = 50;
    const acked: string[] = [];
    const results = await h.settle(Promise.all(Array.from({ length: N }, (_, i) => any.append(s.name, s.subject('d'), enc(`d${i}`), { msgId: `d${i}` }))));
    results.forEach((r, i) => {
      assert.equal(okSeq(r, `append ${i}`), i + 1);
      acked.push(`d${i}`);
    });
    await waitCurrent(s.name);
    const leader = await waitLeader(s.name);
    const victim = (leader + 1) % h.servers;
    await h.kill(victim);
    for (let i = 0; i < h.servers; i++) {
      if (i === victim) continue;
      assert.deepEqual((await readRange(pinned[i]!, s.name, 1, N)).map((e) => dec(e.data)), acked, `server ${i} with server ${victim} killed`);
    }
    for (let i = N; i < N + 10; i++) {
      assert.equal(okSeq(await append(any, s.name, s.subject('d'), `d${i}`, { msgId: `d${i}`, timeoutMs: FAULT_APPEND_TIMEOUT_MS }), `append ${i} with one server down`), i + 1);
      acked.push(`d${i}`);
    }
    await h.restart(victim);
    assert.deepEqual((await readRange(pinned[victim]!, s.name, 1, acked.length)).map((e) => dec(e.data)), acked, 'readable through the restarted server');
    await waitCurrent(s.name);
    const t0 = h.now();
    for (let i = 0; i < h.servers; i++) await h.kill(i);
    for (let i = 0; i < h.servers; i++) await h.restart(i);
    for (let i = 0; i < h.servers; i++) {
      assert.deepEqual((await readRange(pinned[i]!, s.name, 1, acked.length, ELECTION_DEADLINE_MS)).map((e) => dec(e.data)), acked, `server ${i} after all three were killed`);
    }
    const readable = h.now() - t0;
    const next = await h.waitFor('an append after the restart', async () => {
      const r = await append(any, s.name, s.subject('d'), 'after', { msgId: 'after', timeoutMs: FAULT_APPEND_TIMEOUT_MS });
      return r.ok ? r : undefined;
    }, ELECTION_DEADLINE_MS);
    assert.equal(next.seq, acked.length + 1, 'the sequence goes on after the last acked entry');
    t.diagnostic(`${h.kind}: all three servers killed: every acked entry readable again after ${Math.round(readable)} ms, appends after ${Math.round(h.now() - t0)} ms`);
  });

  test('losing the stream leader: appends answer unavailable or timeout, then resume after the election; direct gets answer from the replicas meanwhile', async (t: TestContext) => {
    const s = await newStream();
    for (let i = 0; i < 20; i++) okSeq(await append(any, s.name, s.subject('l'), `pre${i}`, { msgId: `pre${i}` }), 'pre');
    await waitCurrent(s.name);
    const leader = await waitLeader(s.name);
    const replicas = Array.from({ length: h.servers }, (_, i) => i).filter((i) => i !== leader);
    const failures: Record<string, number> = {};
    const unknown: string[] = [];
    const acked = new Map<string, number>();
    const gets = new Map<number, { ok: number; failed: number }>(replicas.map((i) => [i, { ok: 0, failed: 0 }]));
    let resumedAt: number | null = null;
    const killedAt = h.now();
    await h.kill(leader);
    // Appends until the first ack after the kill, then a few more.
    const writer = async (): Promise<void> => {
      let n = 0;
      let after = 0;
      while (after < 5 && n < MAX_ATTEMPTS && h.now() - killedAt < ELECTION_DEADLINE_MS) {
        const id = `el${n++}`;
        const r = await any.append(s.name, s.subject('l'), enc(id), { msgId: id, timeoutMs: FAULT_APPEND_TIMEOUT_MS });
        if (r.ok) {
          acked.set(id, r.seq);
          resumedAt ??= h.now();
          after++;
        } else {
          failures[r.reason] = (failures[r.reason] ?? 0) + 1;
          assert.ok(r.reason === 'unavailable' || r.reason === 'timeout', `append during the election: ${r.reason} ${r.message}`);
          if (r.reason === 'timeout') unknown.push(id);
          await h.idle(RETRY_PACE_MS);
        }
      }
    };
    // Direct gets from each surviving replica while there is no leader.
    const reader = async (): Promise<void> => {
      for (let k = 0; resumedAt === null && k < MAX_ATTEMPTS; k++) {
        for (const i of replicas) {
          const r = await pinned[i]!.get(s.name, 10, { timeoutMs: 500 });
          const g = gets.get(i)!;
          if (r.ok && dec(r.entry.data) === 'pre9') g.ok++;
          else g.failed++;
        }
        await h.idle(RETRY_PACE_MS);
      }
    };
    await h.settle(Promise.all([writer(), reader()]));
    assert.ok(resumedAt !== null, 'appends resumed');
    const pause = (resumedAt as number) - killedAt;
    for (const i of replicas) assert.ok(gets.get(i)!.ok > 0, `server ${i} answered direct gets during the election: ${JSON.stringify(gets.get(i))}`);
    // Settle the appends whose outcome was unknown, then check the stream holds every append once.
    for (const id of unknown) acked.set(id, (await settleById(s.name, s.subject('l'), id)).seq);
    const last = await lastSeq(s.name);
    const entries = await readRange(any, s.name, 1, last);
    const ids = entries.map((e) => e.msgId);
    assert.equal(new Set(ids).size, ids.length, 'no Msg-Id twice');
    for (const [id, seq] of acked) assert.equal(ids[seq - 1], id, `${id} at its acked seq ${seq}`);
    assert.notEqual(await waitLeader(s.name), leader);
    await h.restart(leader);
    t.diagnostic(`${h.kind}: stream leader killed: appends resumed after ${Math.round(pause)} ms; failed appends meanwhile ${JSON.stringify(failures)}; direct gets from the replicas ${JSON.stringify(Object.fromEntries(gets))}`);
  });

  test('on a minority an append answers unavailable or timeout within its timeoutMs, nothing is acked, direct get answers from the survivor, and a timed-out append settles by its Msg-Id', async (t: TestContext) => {
    const s = await newStream();
    // Setup, not under test: after the previous test's kills the stream's subject may not be
    // served through every server yet, so each entry is sent again (same Msg-Id) until acked.
    for (let i = 0; i < 5; i++) {
      await h.waitFor(`pre${i} acked`, async () => (await append(any, s.name, s.subject('m'), `pre${i}`, { msgId: `pre${i}` })).ok, ENSURE_DEADLINE_MS);
    }
    const notes: string[] = [];
    for (const survivorLeads of [true, false]) {
      await waitCurrent(s.name);
      const leader = await waitLeader(s.name);
      const before = await lastSeq(s.name);
      const survivor = survivorLeads ? leader : (leader + 1) % h.servers;
      await caughtUp(pinned[survivor]!, s.name, before);
      const gone = Array.from({ length: h.servers }, (_, i) => i).filter((i) => i !== survivor);
      for (const i of gone) await h.kill(i);
      const id = `minority-${survivorLeads ? 'leader' : 'follower'}`;
      const t0 = h.now();
      const r = await append(pinned[survivor]!, s.name, s.subject('m'), id, { msgId: id, timeoutMs: FAULT_APPEND_TIMEOUT_MS });
      const took = h.now() - t0;
      assert.equal(r.ok, false, `nothing is acked on a minority: ${JSON.stringify(r)}`);
      const reason = !r.ok ? r.reason : 'ok';
      assert.ok(reason === 'unavailable' || reason === 'timeout', reason);
      assert.ok(took <= FAULT_APPEND_TIMEOUT_MS + ANSWER_SLACK_MS, `answered in ${took} ms`);
      const g0 = h.now();
      const got = await caughtUp(pinned[survivor]!, s.name, 3, 5_000);
      assert.equal(dec(got.data), 'pre2', 'direct get answers from the survivor');
      const getMs = h.now() - g0;
      const h0 = h.now();
      for (const i of gone) await h.restart(i);
      // Settle the entry by its Msg-Id (a re-append within the window is safe whatever happened).
      const settled = await settleById(s.name, s.subject('m'), id);
      const healMs = h.now() - h0;
      if (reason === 'unavailable') assert.equal(settled.duplicate, false, 'an unavailable append was not appended');
      assert.equal(settled.seq, before + 1);
      assert.equal(await lastSeq(s.name), before + 1, 'the entry is in once, and nothing else');
      assert.equal((await caughtUp(pinned[survivor]!, s.name, before + 1)).msgId, id);
      const landed = settled.duplicate;
      notes.push(`survivor ${survivorLeads ? 'was the leader' : 'was a follower'}: append ${reason} after ${Math.round(took)} ms, entry ${landed ? 'landed after the heal' : 'never landed'}; direct get from the survivor in ${Math.round(getMs)} ms; appends again ${Math.round(healMs)} ms after the restarts began`);
    }
    t.diagnostic(`${h.kind}: 2 of 3 servers killed: ${notes.join('; ')}`);
  });
}

// ---- the real thing -----------------------------------------------------------------------

/** The real harness also hands out its cluster, for tests of what only the real binding has. */
export interface NatsStreamHarness extends StreamHarness {
  readonly cluster: NatsCluster;
}

/** Real nats-server 2.9.10: a 3-server JetStream cluster; each store on its own connection. */
export async function natsStreamHarness(): Promise<NatsStreamHarness> {
  const cluster = await NatsCluster.start();
  const transports: NatsTransport[] = [];
  const h: NatsStreamHarness = {
    kind: 'nats',
    cluster,
    servers: cluster.size,
    async store(server) {
      const pin = server !== undefined;
      const r = await connectNats({ servers: pin ? [cluster.url(server)] : cluster.urls, name: `rules-${transports.length}`, ignoreClusterUpdates: pin, reconnectWaitMs: 50 });
      if (!r.ok) throw new Error(r.message);
      transports.push(r.transport);
      return new JetStreamStore(r.transport.connection, { apiTimeoutMs: 2_000 });
    },
    streamLeader: (stream) => cluster.streamLeader(stream),
    replicasCurrent: (stream) => cluster.streamCaughtUp(stream),
    kill: (i) => cluster.kill(i),
    restart: (i) => cluster.restart(i),
    running: (i) => cluster.running(i),
    now: () => performance.now(),
    async waitFor(what, probe, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const v = await probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    idle: (ms) => new Promise((r) => setTimeout(r, ms)),
    settle: (p) => p,
    async close() {
      for (const t of transports) await t.close();
      await cluster.stopAll();
    },
  };
  return h;
}

// ---- the simulator's model ------------------------------------------------------------------

/** Virtual ms a `settle` may run before it is a failure (longer than any rule's deadline). */
const SIM_SETTLE_MS = 120_000;
/** Virtual ms between two probes of `waitFor`. */
const SIM_POLL_MS = 25;

/**
 * The JetStream model (sim/SimJetStream.ts) in virtual time: 3 simulated servers, one node on
 * each (the pinned stores) and one more on the first server (the store that uses any server).
 */
export async function simStreamHarness(seed = 7, jetstream: SimJetStreamOptions = {}): Promise<StreamHarness> {
  const c = new SimCluster({ seed, nodes: 4, servers: 3, jetstream });
  const js = c.jetstream!;
  c.start();
  await c.waitFor('the JetStream API', () => js.apiReady(), SIM_SETTLE_MS);
  const down = new Set<number>();
  const h: StreamHarness = {
    kind: 'sim',
    servers: c.servers.length,
    async store(server) {
      const name = server === undefined ? 'n3' : `n${server}`;
      return c.node(name).env!.streams!;
    },
    async streamLeader(stream) {
      const l = js.leaderOf(stream);
      return l === null ? null : c.servers.indexOf(l);
    },
    async replicasCurrent(stream) {
      const v = js.replicas(stream);
      return js.leaderOf(stream) !== null && v.length === c.servers.length && v.every((r) => r.lastSeq === v[0]!.lastSeq && r.applied === v[0]!.applied);
    },
    async kill(i) {
      c.killServer(c.servers[i]!);
      down.add(i);
    },
    async restart(i) {
      c.restartServer(c.servers[i]!);
      down.delete(i);
      await c.run(SIM_POLL_MS);
    },
    running: (i) => !down.has(i),
    now: () => c.now,
    async waitFor(what, probe, timeoutMs = 10_000) {
      const deadline = c.now + timeoutMs;
      for (;;) {
        const v = await probe();
        if (v !== undefined && v !== null && v !== false) return v;
        if (c.now >= deadline) throw new Error(`timed out after ${timeoutMs} virtual ms waiting for ${what}`);
        await c.run(SIM_POLL_MS);
      }
    },
    idle: (ms) => new Promise((resolve) => c.world.after(ms, 'rule_idle', () => resolve())),
    settle: (p) => c.settle(p, SIM_SETTLE_MS),
    async close() {},
  };
  return h;
}
