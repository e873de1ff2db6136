/**
 * Dirty work run on the calling thread: for the simulator and unit tests, where a thread
 * pool would break determinism or is not worth starting. Production uses the piscina pool.
 */
import type { DirtyWork } from './Env.js';

export const inlineDirtyWork: DirtyWork = {
  async run<T>(module: string, fn: string, arg: unknown): Promise<T> {
    const mod = (await import(module)) as Record<string, (a: unknown) => T | Promise<T>>;
    const f = mod[fn];
    if (typeof f !== 'function') throw new Error(`${module} has no export ${fn}`);
    return f(arg);
  },
};
