/**
 * The runbooks of docs/runbooks/ walked as written: every ```sh block marked
 * `<!-- walk: <runbook>/<step> -->` is run with `bash -euo pipefail` in document order, after
 * the runbook's `<!-- walk: settings -->` block, with the settings' variables given free
 * loopback ports and one temp directory. A step passes when it exits 0; what it should show is
 * checked by the step itself (a grep, `iris cluster wait`, a `v1chat --expect`), so the doc and
 * this test cannot drift. One cluster (3 nats-servers, 3–4 Iris nodes) is shared by the
 * runbooks in the order an operator would meet them: deployment, scale-out, node scaling,
 * failover, data recovery. Every process a step starts leaves its pid in `$BASE/run/*.pid`;
 * `after` kills each of them by pid and removes the directory.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../support/natsCluster.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const RUNBOOKS = join(ROOT, 'docs/runbooks');
/** A step still running after this long is killed (by pid) and fails. */
const STEP_TIMEOUT_MS = 90_000;
/** How long `after` gives a process to go after SIGKILL before it moves on. */
const KILL_WAIT_MS = 5_000;

/** A walkable step: its name and the shell text of its block. */
export interface WalkStep {
  readonly name: string;
  readonly script: string;
}

/** The walkable blocks of a runbook: `settings` (prepended to every step) and the steps, in order. */
export function walkSteps(markdown: string): { settings: string; steps: WalkStep[] } {
  const re = /<!--\s*walk:\s*([\w./-]+)\s*-->\s*\n\s*```sh\n([\s\S]*?)\n\s*```/g;
  let settings = '';
  const steps: WalkStep[] = [];
  for (let m = re.exec(markdown); m !== null; m = re.exec(markdown)) {
    // A block indented under a list item keeps its indentation: take it off.
    const indent = /^[ \t]*/.exec(m[2]!)![0];
    const body = m[2]!.split('\n').map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l)).join('\n');
    if (m[1] === 'settings') settings += body + '\n';
    else steps.push({ name: m[1]!, script: body });
  }
  return { settings, steps };
}

let base: string;
let env: Record<string, string>;

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'iris-runbooks-'));
  const [n1, n2, n3, c1, c2, c3, m1, m2, m3, t1, h1, t2, h2, t3, h3, t4, h4] = await freePorts(17);
  env = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? base,
    IRIS: `${process.execPath} ${join(ROOT, 'dist/bin/iris.js')}`,
    CHAT: `${process.execPath} ${join(ROOT, 'dist/bin/v1chat.js')}`,
    NATS_SERVER: process.env['NATS_SERVER'] ?? 'nats-server',
    BASE: base,
    NATS1_PORT: String(n1), NATS2_PORT: String(n2), NATS3_PORT: String(n3),
    NATS1_CLUSTER_PORT: String(c1), NATS2_CLUSTER_PORT: String(c2), NATS3_CLUSTER_PORT: String(c3),
    NATS1_MON_PORT: String(m1), NATS2_MON_PORT: String(m2), NATS3_MON_PORT: String(m3),
    NODE1_TCP: String(t1), NODE1_HTTP: String(h1), NODE2_TCP: String(t2), NODE2_HTTP: String(h2),
    NODE3_TCP: String(t3), NODE3_HTTP: String(h3), NODE4_TCP: String(t4), NODE4_HTTP: String(h4),
    SHARD_GROUPS: '6',
    // Test timings (the runbooks use the defaults): through the IRIS_* layer every command reads.
    IRIS_CLUSTER_HEARTBEAT_MS: '200',
    IRIS_CLUSTER_DOWN_AFTER_MS: '1000',
    IRIS_PARTITION_GRACE_MS: '300',
    IRIS_OWNERSHIP_REFRESH_MS: '500',
    IRIS_ROUTE_RETRY_MS: '300',
    IRIS_SCHEDULERS: '1',
    IRIS_DRAIN_CLIENT_GRACE_MS: '1000',
    IRIS_LOG_LEVEL: 'warn',
  };
});

after(async () => {
  const run = join(base, 'run');
  const pids: number[] = [];
  for (const f of (() => {
    try {
      return readdirSync(run);
    } catch {
      return [];
    }
  })()) {
    if (!f.endsWith('.pid')) continue;
    const pid = Number(readFileSync(join(run, f), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1 && startedHere(pid)) pids.push(pid);
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + KILL_WAIT_MS;
  for (const pid of pids) {
    while (Date.now() < deadline && alive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
  rmSync(base, { recursive: true, force: true });
});

/** Whether `pid` is a process a step started (its environment has this run's BASE), not a pid reused since. */
function startedHere(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`BASE=${base}`);
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface StepRun {
  code: number | null;
  out: string;
  ms: number;
}

/** Run one step in bash; waits for bash itself to exit (background children keep running, their output goes to files). */
function runStep(settings: string, step: WalkStep): Promise<StepRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', `${settings}\n${step.script}\n`], { cwd: base, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, STEP_TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // Background processes may hold the pipes: read what is there, do not wait for close.
      setTimeout(() => resolve({ code, out, ms: Date.now() - t0 }), 50);
    });
  });
}

/** The tail of every log the steps wrote, for a failing step's message. */
function logs(): string {
  const run = join(base, 'run');
  try {
    return readdirSync(run)
      .filter((f) => f.endsWith('.log') || f.endsWith('.out'))
      .map((f) => `--- ${f}:\n${readFileSync(join(run, f), 'utf8').split('\n').slice(-12).join('\n')}`)
      .join('\n');
  } catch {
    return '';
  }
}

async function walk(runbook: string, expected: readonly string[]): Promise<void> {
  const { settings, steps } = walkSteps(readFileSync(join(RUNBOOKS, `${runbook}.md`), 'utf8'));
  assert.deepEqual(steps.map((s) => s.name), expected, `${runbook}.md: the walked steps, in order`);
  for (const step of steps) {
    const r = await runStep(settings, step);
    console.log(`# ${step.name}: ${r.ms} ms`);
    assert.equal(r.code, 0, `${step.name} failed (exit ${r.code}):\n${r.out}\n${logs()}`);
  }
}

test('the walk convention: settings first, marked sh blocks in order, indentation under list items removed, unmarked blocks skipped', () => {
  const md = ['<!-- walk: settings -->', '```sh', 'A=${A:-1}', '```', '```sh', 'not walked', '```', '1. step', '   <!-- walk: x/one -->', '   ```sh', '   echo "$A"', '     indented', '   ```'].join('\n');
  assert.deepEqual(walkSteps(md), { settings: 'A=${A:-1}\n', steps: [{ name: 'x/one', script: 'echo "$A"\n  indented' }] });
});

test('the index links every runbook, each has its settings block and walks only steps named after it', () => {
  const index = readFileSync(join(RUNBOOKS, 'README.md'), 'utf8');
  const books = readdirSync(RUNBOOKS).filter((f) => f.endsWith('.md') && f !== 'README.md').sort();
  assert.deepEqual(books, ['data-recovery.md', 'deployment.md', 'failover.md', 'node-scaling.md', 'scale-out.md']);
  for (const f of books) {
    assert.ok(index.includes(`](${f})`), `README.md links ${f}`);
    const { settings, steps } = walkSteps(readFileSync(join(RUNBOOKS, f), 'utf8'));
    assert.match(settings, /^IRIS=\$\{IRIS:-/m, `${f}: a settings block`);
    for (const st of steps) assert.ok(st.name.startsWith(`${f.slice(0, -3)}/`), `${f}: step ${st.name}`);
  }
});

test('deployment: three nats-servers with JetStream and three Iris nodes on loopback form a cluster, and a message goes from a client on one node to a client on another', { timeout: 120_000 }, async () => {
  await walk('deployment', ['deployment/start-nats', 'deployment/configure-nodes', 'deployment/start-nodes', 'deployment/check', 'deployment/send-a-message']);
});

test('scale-out: a fourth node started with the cluster\'s config joins, takes its share of the shard groups and serves clients', { timeout: 120_000 }, async () => {
  await walk('scale-out', ['scale-out/check-first', 'scale-out/start-node4', 'scale-out/watch-it-take-groups', 'scale-out/send-through-node4']);
});

test('node scaling: iris node drain --wait removes a node; SIGTERM drains one for a restart, and meanwhile a drain that would lose the majority is refused would_lose_quorum (exit 3)', { timeout: 120_000 }, async () => {
  await walk('node-scaling', ['node-scaling/drain-node4', 'node-scaling/check-after-drain', 'node-scaling/stop-node3', 'node-scaling/quorum-check-refuses', 'node-scaling/start-node3-again']);
});

test('failover: a core node killed -9 has its groups taken over and rejoins; a NATS server killed -9 costs no message and catches up when started again', { timeout: 150_000 }, async () => {
  await walk('failover', [
    'failover/kill-core-node',
    'failover/groups-moved',
    'failover/restart-core-node',
    'failover/kill-nats-server',
    'failover/still-serving-without-n2',
    'failover/restart-nats-server',
    'failover/nats-server-current',
  ]);
});

test('data recovery: an online backup restored into a lost data directory catches up; a damaged data file stops the start and is replaced with restore --force', { timeout: 150_000 }, async () => {
  await walk('data-recovery', [
    'data-recovery/backup',
    'data-recovery/traffic-after-backup',
    'data-recovery/lose-node1',
    'data-recovery/restore',
    'data-recovery/start-restored-node',
    'data-recovery/damage-node1',
    'data-recovery/damage-detected-at-start',
    'data-recovery/restore-over-damage',
  ]);
});
