/**
 * Bit-identical replay: run a scenario twice and compare trace hashes. On a mismatch, find
 * the first event where the running hashes part and describe that event in both runs, so a
 * source of non-determinism can be pinned down.
 */
import { runScenario, type RunResult } from './Simulation.js';
import type { Scenario } from './Scenario.js';

export type ReplayResult =
  | { ok: true; first: RunResult; traceHash: string }
  | { ok: false; first: RunResult; second: RunResult; divergence: string };

export async function replayCheck(s: Scenario): Promise<ReplayResult> {
  const first = await runScenario(s, { recordCheckpoints: true });
  const second = await runScenario(s, { recordCheckpoints: true });
  if (first.traceHash === second.traceHash && first.events === second.events) return { ok: true, first, traceHash: first.traceHash };
  const a = first.checkpoints ?? [];
  const b = second.checkpoints ?? [];
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  // Run both again with event lines to name the divergent event.
  const ta = (await runScenario(s, { recordTrace: true })).trace ?? [];
  const tb = (await runScenario(s, { recordTrace: true })).trace ?? [];
  const divergence = `runs diverge at event #${i}: first run "${ta[i] ?? '(end)'}", second run "${tb[i] ?? '(end)'}" (previous event "${ta[i - 1] ?? '(start)'}"); trace hashes ${first.traceHash} vs ${second.traceHash}`;
  return { ok: false, first, second, divergence };
}
