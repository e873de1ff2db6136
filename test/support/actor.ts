/**
 * A test actor: a real process that runs test code inside itself (`run`) and forwards every
 * other message it receives, in order, to a probe. Tests use it to act as a process (link,
 * monitor, spawn from inside one) and to observe exactly what that process was delivered.
 */
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessContext, SpawnOptions } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { spawnProbe, type Probe } from './kernel.js';

const RUN: unique symbol = Symbol('test actor run');

interface RunRequest {
  [RUN]: (ctx: ProcessContext) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

function isRun(m: unknown): m is RunRequest {
  return typeof m === 'object' && m !== null && RUN in m;
}

export interface Actor {
  readonly pid: Pid;
  /** Receives everything the actor was delivered (run requests excluded), in order. */
  readonly probe: Probe;
  /** Run `fn` as the actor's handler for one message; resolves with its result (rejects if the actor is gone). */
  run<T>(fn: (ctx: ProcessContext) => T | Promise<T>, timeoutMs?: number): Promise<T>;
  /**
   * Everything the actor was delivered up to now, once it has handled it all and the probe
   * has seen it (a marker round trip, so "nothing arrived" checks cannot pass by racing).
   */
  settled(): Promise<unknown[]>;
}

export function spawnActor(s: Scheduler, opts: SpawnOptions = {}): Actor {
  const probe = spawnProbe(s);
  const pid = s.spawn((ctx) => (msg) => {
    if (!isRun(msg)) {
      ctx.send(probe.pid, msg);
      return;
    }
    let r: unknown;
    try {
      r = msg[RUN](ctx);
    } catch (err) {
      msg.reject(err);
      throw err;
    }
    if (r instanceof Promise) {
      return r.then(msg.resolve, (err: unknown) => {
        msg.reject(err);
        throw err;
      });
    }
    msg.resolve(r);
  }, { label: 'test-actor', ...opts });
  return {
    pid,
    probe,
    run<T>(fn: (ctx: ProcessContext) => T | Promise<T>, timeoutMs = 2000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`actor ${pid.toString()} did not run the request within ${timeoutMs} ms`)), timeoutMs);
        const req: RunRequest = {
          [RUN]: fn,
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        s.send(pid, req, null);
      });
    },
    async settled(): Promise<unknown[]> {
      const marker = Symbol('settled');
      await this.run((ctx) => ctx.send(probe.pid, marker));
      await probe.next((m) => m === marker);
      return probe.received.filter((m) => typeof m !== 'symbol' || m.description !== 'settled');
    },
  };
}
