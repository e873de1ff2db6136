/**
 * ProcessGroups (pg semantics): join/leave through the scope process, membership read
 * directly from its table, a pid counted once per join, members removed when they exit,
 * and join/leave notifications to scope and group subscribers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import * as ProcessGroups from '../../actors/ProcessGroups.js';
import { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import type { GroupNotification } from '../../actors/ProcessGroups.js';

async function startScope(s: Scheduler, scope = 'pg'): Promise<Pid> {
  const r = await ProcessGroups.start(s, scope);
  assert.ok(r.ok, `scope start failed: ${JSON.stringify(r)}`);
  return r.pid;
}

const keys = (pids: readonly Pid[]) => pids.map((p) => p.key);

/** A notification reduced to what a test compares. */
function summary(n: GroupNotification): [string, string, string[]] {
  return [n.event, n.group, keys(n.pids)];
}

test('join adds members in order and getMembers reads them synchronously, even in a plain handler', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  assert.deepEqual(await ProcessGroups.join(s, 'pg', 'room', [a.pid, b.pid]), { ok: true });
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'room')), [a.pid.key, b.pid.key]);
  const reader = spawnActor(s);
  assert.deepEqual(await reader.run((ctx) => keys(ProcessGroups.getMembers(ctx, 'pg', 'room'))), [a.pid.key, b.pid.key]);
  assert.deepEqual(ProcessGroups.getMembers(s, 'pg', 'empty'), []);
});

test('a pid that joins twice is counted twice and must leave twice', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g')), [a.pid.key, a.pid.key]);
  assert.deepEqual(await ProcessGroups.leave(s, 'pg', 'g', a.pid), { ok: true });
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g')), [a.pid.key]);
  assert.deepEqual(await ProcessGroups.leave(s, 'pg', 'g', a.pid), { ok: true });
  assert.deepEqual(ProcessGroups.getMembers(s, 'pg', 'g'), []);
  assert.deepEqual(ProcessGroups.whichGroups(s, 'pg'), []);
});

test('leave answers not_joined when none of the pids is a member, and removes the members among them', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  const c = spawnActor(s);
  assert.deepEqual(await ProcessGroups.leave(s, 'pg', 'g', a.pid), { ok: false, error: 'not_joined' });
  await ProcessGroups.join(s, 'pg', 'g', [a.pid, b.pid]);
  assert.deepEqual(await ProcessGroups.leave(s, 'pg', 'g', [c.pid]), { ok: false, error: 'not_joined' });
  assert.deepEqual(await ProcessGroups.leave(s, 'pg', 'g', [c.pid, a.pid]), { ok: true });
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g')), [b.pid.key]);
});

test('a member that exits leaves every group, as often as it joined', async () => {
  const s = newScheduler();
  const scope = await startScope(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'g1', [a.pid, b.pid, a.pid]);
  await ProcessGroups.join(s, 'pg', 'g2', a.pid);
  assert.equal(s.info(scope)?.monitors, 2, 'one monitor per member pid');
  s.kill(a.pid, 'gone');
  await until(() => ProcessGroups.whichGroups(s, 'pg').length === 1, 2000, 'the scope to handle the DOWN');
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g1')), [b.pid.key]);
  assert.deepEqual(ProcessGroups.getMembers(s, 'pg', 'g2'), []);
  assert.deepEqual(ProcessGroups.whichGroups(s, 'pg'), ['g1']);
  assert.equal(s.info(scope)?.monitors, 1);
});

test('the scope stops monitoring a pid once it left its last group', async () => {
  const s = newScheduler();
  const scope = await startScope(s);
  const a = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'g1', a.pid);
  await ProcessGroups.join(s, 'pg', 'g2', a.pid);
  await ProcessGroups.leave(s, 'pg', 'g1', a.pid);
  assert.equal(s.info(scope)?.monitors, 1);
  await ProcessGroups.leave(s, 'pg', 'g2', a.pid);
  assert.equal(s.info(scope)?.monitors, 0);
  assert.equal(s.info(a.pid)?.monitoredBy, 0);
});

test('only pids of this node may join; a refused join changes nothing', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const remote = new Pid('elsewhere', 0, 1, 0, 0);
  assert.deepEqual(await ProcessGroups.join(s, 'pg', 'g', [a.pid, remote]), { ok: false, error: 'not_local', pid: remote });
  assert.deepEqual(ProcessGroups.getMembers(s, 'pg', 'g'), []);
});

test('a local pid that already exited cannot join', async () => {
  const s = newScheduler();
  await startScope(s);
  const dead = s.spawn(() => undefined);
  await until(() => !s.isAlive(dead));
  const r = await ProcessGroups.join(s, 'pg', 'g', dead);
  assert.equal(!r.ok && r.error, 'noproc');
  assert.deepEqual(ProcessGroups.getMembers(s, 'pg', 'g'), []);
});

test('local members and local groups equal all members and groups on a single node', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  await ProcessGroups.join(s, 'pg', 'h', a.pid);
  assert.deepEqual(keys(ProcessGroups.getLocalMembers(s, 'pg', 'g')), [a.pid.key]);
  assert.deepEqual(ProcessGroups.whichGroups(s, 'pg').sort(), ['g', 'h']);
  assert.deepEqual(ProcessGroups.whichLocalGroups(s, 'pg').sort(), ['g', 'h']);
});

test('membership arrays are snapshots: later changes do not alter an array already read', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  const before = ProcessGroups.getMembers(s, 'pg', 'g');
  await ProcessGroups.join(s, 'pg', 'g', b.pid);
  await ProcessGroups.leave(s, 'pg', 'g', a.pid);
  assert.deepEqual(keys(before), [a.pid.key]);
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g')), [b.pid.key]);
});

test('scopes are independent: the same group name in two scopes is two groups', async () => {
  const s = newScheduler();
  await startScope(s, 'chat');
  await startScope(s, 'presence');
  const a = spawnActor(s);
  const b = spawnActor(s);
  await ProcessGroups.join(s, 'chat', 'g', a.pid);
  await ProcessGroups.join(s, 'presence', 'g', b.pid);
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'chat', 'g')), [a.pid.key]);
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'presence', 'g')), [b.pid.key]);
});

test('with no scope running, calls answer call_failed noproc and reads are empty', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  assert.deepEqual(await ProcessGroups.join(s, 'none', 'g', a.pid), { ok: false, error: 'call_failed', reason: 'noproc' });
  assert.deepEqual(await ProcessGroups.leave(s, 'none', 'g', a.pid), { ok: false, error: 'call_failed', reason: 'noproc' });
  assert.deepEqual(ProcessGroups.getMembers(s, 'none', 'g'), []);
  assert.deepEqual(ProcessGroups.whichGroups(s, 'none'), []);
});

test('monitorScope returns the groups now and then notifies every join and leave in order', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'old', a.pid);
  const sub = spawnActor(s);
  const r = await sub.run((ctx) => ProcessGroups.monitorScope(ctx, 'pg'));
  assert.ok(r.ok);
  assert.deepEqual([...r.groups].map(([g, pids]) => [g, keys(pids)]), [['old', [a.pid.key]]]);
  await ProcessGroups.join(s, 'pg', 'new', [a.pid, b.pid]);
  await ProcessGroups.leave(s, 'pg', 'old', a.pid);
  s.kill(a.pid);
  const got: GroupNotification[] = [];
  for (let i = 0; i < 3; i++) got.push(await sub.probe.next<GroupNotification>(ProcessGroups.isGroupNotification));
  assert.deepEqual(got.map(summary), [
    ['join', 'new', [a.pid.key, b.pid.key]],
    ['leave', 'old', [a.pid.key]],
    ['leave', 'new', [a.pid.key]],
  ]);
  for (const n of got) {
    assert.equal(n.ref.key, r.ref.key);
    assert.equal(n.scope, 'pg');
  }
});

test('a member that joined twice and exits is reported leaving twice', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  const sub = spawnActor(s);
  await sub.run((ctx) => ProcessGroups.monitor(ctx, 'pg', 'g'));
  await ProcessGroups.join(s, 'pg', 'g', [a.pid, a.pid]);
  s.kill(a.pid);
  const join = await sub.probe.next<GroupNotification>(ProcessGroups.isGroupNotification);
  const leave = await sub.probe.next<GroupNotification>(ProcessGroups.isGroupNotification);
  assert.deepEqual([summary(join), summary(leave)], [
    ['join', 'g', [a.pid.key, a.pid.key]],
    ['leave', 'g', [a.pid.key, a.pid.key]],
  ]);
});

test('monitor(group) returns its members now and notifies changes of that group only', async () => {
  const s = newScheduler();
  await startScope(s);
  const a = spawnActor(s);
  await ProcessGroups.join(s, 'pg', 'watched', a.pid);
  const sub = spawnActor(s);
  const r = await sub.run((ctx) => ProcessGroups.monitor(ctx, 'pg', 'watched'));
  assert.ok(r.ok);
  assert.deepEqual(keys(r.members), [a.pid.key]);
  await ProcessGroups.join(s, 'pg', 'other', a.pid);
  await ProcessGroups.leave(s, 'pg', 'watched', a.pid);
  const n = await sub.probe.next<GroupNotification>(ProcessGroups.isGroupNotification);
  assert.deepEqual(summary(n), ['leave', 'watched', [a.pid.key]]);
  assert.equal(n.ref.key, r.ref.key);
  assert.deepEqual((await sub.settled()).filter(ProcessGroups.isGroupNotification).length, 1);
});

test('a notification arrives after the table already shows the change', async () => {
  const s = newScheduler();
  await startScope(s);
  const probe = spawnProbe(s);
  const a = spawnActor(s);
  const sub = spawnActor(s);
  await sub.run(async (ctx) => {
    await ProcessGroups.monitor(ctx, 'pg', 'g');
    ctx.setHandler((msg) => {
      if (ProcessGroups.isGroupNotification(msg)) ctx.send(probe.pid, { event: msg.event, seen: keys(ProcessGroups.getMembers(ctx, 'pg', 'g')) });
    });
  });
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  assert.deepEqual(await probe.next(), { event: 'join', seen: [a.pid.key] });
  await ProcessGroups.leave(s, 'pg', 'g', a.pid);
  assert.deepEqual(await probe.next(), { event: 'leave', seen: [] });
});

test('demonitor ends a subscription; an unknown ref answers false', async () => {
  const s = newScheduler();
  const scope = await startScope(s);
  const a = spawnActor(s);
  const sub = spawnActor(s);
  const r = await sub.run((ctx) => ProcessGroups.monitorScope(ctx, 'pg'));
  assert.ok(r.ok);
  assert.equal(s.info(scope)?.monitors, 1, 'the subscriber is monitored');
  assert.equal(await sub.run((ctx) => ProcessGroups.demonitor(ctx, 'pg', r.ref)), true);
  assert.equal(await sub.run((ctx) => ProcessGroups.demonitor(ctx, 'pg', r.ref)), false);
  assert.equal(s.info(scope)?.monitors, 0);
  await ProcessGroups.join(s, 'pg', 'g', a.pid);
  assert.deepEqual((await sub.settled()).filter(ProcessGroups.isGroupNotification), []);
});

test('a subscriber that exits is unsubscribed', async () => {
  const s = newScheduler();
  const scope = await startScope(s);
  const sub = spawnActor(s);
  await sub.run((ctx) => ProcessGroups.monitorScope(ctx, 'pg'));
  await sub.run((ctx) => ProcessGroups.monitor(ctx, 'pg', 'g'));
  assert.equal(s.info(scope)?.monitors, 1, 'one monitor per subscriber, not per subscription');
  s.kill(sub.pid);
  await until(() => s.info(scope)?.monitors === 0, 2000, 'the scope to drop the subscriber');
  const a = spawnActor(s);
  assert.deepEqual(await ProcessGroups.join(s, 'pg', 'g', a.pid), { ok: true });
});

test('a process joins itself from async code; the scope shows as a ProcessGroups behaviour', async () => {
  const s = newScheduler();
  const scope = await startScope(s, ProcessGroups.DEFAULT_SCOPE);
  const a = spawnActor(s);
  assert.deepEqual(await a.run((ctx) => ProcessGroups.join(ctx, ProcessGroups.DEFAULT_SCOPE, 'g', ctx.self)), { ok: true });
  assert.deepEqual(keys(ProcessGroups.getMembers(s, 'pg', 'g')), [a.pid.key]);
  assert.equal(s.info(scope)?.behaviour, 'ProcessGroups');
  assert.equal(s.info(scope)?.name, 'pg');
});
