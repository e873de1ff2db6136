/**
 * Single-scheduler figures of the runtime bench (P1): ring, ping-pong, spawn time and idle
 * process memory, measured on one Scheduler in this thread with the production Env.
 * Each mirrors bench/erlang/iris_bench.erl so the two can be compared in one run. The
 * StateMachine figures (idle memory, events per second) have no Erlang counterpart: they
 * track the cost of one machine per connection (P3, P4).
 */
import { performance } from 'node:perf_hooks';
import * as StateMachine from '../actors/StateMachine.js';
import { Scheduler } from '../runtime/Scheduler.js';
import type { Pid } from '../runtime/Pid.js';
import type { Env } from '../runtime/Env.js';
import type { ProcessBody } from '../runtime/ProcessContext.js';

function bestOf(rounds: number[]): number {
  return Math.max(...rounds);
}

function newScheduler(env: Env): Scheduler {
  return new Scheduler({ node: 'bench', id: 0, inc: 1, env });
}

/** 1,000 processes in a ring; a token travels `hops` hops. Spawn time excluded. */
export async function ringHopsPerSecond(env: Env, size = 1000, hops = 1_000_000): Promise<number> {
  const s = newScheduler(env);
  let done!: (t: number) => void;
  const finished = new Promise<number>((r) => (done = r));
  const pids: Pid[] = [];
  for (let i = 0; i < size; i++) {
    pids.push(
      s.spawn((ctx) => {
        let next: Pid | null = null;
        return (msg) => {
          if (next === null) {
            next = msg as Pid;
            return;
          }
          const n = msg as number;
          if (n === 0) done(performance.now());
          else ctx.send(next, n - 1);
        };
      }),
    );
  }
  for (let i = 0; i < size; i++) s.send(pids[i]!, pids[(i + 1) % size]!, null);
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const t0 = performance.now();
  s.send(pids[0]!, hops, null);
  const t1 = await finished;
  s.shutdown();
  return hops / ((t1 - t0) / 1000);
}

/** Two processes bounce a counter back and forth `total` times. */
export async function pingPongPerSecond(env: Env, total = 1_000_000): Promise<number> {
  const s = newScheduler(env);
  let done!: (t: number) => void;
  const finished = new Promise<number>((r) => (done = r));
  const mk = () =>
    s.spawn((ctx) => {
      let peer: Pid | null = null;
      return (msg) => {
        if (peer === null) {
          peer = msg as Pid;
          return;
        }
        const n = msg as number;
        if (n === 0) done(performance.now());
        else ctx.send(peer, n - 1);
      };
    });
  const a = mk();
  const b = mk();
  s.send(a, b, null);
  s.send(b, a, null);
  await new Promise((r) => setImmediate(r));
  const t0 = performance.now();
  s.send(a, total, null);
  const t1 = await finished;
  s.shutdown();
  return total / ((t1 - t0) / 1000);
}

/** Microseconds per spawn of a process that starts and then waits for messages. */
export async function spawnMicros(env: Env, count = 100_000): Promise<number> {
  const s = newScheduler(env);
  const idle = () => () => {};
  const t0 = performance.now();
  for (let i = 0; i < count; i++) s.spawn(idle);
  // Let every child run its body and become idle, as the Erlang figure includes the start.
  while (s.metrics().runQueue > 0) await new Promise((r) => setImmediate(r));
  const t1 = performance.now();
  s.shutdown();
  return ((t1 - t0) * 1000) / count;
}

const pingHandler = (): ProcessBody => (ctx) => (msg) => {
  ctx.send(msg as Pid, 'pong');
};

/** A machine that stays in its state: what an idle connection's machine costs at least. */
const idleMachine: StateMachine.Behaviour<'open', null> = {
  init: () => ({ state: 'open', data: null }),
  handleEvent: () => ({ keepState: true }),
};

/** Heap bytes per idle StateMachine process started with `body` (needs --expose-gc). */
export function idleMachineBytes(env: Env, count = 100_000): Promise<number> {
  return idleProcessBytes(env, count, () => StateMachine.body(idleMachine, undefined));
}

/**
 * Events a StateMachine handles per second when a plain process and the machine bounce a
 * counter `total` times: each bounce is one info event returning `{keepState: true}`.
 */
export async function machineEventsPerSecond(env: Env, total = 1_000_000): Promise<number> {
  const s = newScheduler(env);
  let done!: (t: number) => void;
  const finished = new Promise<number>((r) => (done = r));
  const peer = s.spawn((ctx) => {
    let machine: Pid | null = null;
    return (msg) => {
      if (machine === null) {
        machine = msg as Pid;
        return;
      }
      const n = msg as number;
      if (n === 0) done(performance.now());
      else ctx.send(machine, n - 1);
    };
  });
  const bouncer: StateMachine.Behaviour<'open', Pid, Pid> = {
    init: (to) => ({ state: 'open', data: to }),
    handleEvent: (_type, event, _state, to, ctx) => {
      ctx.send(to, event);
      return { keepState: true };
    },
  };
  const machine = s.spawn(StateMachine.body(bouncer, peer));
  s.send(peer, machine, null);
  await new Promise((r) => setImmediate(r));
  const t0 = performance.now();
  s.send(machine, total, null);
  const t1 = await finished;
  s.shutdown();
  return total / ((t1 - t0) / 1000);
}

/** Heap bytes per idle process started from `body` (default: a handler-style process; needs --expose-gc for a precise figure). */
export async function idleProcessBytes(env: Env, count = 100_000, body: () => ProcessBody = pingHandler): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const s = newScheduler(env);
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setImmediate(r));
    }
  };
  await settle();
  const before = process.memoryUsage().heapUsed;
  const pids: Pid[] = new Array(count);
  for (let i = 0; i < count; i++) pids[i] = s.spawn(body());
  while (s.metrics().runQueue > 0) await new Promise((r) => setImmediate(r));
  await settle();
  const after = process.memoryUsage().heapUsed;
  // The pid array is the caller's, not the processes': subtract it (8 bytes a slot).
  const bytes = (after - before - count * 8) / count;
  if (s.metrics().processes !== count) throw new Error('idle processes died during measurement');
  s.shutdown();
  return bytes;
}

export function bestOfRounds(rounds: number[]): number {
  return bestOf(rounds);
}
