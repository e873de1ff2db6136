/**
 * The `iris` command: `start` brings up a node with the demo application and stops cleanly
 * on SIGTERM; bad flags are refused with a message naming the flag and exit code 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;

test('iris demo with a bad --schedulers value exits 2 and names the flag', () => {
  const r = spawnSync(process.execPath, [CLI, 'demo', '--schedulers', 'zero'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--schedulers must be a whole number/);
});

test('iris with an unknown command exits 2', () => {
  const r = spawnSync(process.execPath, [CLI, 'frobnicate'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});

test('iris demo runs the supervised demo across schedulers and stops on SIGTERM with exit 0', async () => {
  const child = spawn(process.execPath, [CLI, 'demo', '--schedulers', '2', '--heartbeat-ms', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 15_000;
    while (!/"beat":2,"echoes":1/.test(out)) {
      if (Date.now() > deadline) throw new Error(`no heartbeat with an echo from the worker scheduler; output:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(out, /"application":"demo","reason":"shutdown","msg":"application stopped"/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('iris start with an invalid config value exits 2 and names the key and the fix', () => {
  const r = spawnSync(process.execPath, [CLI, 'start', '--mode', 'production', '--set', 'jwt_secret=short'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /jwt_secret: needs at least 32 bytes/);
});

test('iris start --join sets nats_servers (a bad address exits 2 naming the key)', () => {
  const r = spawnSync(process.execPath, [CLI, 'start', '--join', 'http://127.0.0.1:4222'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /nats_servers: 'http:\/\/127\.0\.0\.1:4222' is not a NATS address; use nats:\/\/host:port/);
});

test('iris start runs a messaging node that answers /health and stops on SIGTERM with exit 0', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'iris-cli-'));
  const child = spawn(process.execPath, [CLI, 'start', '--port', '0', '--http-port', '0', '--data', join(dir, 'data'), '--set', 'log_level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 15_000;
    let m: RegExpMatchArray | null = null;
    while ((m = /health:\s+(http:\S+)/.exec(out)) === null) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`node did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(out, /AUTH DISABLED \(dev mode\)/);
    const health = (await (await fetch(m[1]!)).json()) as { status: string; mode: string; memory: { rss: number; heap_used: number; heap_total: number } };
    assert.equal(health.status, 'ok');
    assert.equal(health.mode, 'dev');
    assert.ok(health.memory.rss > 0 && health.memory.heap_used > 0 && health.memory.heap_total >= health.memory.heap_used, JSON.stringify(health.memory));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
