/**
 * `npm run sim` as a user runs it: a seed replays with its trace hash, a failing run prints
 * the invariant, the seed and the exact repro command and writes a trace file, and bad
 * flags are refused with exit code 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../sim/cli.js', import.meta.url));

function sim(args: string[], cwd?: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, ...(cwd !== undefined ? { cwd } : {}) });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--seed replays one seed and prints its trace hash; the same seed gives the same hash again', () => {
  const a = sim(['--seed', '0x2a']);
  const b = sim(['--seed', '42']);
  assert.equal(a.code, 0, a.out + a.err);
  const hash = /trace hash ([0-9a-f]{8})/.exec(a.out)?.[1];
  assert.ok(hash !== undefined, a.out);
  assert.match(b.out, new RegExp(`trace hash ${hash}`));
});

test('a failing run prints the invariant, the seed and the repro command, and writes a trace file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-sim-'));
  try {
    const r = sim(['--seed', '1', '--canary', 'presence_leak'], dir);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /FAILED seed 0x00000001/);
    assert.match(r.out, /\[presence\]/);
    assert.match(r.out, /repro: npm run sim -- --seed 0x00000001 --canary presence_leak/);
    const files = readdirSync(join(dir, 'sim-traces'));
    assert.equal(files.length, 1);
    const trace = readFileSync(join(dir, 'sim-traces', files[0]!), 'utf8');
    assert.match(trace, /^# scenario /);
    assert.match(trace, /## events/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--seeds runs a range and reports how many passed', () => {
  const r = sim(['--seeds', '5', '--from', '10', '--replay']);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /5\/5 seeds passed \(each replayed\)/);
});

test('--workload v1 runs the cluster with v1 clients, and a failing seed\'s repro command carries the workload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-sim-'));
  try {
    const r = sim(['--workload', 'v1', '--seed', '1', '--canary', 'presence_leak'], dir);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /FAILED cluster seed 0x00000001/);
    assert.match(r.out, /\[presence\]/);
    assert.match(r.out, /repro: npm run sim -- --nodes \d --nats 3 --scenario '\{[^']*"workload":"v1"[^']*\}'/);
    assert.match(r.out, /v1 clients\): FAILED, trace hash [0-9a-f]{8}/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad flags exit 2 and say what is wrong', () => {
  for (const [args, msg] of [
    [['--workload', 'v2'], /--workload: expected one of core, v1/],
    [['--seed', 'zz'], /--seed: expected an integer/],
    [['--canary', 'nope'], /--canary: expected one of/],
    [['--scenario', '{"seed":1}'], /--scenario: clients must be/],
    [['--frobnicate'], /unknown argument --frobnicate/],
  ] as const) {
    const r = sim([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}${r.err}`);
    assert.match(r.err, msg);
  }
});
