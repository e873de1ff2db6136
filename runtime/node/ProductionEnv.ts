/**
 * The production Env: real clocks, Node timers, crypto randomness, pino logs and the
 * piscina dirty pool. This folder is the only place (with sim/) allowed to touch them.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { DirtyWork, Env, Logger, Random, Timers, Clock } from '../Env.js';

export const realClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

export const realTimers: Timers = {
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
  defer(fn) {
    setImmediate(fn);
  },
};

/** Crypto-strength randomness, refilled in blocks so a call costs little. */
export function cryptoRandom(): Random {
  let pool = randomBytes(4096);
  let at = 0;
  const take = (n: number): Buffer => {
    if (at + n > pool.length) {
      pool = randomBytes(Math.max(4096, n));
      at = 0;
    }
    const out = pool.subarray(at, at + n);
    at += n;
    return out;
  };
  return {
    float: () => take(4).readUInt32LE(0) / 4294967296,
    uint32: () => take(4).readUInt32LE(0),
    bytes: (n) => new Uint8Array(take(n)),
  };
}

/** Random incarnation number for a scheduler or node start (31 bits, never 0). */
export function newIncarnation(): number {
  return randomInt(1, 0x7fffffff);
}

/**
 * Incarnation of a node process start: larger than that of any earlier start of the same node
 * (wall-clock milliseconds, times 1,024, plus random low bits), so peers can tell a restarted
 * node from a late message of its previous life. Exact below 2^53 until the year 2250.
 */
export function newNodeIncarnation(): number {
  return Date.now() * 1024 + randomInt(0, 1024);
}

export interface ProductionEnvOptions {
  log: Logger;
  dirty: DirtyWork;
}

export function productionEnv(opts: ProductionEnvOptions): Env {
  return {
    clock: realClock,
    timers: realTimers,
    random: cryptoRandom(),
    log: opts.log,
    dirty: opts.dirty,
  };
}
