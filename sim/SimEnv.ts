/**
 * The Env door bound to the simulation: a node's clock (virtual time plus the node's skew
 * and wall-clock jumps), timers and deferred work as kernel events owned by the node's
 * current incarnation, a seeded random stream, a log that keeps counts (and lines when
 * tracing), and dirty work that refuses (nothing in the service needs the pool; anything
 * that does must say so rather than leave the simulation).
 */
import type { DirtyWork, Env, Logger, StorageEngine, Timers } from '../runtime/Env.js';
import type { SimOwner } from './EventQueue.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

/** The clock of one node: virtual time shifted by the node's skew; wall time may jump. */
export interface NodeClock {
  /** Constant offset of this node's clocks from virtual time, ms. */
  skewMs: number;
  /** Extra offset of the wall clock only (clock jumps, forward or back), ms. */
  wallJumpMs: number;
}

/** Counts of log lines by level, and the last lines when tracing. */
export class SimLog implements Logger {
  counts = { debug: 0, info: 0, warn: 0, error: 0 };
  readonly lines: string[] = [];
  constructor(
    private readonly world: SimWorld,
    private readonly node: string,
    private readonly keepLines: boolean,
  ) {}
  private line(level: 'debug' | 'info' | 'warn' | 'error', fields: object, msg: string): void {
    this.counts[level]++;
    if (this.keepLines && level !== 'debug') this.lines.push(`${this.world.now.toFixed(3)} ${this.node} ${level} ${msg} ${safeJson(fields)}`);
  }
  debug(fields: object, msg: string): void {
    this.line('debug', fields, msg);
  }
  info(fields: object, msg: string): void {
    this.line('info', fields, msg);
  }
  warn(fields: object, msg: string): void {
    this.line('warn', fields, msg);
  }
  error(fields: object, msg: string): void {
    this.line('error', fields, msg);
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? `<${x.length}B>` : x));
  } catch {
    return '{}';
  }
}

const noDirtyWork: DirtyWork = {
  run(module, fn) {
    return Promise.reject(new Error(`dirty work ${module}#${fn} is not available in the simulator`));
  },
};

/** Epoch of wall-clock time 0 in the simulation (any fixed instant works). */
export const SIM_WALL_EPOCH_MS = 1_767_225_600_000;

export function simEnv(world: SimWorld, owner: SimOwner, clock: NodeClock, random: SimRandom, log: Logger, storage?: StorageEngine): Env {
  const timers: Timers = {
    setTimer(ms, fn) {
      return world.after(Math.max(0, ms), 'timer', fn, owner);
    },
    clearTimer(handle) {
      if (handle !== undefined && handle !== null) world.cancel(handle as ReturnType<SimWorld['after']>);
    },
    defer(fn) {
      world.after(0, 'run', fn, owner);
    },
  };
  const env: Env = {
    clock: {
      monotonicMs: () => world.now + clock.skewMs,
      wallMs: () => SIM_WALL_EPOCH_MS + world.now + clock.skewMs + clock.wallJumpMs,
    },
    timers,
    random,
    log,
    dirty: noDirtyWork,
    ...(storage !== undefined ? { storage } : {}),
  };
  return env;
}
