/**
 * The runtime bench (P1, P2): our kernel and Erlang/OTP (`erl +S 1`) measured side by side in
 * one run on this machine, plus cross-scheduler batching against naive postMessage.
 * Writes bench/results/runtime.json; ratios are oriented so that higher is better.
 */
import { silentLogger, type Env } from '../runtime/Env.js';
import { inlineDirtyWork } from '../runtime/InlineDirtyWork.js';
import { cryptoRandom, realClock, realTimers } from '../runtime/node/ProductionEnv.js';
import { measureErlang } from './erlang-reference.js';
import { describeMachine } from './machine.js';
import { idleMachineBytes, idleProcessBytes, machineEventsPerSecond, pingPongPerSecond, ringHopsPerSecond, spawnMicros } from './runtime-local.js';
import { crossSchedulerPerSecond, naivePostMessagePerSecond } from './runtime-threads.js';

const ROUNDS = 3;

async function best(rounds: number, f: () => Promise<number>, pick: 'max' | 'min' | 'median'): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < rounds; i++) xs.push(await f());
  xs.sort((a, b) => a - b);
  return pick === 'max' ? xs[xs.length - 1]! : pick === 'min' ? xs[0]! : xs[Math.floor(xs.length / 2)]!;
}

export async function runtimeBench(): Promise<object> {
  const env: Env = { clock: realClock, timers: realTimers, random: cryptoRandom(), log: silentLogger, dirty: inlineDirtyWork };
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    throw new Error('run the runtime bench with node --expose-gc (npm run bench does)');
  }
  const ours = {
    ring_hops_per_s: await best(ROUNDS, () => ringHopsPerSecond(env), 'max'),
    pingpong_msgs_per_s: await best(ROUNDS, () => pingPongPerSecond(env), 'max'),
    spawn_us: await best(ROUNDS, () => spawnMicros(env), 'min'),
    idle_process_bytes: await best(ROUNDS, () => idleProcessBytes(env), 'median'),
    idle_state_machine_bytes: await best(ROUNDS, () => idleMachineBytes(env), 'median'),
    state_machine_events_per_s: await best(ROUNDS, () => machineEventsPerSecond(env), 'max'),
    cross_scheduler_msgs_per_s: await best(ROUNDS, () => crossSchedulerPerSecond(), 'max'),
    naive_postmessage_msgs_per_s: await best(ROUNDS, () => naivePostMessagePerSecond(), 'max'),
  };
  const erl = await measureErlang();
  const results: Record<string, number | string> = { ...ours };
  const ratios: Record<string, number> = {
    cross_scheduler_vs_naive: ours.cross_scheduler_msgs_per_s / ours.naive_postmessage_msgs_per_s,
  };
  let erlangNote: string | undefined;
  if ('skipped' in erl) {
    erlangNote = erl.skipped;
  } else {
    Object.assign(results, erl);
    ratios['ring_vs_erlang'] = ours.ring_hops_per_s / erl.erlang_ring_hops_per_s;
    ratios['pingpong_vs_erlang'] = ours.pingpong_msgs_per_s / erl.erlang_pingpong_msgs_per_s;
    ratios['spawn_vs_erlang'] = erl.erlang_spawn_us / ours.spawn_us;
    ratios['memory_vs_erlang'] = erl.erlang_idle_process_bytes / ours.idle_process_bytes;
  }
  const targets = { ring_vs_erlang: 1.5, pingpong_vs_erlang: 1.5, spawn_vs_erlang: 1.0, memory_vs_erlang: 4, cross_scheduler_vs_naive: 3 };
  return {
    bench: 'runtime',
    when: new Date().toISOString(),
    machine: describeMachine(),
    method: {
      ring: '1,000 processes, 1,000,000 hops, one scheduler; best of 3',
      pingpong: '2 processes, 1,000,000 messages, one scheduler; best of 3',
      spawn: '100,000 spawns of a process that starts and waits; best of 3 (Erlang: best of 3)',
      idle_process: 'heap bytes per idle handler process over 100,000, after GC; median of 3 (Erlang: erlang:memory(processes), median of 3)',
      idle_state_machine: 'heap bytes per idle StateMachine process (spawned with StateMachine.body, no timeout armed) over 100,000, after GC; median of 3; no Erlang figure',
      state_machine_events: 'a plain process and a StateMachine bounce a counter 1,000,000 times (info event, keepState, no actions); machine events per second; best of 3; no Erlang figure',
      cross_scheduler: '1,000,000 messages, worker scheduler 1 -> worker scheduler 2, order checked; best of 3',
      naive_postmessage: '300,000 messages, one postMessage each, thread -> thread; best of 3',
      erlang: 'erl +S 1 running bench/erlang/iris_bench.erl in the same run',
    },
    results,
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, Math.round(v * 100) / 100])),
    targets,
    ...(erlangNote !== undefined ? { erlang_skipped: erlangNote } : {}),
  };
}
