/**
 * The admin API's adapter to the groups server, against stand-in GenServers on a real
 * scheduler: a change is the server's `admin` call and its reply is passed through (codes
 * unchanged, null actor for the operator); the roster is `admin_roster`; no server gives
 * `groups_unavailable` at once; a silent one gives `groups_timeout` after the deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as GenServer from '../../actors/GenServer.js';
import type { GroupsAdminReply, GroupsAdminRequest } from '../../core/Groups.js';
import { userKey } from '../../core/UserId.js';
import { groupsAdmin } from '../../edge/admin/GroupsAdmin.js';
import { newScheduler } from '../support/kernel.js';

const key = (s: string) => userKey(new TextEncoder().encode(s));

test('a change is the groups admin call, a null actor is the operator, and the reply is passed through', async () => {
  const s = newScheduler();
  const seen: GroupsAdminRequest[] = [];
  const standIn: GenServer.Behaviour<null, void, GroupsAdminRequest, GroupsAdminReply> = {
    init: () => ({ state: null }),
    handleCall: (m) => {
      seen.push(m);
      if (m.t === 'admin_roster') return { reply: { ok: true, members: [{ user: new Uint8Array([0x61]), role: 'admin' }] }, state: null };
      return { reply: m.actor === key('mallory') ? { ok: false, code: 'not_admin' } : { ok: true }, state: null };
    },
  };
  assert.ok((await GenServer.start(s, standIn, undefined, { name: 'groups_stand_in' })).ok);
  const g = groupsAdmin(s, () => 'groups_stand_in', 1000);
  assert.deepEqual(await g.change('add', 'g1', key('bob'), key('alice')), { ok: true, value: undefined });
  assert.deepEqual(await g.change('remove', 'g1', key('bob'), key('mallory')), { ok: false, code: 'not_admin' });
  assert.deepEqual(await g.change('promote', 'g1', key('bob'), null), { ok: true, value: undefined });
  assert.deepEqual(await g.roster('g1'), { ok: true, value: [{ user: new Uint8Array([0x61]), role: 'admin' }] });
  assert.deepEqual(seen, [
    { t: 'admin', op: 'add', actor: key('alice'), gid: 'g1', user: key('bob') },
    { t: 'admin', op: 'remove', actor: key('mallory'), gid: 'g1', user: key('bob') },
    { t: 'admin', op: 'promote', actor: null, gid: 'g1', user: key('bob') },
    { t: 'admin_roster', gid: 'g1' },
  ]);
});

test('with no groups server running the answer is groups_unavailable at once', async () => {
  const s = newScheduler();
  const started = Date.now();
  assert.deepEqual(await groupsAdmin(s, () => 'no_such_server', 5000).change('add', 'g1', key('bob'), key('alice')), { ok: false, code: 'groups_unavailable' });
  assert.ok(Date.now() - started < 1000);
});

test('a groups server that does not answer in time gives groups_timeout', async () => {
  const s = newScheduler();
  const silent: GenServer.Behaviour<null, void, GroupsAdminRequest, GroupsAdminReply> = {
    init: () => ({ state: null }),
    handleCall: () => ({ noreply: true, state: null }),
  };
  assert.ok((await GenServer.start(s, silent, undefined, { name: 'silent_groups' })).ok);
  assert.deepEqual(await groupsAdmin(s, () => 'silent_groups', 50).roster('g1'), { ok: false, code: 'groups_timeout' });
});
