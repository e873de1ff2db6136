/**
 * The admin API's adapter to the groups service, against stand-in services on a real
 * scheduler: a change is the service's `admin` request and its `group_done`/`group_error`
 * reply; no service gives `groups_unavailable` at once; a silent one gives `groups_timeout`
 * after the deadline, and its late reply lands nowhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupsReply, GroupsRequest } from '../../core/Groups.js';
import { userKey } from '../../core/UserId.js';
import { groupsAdmin } from '../../edge/admin/GroupsAdmin.js';
import { newScheduler } from '../support/kernel.js';

const key = (s: string) => userKey(new TextEncoder().encode(s));

test('a change is sent as the groups admin request and its reply is passed through', async () => {
  const s = newScheduler();
  const seen: GroupsRequest[] = [];
  s.spawn(
    (ctx) => (raw) => {
      const m = raw as GroupsRequest;
      seen.push(m);
      if (m.t === 'admin') ctx.send(m.replyTo, (m.op === 'add' ? { t: 'group_done', gid: m.gid } : { t: 'group_error', gid: m.gid, code: 'not_admin' }) satisfies GroupsReply);
      if (m.t === 'roster') ctx.send(m.replyTo, { t: 'group_roster', gid: m.gid, members: [new Uint8Array([0x61])] } satisfies GroupsReply);
    },
    { name: 'groups_stand_in' },
  );
  const g = groupsAdmin(s, 'groups_stand_in', 1000);
  assert.deepEqual(await g.change('add', 'g1', key('bob'), key('alice')), { ok: true, value: undefined });
  assert.deepEqual(await g.change('remove', 'g1', key('bob'), key('mallory')), { ok: false, code: 'not_admin' });
  assert.deepEqual(await g.roster('g1', key('alice')), { ok: true, value: [new Uint8Array([0x61])] });
  assert.deepEqual(
    seen.map((m) => (m.t === 'admin' ? [m.t, m.op, m.gid, m.user, m.actor] : m.t === 'roster' ? [m.t, m.gid, m.user] : [m.t])),
    [
      ['admin', 'add', 'g1', key('bob'), key('alice')],
      ['admin', 'remove', 'g1', key('bob'), key('mallory')],
      ['roster', 'g1', key('alice')],
    ],
  );
});

test('with no groups service running the answer is groups_unavailable at once', async () => {
  const s = newScheduler();
  const started = Date.now();
  assert.deepEqual(await groupsAdmin(s, 'no_such_service', 5000).change('add', 'g1', key('bob'), key('alice')), { ok: false, code: 'groups_unavailable' });
  assert.ok(Date.now() - started < 1000);
});

test('a groups service that does not answer in time gives groups_timeout, and its late reply reaches no one', async () => {
  const s = newScheduler();
  let replyTo: GroupsRequest['replyTo'] | null = null;
  s.spawn(
    () => (raw) => {
      replyTo = (raw as GroupsRequest).replyTo;
    },
    { name: 'silent_groups' },
  );
  assert.deepEqual(await groupsAdmin(s, 'silent_groups', 50).change('add', 'g1', key('bob'), key('alice')), { ok: false, code: 'groups_timeout' });
  assert.ok(replyTo !== null);
  assert.equal(s.isAlive(replyTo), false, 'the temporary process is gone, so a late reply is dropped');
});
