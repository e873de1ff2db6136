/**
 * Mailbox ordering, property-based: random interleavings of sends from several senders and
 * selective receives with random predicates, checked against a reference model (one list in
 * arrival order). Per-sender FIFO holds, a receive returns the first matching message in
 * arrival order, and nothing is lost or duplicated. Every property is bounded in time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newScheduler, spawnProbe, type Probe } from '../support/kernel.js';
import { spawnActor, type Actor } from '../support/actor.js';
import { TIMEOUT, type ProcessContext } from '../../runtime/ProcessContext.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

/** Wall-clock budget of each property; fast-check stops generating runs after it. */
const PROPERTY_BUDGET_MS = 4_000;
const SENDERS = 3;
/** Sender index used for messages sent from outside any process. */
const OUTSIDER = SENDERS;

// ---- messages and predicates as plain data (so counterexamples print readably) ----------

interface TestMsg {
  tm: true;
  from: number;
  seq: number;
  id: number;
}

type Pred =
  | { k: 'any' }
  | { k: 'from'; senders: number[] }
  | { k: 'mod'; m: number; r: number }
  | { k: 'not'; p: Pred }
  | { k: 'and'; a: Pred; b: Pred };

function holds(p: Pred, m: TestMsg): boolean {
  switch (p.k) {
    case 'any':
      return true;
    case 'from':
      return p.senders.includes(m.from);
    case 'mod':
      return m.id % p.m === p.r;
    case 'not':
      return !holds(p.p, m);
    case 'and':
      return holds(p.a, m) && holds(p.b, m);
  }
}

const predArb: fc.Arbitrary<Pred> = fc.letrec<{ pred: Pred }>((tie) => ({
  pred: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Pred>({ k: 'any' }),
    fc.uniqueArray(fc.integer({ min: 0, max: OUTSIDER }), { minLength: 1, maxLength: 3 }).map<Pred>((senders) => ({ k: 'from', senders })),
    fc.integer({ min: 2, max: 4 }).chain((m) => fc.integer({ min: 0, max: m - 1 }).map<Pred>((r) => ({ k: 'mod', m, r }))),
    tie('pred').map<Pred>((p) => ({ k: 'not', p })),
    fc.tuple(tie('pred'), tie('pred')).map<Pred>(([a, b]) => ({ k: 'and', a, b })),
  ),
})).pred;

// ---- the receiver: a process-style body driven by commands ------------------------------

type Command =
  | { cmd: 'poll'; id: number; pred: Pred }
  | { cmd: 'block'; id: number; pred: Pred }
  | { cmd: 'stop' };

type Report = { id: number; waiting: true } | { id: number; got: TestMsg | 'release' | null };

const RELEASE = 'release';

function isTestMsg(m: unknown): m is TestMsg {
  return typeof m === 'object' && m !== null && (m as TestMsg).tm === true;
}
function isCommand(m: unknown): m is Command {
  return typeof m === 'object' && m !== null && typeof (m as Command).cmd === 'string';
}

/** Picks commands out of its mailbox (skipping test messages), runs each receive, reports. */
function receiverBody(report: Pid) {
  return async (ctx: ProcessContext): Promise<void> => {
    for (;;) {
      const c = (await ctx.receive(isCommand)) as Command;
      if (c.cmd === 'stop') return;
      const match = (m: unknown) => isTestMsg(m) && holds(c.pred, m);
      if (c.cmd === 'poll') {
        const r = await ctx.receive<TestMsg>(match, 0);
        ctx.send(report, { id: c.id, got: r === TIMEOUT ? null : r });
      } else {
        const pending = ctx.receive<TestMsg | typeof RELEASE>((m) => match(m) || m === RELEASE);
        ctx.send(report, { id: c.id, waiting: true });
        const r = await pending;
        ctx.send(report, { id: c.id, got: r === TIMEOUT ? null : r });
      }
    }
  };
}

// ---- one run: operations against the real mailbox and the model ------------------------

type Op =
  | { op: 'send'; from: number; count: number }
  | { op: 'poll'; pred: Pred }
  | { op: 'block'; pred: Pred };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('send' as const), from: fc.integer({ min: 0, max: OUTSIDER }), count: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('poll' as const), pred: predArb }),
  fc.record({ op: fc.constant('block' as const), pred: predArb }),
);

interface World {
  s: Scheduler;
  probe: Probe;
  senders: Actor[];
  receiver: Pid;
}

function newWorld(): World {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const senders = Array.from({ length: SENDERS }, () => spawnActor(s));
  const receiver = s.spawn(receiverBody(probe.pid), { label: 'receiver' });
  return { s, probe, senders, receiver };
}

function reportFor(id: number, kind: 'waiting' | 'got') {
  return (m: unknown): boolean => {
    const r = m as Report;
    return r.id === id && (kind === 'waiting' ? 'waiting' in r : 'got' in r);
  };
}

async function runOps(ops: Op[]): Promise<void> {
  const w = newWorld();
  const model: TestMsg[] = [];
  const seqs = new Array<number>(SENDERS + 1).fill(0);
  const sent: TestMsg[] = [];
  const received: TestMsg[] = [];
  let nextId = 0;
  let nextCmd = 0;
  let blocked: { id: number; pred: Pred } | null = null;

  const expectGot = async (id: number, expected: TestMsg | 'release' | null) => {
    const r = await w.probe.next<{ got: TestMsg | 'release' | null }>(reportFor(id, 'got'));
    assert.deepEqual(r.got, expected, `receive #${id}`);
    if (r.got !== null && r.got !== RELEASE) received.push(r.got);
  };
  /** The model's selective receive: first matching message in arrival order. */
  const take = (pred: Pred): TestMsg | null => {
    const i = model.findIndex((m) => holds(pred, m));
    return i < 0 ? null : (model.splice(i, 1)[0] as TestMsg);
  };

  for (const o of ops) {
    if (o.op === 'send') {
      const batch: TestMsg[] = [];
      for (let k = 0; k < o.count; k++) batch.push({ tm: true, from: o.from, seq: seqs[o.from]++, id: nextId++ });
      sent.push(...batch);
      if (o.from === OUTSIDER) for (const m of batch) w.s.send(w.receiver, m, null);
      else await (w.senders[o.from] as Actor).run((ctx) => batch.forEach((m) => ctx.send(w.receiver, m)));
      for (const m of batch) {
        if (blocked !== null && holds(blocked.pred, m)) {
          const id = blocked.id;
          blocked = null;
          await expectGot(id, m);
        } else model.push(m);
      }
      continue;
    }
    if (blocked !== null) continue; // the receiver is inside a receive; commands would wait
    const id = nextCmd++;
    w.s.send(w.receiver, { cmd: o.op, id, pred: o.pred }, null);
    const expected = take(o.pred);
    if (o.op === 'poll' || expected !== null) {
      await expectGot(id, expected);
    } else {
      await w.probe.next(reportFor(id, 'waiting'));
      blocked = { id, pred: o.pred };
    }
  }
  if (blocked !== null) {
    w.s.send(w.receiver, RELEASE, null);
    await expectGot(blocked.id, RELEASE);
  }
  // Drain what is left: exactly the model's remaining list, in arrival order.
  for (const m of [...model, null]) {
    const id = nextCmd++;
    w.s.send(w.receiver, { cmd: 'poll', id, pred: { k: 'any' } }, null);
    await expectGot(id, m);
  }
  w.s.send(w.receiver, { cmd: 'stop' }, null);

  // Nothing lost, nothing duplicated.
  assert.deepEqual(
    received.map((m) => m.id).sort((a, b) => a - b),
    sent.map((m) => m.id),
  );
}

test('selective receive over random interleavings matches the arrival-order model', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      await runOps(ops);
    }),
    { numRuns: 150, interruptAfterTimeLimit: PROPERTY_BUDGET_MS, markInterruptAsFailure: false },
  );
});

test('per-sender FIFO survives concurrent bursts: receiving by sender yields each sender in order', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 5 }), { minLength: SENDERS, maxLength: SENDERS }),
      fc.array(fc.integer({ min: 0, max: SENDERS - 1 }), { minLength: 1, maxLength: 30 }),
      async (bursts, takeOrder) => {
        const w = newWorld();
        const total = bursts.map((b) => b.reduce((x, y) => x + y, 0));
        // Every burst is requested at once: the scheduler interleaves the senders freely.
        const runs: Promise<void>[] = [];
        const seqs = new Array<number>(SENDERS).fill(0);
        bursts.forEach((senderBursts, from) => {
          for (const count of senderBursts) {
            runs.push(
              (w.senders[from] as Actor).run((ctx) => {
                for (let k = 0; k < count; k++) ctx.send(w.receiver, { tm: true, from, seq: seqs[from]++, id: 0 });
              }),
            );
          }
        });
        await Promise.all(runs);
        const seen: number[][] = Array.from({ length: SENDERS }, () => []);
        let id = 0;
        /** One selective receive of sender `from`'s next message; false when none is left. */
        const takeFrom = async (from: number): Promise<boolean> => {
          const cmd = id++;
          w.s.send(w.receiver, { cmd: 'poll', id: cmd, pred: { k: 'from', senders: [from] } }, null);
          const r = await w.probe.next<{ got: TestMsg | null }>(reportFor(cmd, 'got'));
          if (r.got === null) return false;
          (seen[from] as number[]).push(r.got.seq);
          return true;
        };
        for (const from of takeOrder) await takeFrom(from);
        for (let from = 0; from < SENDERS; from++) while (await takeFrom(from));
        w.s.send(w.receiver, { cmd: 'stop' }, null);
        seen.forEach((seqList, from) => {
          assert.deepEqual(seqList, Array.from({ length: total[from] as number }, (_, i) => i), `sender ${from}`);
        });
      },
    ),
    { numRuns: 100, interruptAfterTimeLimit: PROPERTY_BUDGET_MS, markInterruptAsFailure: false },
  );
});
