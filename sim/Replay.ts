/**
 * Bit-identical replay: run a scenario twice and compare trace hashes. On a mismatch, find
 * the first event where the running hashes part and describe that event in both runs, so a
 * source of non-determinism can be pinned down.
 */
import { runClusterScenario, type ClusterRunResult } from './ClusterSimulation.js';
import type { ClusterScenario } from './ClusterScenario.js';
import { runScenario, type RunResult } from './Simulation.js';
import type { Scenario } from './Scenario.js';

/** What a replay compares of a run (single-node and cluster runs both have it). */
interface Replayable {
  traceHash: string;
  events: number;
  checkpoints: number[] | null;
  trace: string[] | null;
}

export type ReplayOutcome<R> = { ok: true; first: R; traceHash: string } | { ok: false; first: R; second: R; divergence: string };
export type ReplayResult = ReplayOutcome<RunResult>;
export type ClusterReplayResult = ReplayOutcome<ClusterRunResult>;

export function replayCheck(s: Scenario): Promise<ReplayResult> {
  return replayWith((o) => runScenario(s, o));
}

export function replayClusterCheck(s: ClusterScenario): Promise<ClusterReplayResult> {
  return replayWith((o) => runClusterScenario(s, o));
}

async function replayWith<R extends Replayable>(run: (o: { recordCheckpoints?: boolean; recordTrace?: boolean }) => Promise<R>): Promise<ReplayOutcome<R>> {
  const first = await run({ recordCheckpoints: true });
  const second = await run({ recordCheckpoints: true });
  if (first.traceHash === second.traceHash && first.events === second.events) return { ok: true, first, traceHash: first.traceHash };
  const a = first.checkpoints ?? [];
  const b = second.checkpoints ?? [];
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  // Run both again with event lines to name the divergent event.
  const ta = (await run({ recordTrace: true })).trace ?? [];
  const tb = (await run({ recordTrace: true })).trace ?? [];
  const divergence = `runs diverge at event #${i}: first run "${ta[i] ?? '(end)'}", second run "${tb[i] ?? '(end)'}" (previous event "${ta[i - 1] ?? '(start)'}"); trace hashes ${first.traceHash} vs ${second.traceHash}`;
  return { ok: false, first, second, divergence };
}
