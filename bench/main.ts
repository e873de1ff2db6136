/**
 * `npm run bench -- <suite>`: runs one bench suite and writes bench/results/<suite>.json.
 * Suites: runtime (actor runtime vs Erlang/OTP), service (v1 service processes vs uWS echo and raw
 * LMDB), sim (deterministic simulator speed), distribution (cross-node messaging vs raw NATS,
 * round trips, node-down detection), jetstream (acknowledged appends/s on an R3 stream, leader
 * failover pause), cores (one node process vs one per core, bench/allCores.ts), cluster (3 Iris
 * nodes on 3 nats-servers: cross-node throughput and latency, failover of a killed core node,
 * loss of a nats-server, 10,000 clients of a killed edge).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { coresBench } from './allCores.js';
import { clusterBench } from './cluster.js';
import { distributionBench } from './distribution.js';
import { jetstreamBench } from './jetstream.js';
import { runtimeBench } from './runtime.js';
import { serviceBench } from './service.js';
import { simBench } from './sim.js';

const SUITES: Record<string, () => Promise<object>> = {
  runtime: runtimeBench,
  service: serviceBench,
  sim: simBench,
  distribution: distributionBench,
  jetstream: jetstreamBench,
  cores: coresBench,
  cluster: clusterBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  if (names.length === 0 || names.some((n) => !(n in SUITES))) {
    console.error(`usage: npm run bench -- <suite>   (suites: ${Object.keys(SUITES).join(', ')})`);
    process.exit(2);
  }
  const dir = new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  for (const name of names) {
    console.error(`bench ${name}: running...`);
    const result = await SUITES[name]!();
    const file = new URL(`${name}.json`, dir);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify(result, null, 2));
    console.error(`bench ${name}: wrote ${file.pathname}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
