/**
 * Property: calls racing their timeouts. Random server reply delays against random call
 * timeouts, from GenServer callers, StateMachine callers and from outside, on a manual clock:
 * every call yields exactly one outcome, a reply iff the server answered before the timeout,
 * and every reply that came too late is dropped without reaching a callback or a mailbox.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as GenServer from '../../actors/GenServer.js';
import * as StateMachine from '../../actors/StateMachine.js';
import type { Pid } from '../../runtime/Pid.js';
import { newScheduler } from '../support/kernel.js';
import { manualTime } from '../support/manualTime.js';

interface Job {
  id: number;
  /** How long the server waits before it replies. */
  delay: number;
  /** The caller's call timeout. */
  timeout: number;
  /** Virtual time at which the caller is asked to make the call. */
  at: number;
  via: 'genserver' | 'statemachine' | 'outside';
  caller: number;
}

type Outcome = { id: number; result: GenServer.CallResult<number> };

/** Replies to `{id, delay}` with `id` after `delay` ms, through a deferred reply. */
const delayedServer: GenServer.Behaviour<null, void, { id: number; delay: number }, number> = {
  init: () => ({ state: null }),
  handleCall: (req, from, st, ctx) => {
    ctx.sendAfter(req.delay, { release: from, id: req.id });
    return { noreply: true, state: st };
  },
  handleInfo: (msg, st, ctx) => {
    const m = msg as { release: GenServer.From; id: number };
    GenServer.reply(ctx, m.release, m.id);
    return { noreply: true, state: st };
  },
};

const job = fc.record({
  delay: fc.integer({ min: 0, max: 60 }),
  timeout: fc.integer({ min: 0, max: 60 }),
  at: fc.integer({ min: 0, max: 80 }),
  via: fc.constantFrom<Job['via']>('genserver', 'statemachine', 'outside'),
  caller: fc.integer({ min: 0, max: 1 }),
});

test('every call yields exactly one of reply or timeout, as the delay decides, and no late reply reaches the caller', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(job, { minLength: 1, maxLength: 10 }), async (raw) => {
      const jobs: Job[] = raw.map((j, id) => ({ ...j, id })).sort((a, b) => a.at - b.at || a.id - b.id);
      const mt = manualTime();
      const s = newScheduler(mt.env);
      const outcomes: Outcome[] = [];
      const strays: unknown[] = [];

      const server = await mt.drive(GenServer.start(s, delayedServer, undefined));
      assert.ok(server.ok);
      const serverPid = server.pid;

      const genCaller: GenServer.Behaviour<null, void, unknown, unknown, Job> = {
        init: () => ({ state: null }),
        handleCast: async (j, st, ctx) => {
          outcomes.push({ id: j.id, result: await GenServer.call<number>(ctx, serverPid, { id: j.id, delay: j.delay }, j.timeout) });
          return { noreply: true, state: st };
        },
        handleInfo: (msg, st) => {
          strays.push(msg);
          return { noreply: true, state: st };
        },
      };
      const smCaller: StateMachine.Behaviour<'ready', null, void> = {
        init: () => ({ state: 'ready', data: null }),
        handleEvent: async (type, event, _state, _data, ctx) => {
          if (type !== 'cast') {
            strays.push(event);
            return { keepState: true };
          }
          const j = event as Job;
          outcomes.push({ id: j.id, result: await StateMachine.call<number>(ctx, serverPid, { id: j.id, delay: j.delay }, j.timeout) });
          return { keepState: true };
        },
      };
      const callers: Record<'genserver' | 'statemachine', Pid[]> = { genserver: [], statemachine: [] };
      for (let i = 0; i < 2; i++) {
        const g = await mt.drive(GenServer.start(s, genCaller, undefined));
        const m = await mt.drive(StateMachine.start(s, smCaller, undefined));
        assert.ok(g.ok && m.ok);
        callers.genserver.push(g.pid);
        callers.statemachine.push(m.pid);
      }
      const baseline = s.processes().length;

      for (const j of jobs) {
        await mt.advance(j.at - mt.now());
        if (j.via === 'outside') {
          void GenServer.callFrom<number>(s, serverPid, { id: j.id, delay: j.delay }, j.timeout).then((result) => outcomes.push({ id: j.id, result }));
        } else {
          GenServer.cast(s, callers[j.via][j.caller], j);
        }
      }
      await mt.until(() => outcomes.length === jobs.length, 10_000, 'every call to return');
      await mt.advance(1_000); // every late reply has been sent and handled by now

      // Exactly one outcome per call, and the right one.
      assert.deepEqual(outcomes.map((o) => o.id).sort((a, b) => a - b), jobs.map((j) => j.id).sort((a, b) => a - b));
      for (const o of outcomes) {
        const j = jobs.find((x) => x.id === o.id)!;
        const expected: GenServer.CallResult<number> = j.delay < j.timeout ? { ok: true, value: j.id } : { ok: false, reason: 'timeout' };
        assert.deepEqual(o.result, expected, `job ${JSON.stringify(j)}`);
      }

      // No late reply reached a callback, nothing is left queued or monitored.
      assert.deepEqual(strays, []);
      let handled = 0;
      for (const pid of [...callers.genserver, ...callers.statemachine]) {
        const info = s.info(pid)!;
        assert.equal(info.messageQueueLen, 0);
        assert.equal(info.monitors, 0);
        handled += info.messagesHandled;
      }
      // The late replies did arrive (one per timed-out call from a behaviour) and were dropped.
      const fromBehaviours = jobs.filter((j) => j.via !== 'outside');
      const timedOut = fromBehaviours.filter((j) => j.delay >= j.timeout).length;
      assert.equal(handled, fromBehaviours.length + timedOut);
      // Temporary processes of outside calls are gone with their late replies.
      assert.equal(s.processes().length, baseline);
    }),
    { numRuns: 120 },
  );
});
