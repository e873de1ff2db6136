/**
 * Tripwires: while a simulation runs, the host's real time, randomness and timers are
 * replaced by functions that fail loudly when simulated code calls them, so a stray
 * `Date.now()` or `setTimeout` in runtime, actor, edge or core code cannot make a run
 * non-deterministic unnoticed (the lint rule catches direct uses; this catches the rest).
 *
 * The test harness itself may still use timers between simulation steps; a call is only a
 * violation when the simulated code is on the stack, which the stack trace tells apart.
 */

export interface Tripwires {
  /** Violations seen so far (call site and what was called). */
  readonly violations: string[];
  /** Put the real functions back. */
  remove(): void;
}

/** Captured before anything is replaced; the simulator's own loop uses these. */
export const realNextTick: typeof process.nextTick = process.nextTick.bind(process);
export const realDateNow: () => number = Date.now;

const SIMULATED_DIRS = /[\\/]dist[\\/](runtime|actors|edge|core)[\\/]/;

type Patch = { target: object; key: string; original: unknown };

export function installTripwires(): Tripwires {
  const violations: string[] = [];
  const patches: Patch[] = [];
  const trip = <F extends (...args: never[]) => unknown>(target: object, key: string, name: string): void => {
    const original = (target as Record<string, unknown>)[key] as F;
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: never[]): unknown {
      const stack = new Error().stack ?? '';
      const frames = stack.split('\n').slice(2);
      const culprit = frames.find((f) => SIMULATED_DIRS.test(f) && !/[\\/]runtime[\\/]node[\\/]/.test(f));
      if (culprit !== undefined) {
        const v = `${name} called during simulation from ${culprit.trim()}`;
        violations.push(v);
        throw new Error(`simulation tripwire: ${v}`);
      }
      return original.apply(this, args);
    };
    (target as Record<string, unknown>)[key] = wrapped;
    patches.push({ target, key, original });
  };
  trip(Date, 'now', 'Date.now');
  trip(Math, 'random', 'Math.random');
  trip(globalThis, 'setTimeout', 'setTimeout');
  trip(globalThis, 'setInterval', 'setInterval');
  trip(globalThis, 'setImmediate', 'setImmediate');
  trip(globalThis.performance, 'now', 'performance.now');
  trip(globalThis.crypto, 'getRandomValues', 'crypto.getRandomValues');
  return {
    violations,
    remove() {
      for (const p of patches.reverse()) (p.target as Record<string, unknown>)[p.key] = p.original;
      patches.length = 0;
    },
  };
}
