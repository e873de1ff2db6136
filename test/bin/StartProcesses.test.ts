/**
 * `iris start --processes`: a bad count exits 2 naming the key; a data directory that holds a
 * single node process's storage is refused (exit 1, naming wal_directory) before anything
 * starts; the node process entry refuses to run outside the supervisor.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;
const NODE_PROCESS = new URL('../../bin/nodeProcess.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'iris-start-processes-'));

after(() => rmSync(dir, { recursive: true, force: true }));

test('iris start --processes with a negative count exits 2 naming the key', () => {
  const r = spawnSync(process.execPath, [CLI, 'start', '--processes=-1', '--data', dir], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /processes \(from flags\): must be at least 0/);
});

test("iris start --processes on a single node process's data directory exits 1 naming wal_directory, and starts nothing", () => {
  const single = join(dir, 'single');
  spawnSync('mkdir', ['-p', single]);
  writeFileSync(join(single, 'data.mdb'), '');
  const r = spawnSync(process.execPath, [CLI, 'start', '--processes', '2', '--port', '0', '--http-port', '0', '--data', single], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /wal_directory: .* holds the storage of a single node process.*another --data directory/);
  assert.doesNotMatch(r.stderr, /node process:/);
});

test('the node process entry refuses to run by hand', () => {
  const r = spawnSync(process.execPath, [NODE_PROCESS], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /started by `iris start --processes N`/);
});
