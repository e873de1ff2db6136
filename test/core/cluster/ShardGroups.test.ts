/**
 * Shard groups: the same key always maps to the same group in 0..count-1, a user's bytes and
 * its UserKey agree, key-directory entries go with their user, groups spread keys evenly, and
 * table and service names carry the group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupTableName, groupsServerName, keyDirectoryName, routerShardName, ShardGroups } from '../../../core/cluster/ShardGroups.js';
import { userKey } from '../../../core/UserId.js';

const utf8 = new TextEncoder();

test('a user maps to the same group from its bytes and from its UserKey, and its key entry with it', () => {
  const sg = new ShardGroups(16);
  for (let i = 0; i < 1000; i++) {
    const bytes = utf8.encode(`user-${i}\u0000\u00ff`);
    const g = sg.ofUserBytes(bytes);
    assert.ok(g >= 0 && g < 16);
    assert.equal(sg.ofUser(userKey(bytes)), g);
    assert.equal(sg.ofKeyEntry(userKey(bytes)), g);
  }
});

test('users and chat groups spread over 16 groups within 15% of the fair share', () => {
  const sg = new ShardGroups(16);
  const users = new Array<number>(16).fill(0);
  const gids = new Array<number>(16).fill(0);
  const n = 32_000;
  for (let i = 0; i < n; i++) {
    users[sg.ofUserBytes(utf8.encode(`u${i}`))]!++;
    gids[sg.ofChatGroup(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`)]!++;
  }
  for (const c of [...users, ...gids]) assert.ok(Math.abs(c - n / 16) / (n / 16) < 0.15, `count ${c}`);
});

test('a count outside 1..256 is refused with the bounds', () => {
  assert.throws(() => new ShardGroups(0), /1\.\.256/);
  assert.throws(() => new ShardGroups(257), /1\.\.256/);
  assert.deepEqual(new ShardGroups(3).all(), [0, 1, 2]);
});

test('group tables and services are named after the group', () => {
  assert.equal(groupTableName(7, 'inbox'), 'g7.inbox');
  assert.equal(routerShardName(7), 'shard.7');
  assert.equal(groupsServerName(7), 'groups.7');
  assert.equal(keyDirectoryName(7), 'keys.7');
});
