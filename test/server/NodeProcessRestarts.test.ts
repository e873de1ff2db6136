/**
 * The supervisor of `iris start --processes` restarts a node process that dies after a backoff
 * that doubles with each restart of it inside the period, and gives up when the restarts
 * exceed `process_restart_intensity`: it stops everything it started (checked by pid) and
 * exits 1, saying why. Real processes, loopback only.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, startIrisSupervisor, type IrisSupervisor } from '../support/irisSupervisor.js';

const dir = mkdtempSync(join(tmpdir(), 'iris-restarts-'));
let sup: IrisSupervisor | undefined;

after(async () => {
  if (sup !== undefined && !sup.exited) await sup.kill();
  if (sup !== undefined && alive(sup.natsPid) && readFileSync(`/proc/${sup.natsPid}/cmdline`, 'utf8').includes(dir)) process.kill(sup.natsPid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('a node process that keeps dying is restarted after a doubling backoff, and one death beyond the intensity stops everything with exit code 1', async () => {
  sup = await startIrisSupervisor(dir, 2, [
    'log_level=warn',
    'shard_groups=4',
    'cluster_heartbeat_ms=200',
    'cluster_down_after_ms=1000',
    'process_restart_backoff_ms=200',
    'process_restart_intensity=2',
  ]);
  const s = sup;
  const [name, firstPid] = [...s.nodePids][0]!;
  const other = [...s.nodePids][1]![1];
  const started = [s.pid, s.natsPid, firstPid, other];
  let pid = firstPid;
  for (const expectedDelay of [200, 400]) {
    const mark = s.output().length;
    process.kill(pid, 'SIGKILL');
    await s.waitOutput(new RegExp(`node process ${name} \\(pid ${pid}\\) exited \\(SIGKILL\\); restarting it in ${expectedDelay} ms`), 10_000, mark);
    const restarted = await s.waitOutput(new RegExp(`node process ${name} \\(pid (\\d+)\\) restarted`), 30_000, mark);
    pid = Number(restarted[1]);
    assert.ok(alive(pid));
    started.push(pid);
  }
  const mark = s.output().length;
  process.kill(pid, 'SIGKILL');
  await s.waitOutput(/iris: gave up: node process \S+ exited \(SIGKILL\) after 2 restarts within 60 s \(process_restart_intensity\)/, 30_000, mark);
  assert.equal(await s.stop(30_000), 1);
  const deadline = Date.now() + 15_000;
  while (started.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(started.filter(alive), []);
});
