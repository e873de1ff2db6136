/**
 * v1 clients of the node processes of an `IrisCluster` test: log a user in on a named node
 * (closed by the test's `after` through the list it is kept in), and pick one user per shard
 * group, so a test can reach every group's owner.
 */
import assert from 'node:assert/strict';
import type { ShardGroups } from '../../core/cluster/ShardGroups.js';
import { userKey } from '../../core/UserId.js';
import type { IrisCluster } from './irisCluster.js';
import { V1TestClient, utf8 } from './V1TestClient.js';

/** Log `user` in over TCP on `node`; the client is added to `clients` (the test closes them). */
export async function loginOn(c: IrisCluster, clients: V1TestClient[], node: string, user: string): Promise<V1TestClient> {
  const x = await V1TestClient.tcp(c.node(node).tcpPort);
  clients.push(x);
  assert.equal((await x.login(user)).kind, 'login_ok');
  return x;
}

/** One user per shard group, in group order: the first `<prefix><i>` whose group is g. */
export function onePerGroup(groups: ShardGroups, prefix: string): string[] {
  return groups.all().map((g) => {
    for (let i = 0; i < 10_000; i++) if (groups.ofUser(userKey(utf8(`${prefix}${i}`))) === g) return `${prefix}${i}`;
    throw new Error(`no user of group ${g}`);
  });
}
