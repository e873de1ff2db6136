/**
 * Properties of the token bucket (fast-check, manual clock): over any window it never grants
 * more than burst + refill × elapsed / interval; after enough time it always grants; and a
 * refusal's retryAfterMs is exact (still refused one millisecond earlier, granted at that instant).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TokenBucket, type TokenBucketRate } from '../../edge/limits/TokenBucket.js';
import { manualClock } from '../support/manualClock.js';

const RUNS = { numRuns: 300 };

const rateArb: fc.Arbitrary<TokenBucketRate> = fc.record({
  burst: fc.integer({ min: 1, max: 50 }),
  refill: fc.integer({ min: 1, max: 30 }),
  intervalMs: fc.integer({ min: 1, max: 5_000 }),
});

/** A rate and a history of (wait, take n) steps with n within the burst. */
const scenarioArb = rateArb.chain((rate) =>
  fc.record({
    rate: fc.constant(rate),
    start: fc.integer({ min: 0, max: 1_000_000 }),
    steps: fc.array(fc.record({ waitMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 * rate.intervalMs })), n: fc.integer({ min: 1, max: rate.burst }) }), {
      maxLength: 60,
    }),
  }),
);

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

test('never grants more than burst + refill × elapsed / interval over any window', () => {
  fc.assert(
    fc.property(scenarioArb, ({ rate, start, steps }) => {
      const clock = manualClock(start);
      const bucket = new TokenBucket(rate, clock);
      const grants: Array<{ at: number; n: number }> = [];
      for (const step of steps) {
        clock.now += step.waitMs;
        if (bucket.take(step.n).ok) grants.push({ at: clock.now, n: step.n });
      }
      // Every window [grants[i].at, grants[j].at]: in units of 1/intervalMs token, exactly.
      for (let i = 0; i < grants.length; i++) {
        let granted = 0;
        for (let j = i; j < grants.length; j++) {
          granted += grants[j]!.n;
          const elapsed = grants[j]!.at - grants[i]!.at;
          assert.ok(granted * rate.intervalMs <= rate.burst * rate.intervalMs + rate.refill * elapsed, `window ${i}..${j}: ${granted} tokens in ${elapsed} ms`);
        }
      }
    }),
    RUNS,
  );
});

test('after enough time, any request within the burst is granted', () => {
  fc.assert(
    fc.property(scenarioArb, fc.nat(), ({ rate, start, steps }, pick) => {
      const clock = manualClock(start);
      const bucket = new TokenBucket(rate, clock);
      for (const step of steps) {
        clock.now += step.waitMs;
        bucket.take(step.n);
      }
      const n = 1 + (pick % rate.burst);
      // Whatever the history, an empty bucket holds n tokens after ceil(n × interval / refill) ms.
      clock.now += ceilDiv(n * rate.intervalMs, rate.refill);
      assert.equal(bucket.take(n).ok, true);
      // And a full refill period always restores the whole burst.
      clock.now += ceilDiv(rate.burst * rate.intervalMs, rate.refill);
      assert.equal(bucket.available(), rate.burst);
      assert.equal(bucket.take(rate.burst).ok, true);
    }),
    RUNS,
  );
});

test('retryAfterMs is exact: refused one millisecond earlier, granted at that instant', () => {
  let refusals = 0;
  fc.assert(
    fc.property(scenarioArb, ({ rate, start, steps }) => {
      for (const probe of steps) {
        // Replay the history up to each step on a fresh bucket, then probe that step's request.
        const clock = manualClock(start);
        const bucket = new TokenBucket(rate, clock);
        for (const step of steps) {
          clock.now += step.waitMs;
          if (step === probe) break;
          bucket.take(step.n);
        }
        const decision = bucket.take(probe.n);
        if (decision.ok) continue;
        refusals++;
        assert.ok(Number.isSafeInteger(decision.retryAfterMs) && decision.retryAfterMs >= 1);
        clock.now += decision.retryAfterMs - 1;
        assert.equal(bucket.peek(probe.n).ok, false, 'one millisecond early');
        clock.now += 1;
        assert.equal(bucket.take(probe.n).ok, true, 'at retryAfterMs');
      }
    }),
    RUNS,
  );
  assert.ok(refusals > 100, `the scenarios produced ${refusals} refusals`);
});

test('a refusal takes nothing, and peek never changes the state', () => {
  fc.assert(
    fc.property(scenarioArb, ({ rate, start, steps }) => {
      const clock = manualClock(start);
      const a = new TokenBucket(rate, clock);
      const b = new TokenBucket(rate, clock);
      for (const step of steps) {
        clock.now += step.waitMs;
        // b also peeks and retries refused requests at once; neither may change what a sees.
        b.peek(step.n);
        const da = a.take(step.n);
        const db = b.take(step.n);
        assert.deepEqual(db, da);
        if (!db.ok) assert.equal(b.take(step.n).ok, false);
        assert.equal(a.available(), b.available());
      }
    }),
    RUNS,
  );
});

test('a clock that steps back grants nothing extra', () => {
  fc.assert(
    fc.property(rateArb, fc.integer({ min: 1, max: 10_000 }), (rate, back) => {
      const clock = manualClock(1_000_000);
      const bucket = new TokenBucket(rate, clock);
      assert.equal(bucket.take(rate.burst).ok, true);
      clock.now -= back;
      assert.equal(bucket.available(), 0);
      clock.now += back;
      assert.equal(bucket.available(), 0);
    }),
    RUNS,
  );
});
