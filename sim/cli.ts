/**
 * `npm run sim -- …`: replay one seed (`--seed 0x2a`), run many (`--seeds 500 [--from 1]`),
 * or run a scenario given as JSON (`--scenario '{…}'`); `--canary <name>` plants a bug,
 * `--replay` runs each seed twice and compares trace hashes, `--trace` writes the trace file
 * even when the run passes. Exit 0 when every run passes, 1 when one fails, 2 on bad flags.
 */
import { CANARY_NAMES, type CanaryName } from '../core/Canaries.js';
import { describeFailure, seedHex, writeTraceFile } from './Report.js';
import { replayCheck } from './Replay.js';
import { parseScenario, scenarioFromSeed, type Scenario } from './Scenario.js';
import { runScenario } from './Simulation.js';

const USAGE = `usage: npm run sim -- [--seed <n|0xhex> | --seeds <count> [--from <n>] | --scenario '<json>'] [--canary <name>] [--replay] [--trace]
canaries: ${CANARY_NAMES.join(', ')}`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseSeed(v: string | undefined, flag: string): number {
  if (v === undefined) fail(`${flag} needs a value`);
  const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v.slice(2), 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) fail(`${flag}: expected an integer in [0, 2^32) (decimal or 0x hex), got ${v}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let scenarios: Scenario[] = [];
  let canary: CanaryName | undefined;
  let replay = false;
  let trace = false;
  let count: number | null = null;
  let from = 1;
  let single: number | null = null;
  let json: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seed') single = parseSeed(argv[++i], '--seed');
    else if (a === '--seeds') count = parseSeed(argv[++i], '--seeds');
    else if (a === '--from') from = parseSeed(argv[++i], '--from');
    else if (a === '--scenario') json = argv[++i] ?? fail('--scenario needs a JSON value');
    else if (a === '--canary') {
      const c = argv[++i];
      if (c === undefined || !CANARY_NAMES.includes(c as CanaryName)) fail(`--canary: expected one of ${CANARY_NAMES.join(', ')}`);
      canary = c as CanaryName;
    } else if (a === '--replay') replay = true;
    else if (a === '--trace') trace = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else fail(`unknown argument ${a}`);
  }
  if (json !== null) {
    const p = parseScenario(json);
    if (!p.ok) fail(p.message);
    scenarios = [canary !== undefined ? { ...p.scenario, canary } : p.scenario];
  } else if (single !== null) scenarios = [scenarioFromSeed(single, canary)];
  else {
    const n = count ?? 100;
    for (let i = 0; i < n; i++) scenarios.push(scenarioFromSeed((from + i) >>> 0, canary));
  }

  let failed = 0;
  let events = 0;
  let simMs = 0;
  const t0 = Date.now();
  for (const s of scenarios) {
    let r = await runScenario(s, { recordTrace: trace || scenarios.length === 1 });
    if (!r.ok && r.trace === null) r = await runScenario(s, { recordTrace: true });
    events += r.events;
    simMs += r.simMs;
    if (!r.ok) {
      failed++;
      process.stdout.write(`${describeFailure(r)}\n  trace file: ${writeTraceFile(r)}\n`);
    } else if (trace) process.stdout.write(`trace file: ${writeTraceFile(r)}\n`);
    if (replay) {
      const rp = await replayCheck(s);
      if (!rp.ok) {
        failed++;
        process.stdout.write(`NON-DETERMINISTIC seed ${seedHex(s.seed)}: ${rp.divergence}\n`);
      }
    }
    if (scenarios.length === 1) process.stdout.write(`seed ${seedHex(s.seed)}: ${r.ok ? 'ok' : 'FAILED'}, trace hash ${r.traceHash}, ${r.events} events, ${(r.simMs / 1000).toFixed(1)} virtual s, ${r.wallMs} ms wall; sent ${r.stats.sent}, delivered ${r.stats.delivered}, stored ${r.stats.claims}, node restarts ${r.stats.crashes}\n`);
  }
  const wall = Date.now() - t0;
  if (scenarios.length > 1)
    process.stdout.write(`${scenarios.length - failed}/${scenarios.length} seeds passed${replay ? ' (each replayed)' : ''}; ${events} events, ${(simMs / 1000).toFixed(0)} virtual s in ${(wall / 1000).toFixed(1)} s wall\n`);
  return failed === 0 ? 0 : 1;
}

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
