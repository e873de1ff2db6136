/**
 * The dirty-work pool (RT10): CPU-heavy jobs run on piscina worker threads so they never
 * stall a scheduler. A job names a module and an export; the argument and result must be
 * structured-cloneable.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { DirtyWork } from '../Env.js';

const DIRTY_WORKER = new URL('./dirtyWorker.js', import.meta.url).href;

/** Default pool size: half the cores, at least one thread. */
export function defaultDirtyThreads(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

export class DirtyPool implements DirtyWork {
  private readonly pool: Piscina;

  constructor(threads = defaultDirtyThreads()) {
    this.pool = new Piscina({ filename: DIRTY_WORKER, minThreads: 0, maxThreads: threads, idleTimeout: 10_000 });
  }

  run<T = unknown>(module: string, fn: string, arg: unknown): Promise<T> {
    return this.pool.run({ module, fn, arg }) as Promise<T>;
  }

  get completed(): number {
    return this.pool.completed;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
