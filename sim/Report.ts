/**
 * How a failing run is reported: the broken invariant, a minimal witness, the seed, the one
 * command that replays it, and a trace file with the scenario, every event and the node's
 * log lines.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterRunResult } from './ClusterSimulation.js';
import { clusterScenarioFromSeed, describeClusterScenario, type ClusterScenario } from './ClusterScenario.js';
import type { RunResult } from './Simulation.js';
import { describeScenario, scenarioFromSeed, type Scenario } from './Scenario.js';

export function seedHex(seed: number): string {
  return `0x${(seed >>> 0).toString(16).padStart(8, '0')}`;
}

/** The command that replays `s`: by seed when the seed alone derives it, else the whole scenario. */
export function reproCommand(s: Scenario): string {
  const derived = scenarioFromSeed(s.seed, s.canary);
  if (JSON.stringify(derived) === JSON.stringify(s)) return `npm run sim -- --seed ${seedHex(s.seed)}${s.canary !== undefined ? ` --canary ${s.canary}` : ''}`;
  return `npm run sim -- --scenario '${describeScenario(s)}'`;
}

export function describeFailure(r: RunResult): string {
  const lines = [`FAILED seed ${seedHex(r.scenario.seed)}: ${r.violations.length} violation(s)`];
  for (const v of r.violations) {
    lines.push(`  [${v.invariant}] ${v.message}`);
    for (const w of v.witness.slice(0, 12)) lines.push(`      ${w}`);
  }
  lines.push(`  scenario: ${describeScenario(r.scenario)}`);
  lines.push(`  faults injected: ${r.injected.join(', ') || 'none'}`);
  lines.push(`  repro: ${reproCommand(r.scenario)}`);
  return lines.join('\n');
}

/** Write the trace file of a run recorded with `recordTrace`; returns its path. */
export function writeTraceFile(r: RunResult, dir = 'sim-traces'): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${seedHex(r.scenario.seed)}${r.scenario.canary !== undefined ? `-${r.scenario.canary}` : ''}.trace`);
  const body = [
    `# scenario ${describeScenario(r.scenario)}`,
    `# trace hash ${r.traceHash}, ${r.events} events, ${r.simMs} virtual ms`,
    ...r.violations.map((v) => `# violation [${v.invariant}] ${v.message}`),
    `# faults injected: ${r.injected.join(', ')}`,
    '## events (virtual ms, owner, label, detail)',
    ...(r.trace ?? []),
    '## node log',
    ...r.logs,
    '## history',
    ...r.history.entries.map((e) => `${e.at} u${e.client} c${e.conn} ${e.type} ${e.op} ${e.value}`),
  ];
  writeFileSync(path, body.join('\n') + '\n');
  return path;
}

// ---- cluster runs ------------------------------------------------------------------------------

/** The command that replays a cluster scenario: by seed when the seed and shape derive it, else the whole scenario. */
export function clusterReproCommand(s: ClusterScenario): string {
  const derived = clusterScenarioFromSeed(s.seed, { nodes: s.nodes, servers: s.servers }, s.canary);
  const canary = s.canary !== undefined ? ` --canary ${s.canary}` : '';
  if (JSON.stringify(derived) === JSON.stringify(s)) return `npm run sim -- --nodes ${s.nodes} --nats ${s.servers} --seed ${seedHex(s.seed)}${canary}`;
  return `npm run sim -- --nodes ${s.nodes} --nats ${s.servers} --scenario '${describeClusterScenario(s)}'`;
}

export function describeClusterFailure(r: ClusterRunResult): string {
  const lines = [`FAILED cluster seed ${seedHex(r.scenario.seed)}: ${r.violations.length} violation(s)`];
  for (const v of r.violations) {
    lines.push(`  [${v.invariant}] ${v.message}`);
    for (const w of v.witness.slice(0, 12)) lines.push(`      ${w}`);
  }
  lines.push(`  scenario: ${describeClusterScenario(r.scenario)}`);
  lines.push(`  faults injected: ${r.injected.join(', ') || 'none'}`);
  lines.push(`  repro: ${clusterReproCommand(r.scenario)}`);
  return lines.join('\n');
}

/** Write the trace file of a cluster run recorded with `recordTrace`; returns its path. */
export function writeClusterTraceFile(r: ClusterRunResult, dir = 'sim-traces'): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `cluster-${seedHex(r.scenario.seed)}${r.scenario.workload === 'v1' ? '-v1' : ''}${r.scenario.canary !== undefined ? `-${r.scenario.canary}` : ''}.trace`);
  const body = [
    `# cluster scenario ${describeClusterScenario(r.scenario)}`,
    `# trace hash ${r.traceHash}, ${r.events} events, ${r.simMs} virtual ms`,
    ...r.violations.map((v) => `# violation [${v.invariant}] ${v.message}`),
    `# faults injected: ${r.injected.join(', ')}`,
    '## events (virtual ms, owner, label, detail)',
    ...(r.trace ?? []),
    '## node logs',
    ...r.logs,
    '## workload',
    ...r.history.log.map((e) => `${e.at} ${e.what}`),
    ...(r.clients !== null ? ['## v1 clients', ...r.clients.entries.map((e) => `${e.at} u${e.client} c${e.conn} ${e.type} ${e.op} ${e.value}`)] : []),
  ];
  writeFileSync(path, body.join('\n') + '\n');
  return path;
}
