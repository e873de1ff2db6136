/**
 * v1 requests carry no id, so a client matches answers to requests by their order: every
 * request of one connection is answered in request order, however long each takes. Here
 * FETCH_PREKEYS that consume a one-time prekey (answered only once that is durable), misses
 * (answered at once), GET_STATUS, GROUP_ROSTER of a group and of no group, and a refused
 * request, all in flight together, are answered in exactly the order they were sent; each
 * bundle and each not_found names the `user` it is about. Real node, real sockets, real LMDB.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat } from '../support/serviceKit.js';
import { prekeyUploadPacket } from '../support/prekeyUpload.js';
import { encodeFetchPrekeysPacket, encodeGetStatusPacket, encodeGroupCreatePacket, encodeGroupRosterPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';

const clients: V1TestClient[] = [];
let t: TestNode | null = null;
after(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

async function user(n: TestNode, name: string): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(name)).kind, 'login_ok');
  return c;
}

/** One answer as a short description: what it is and whom or what it is about. */
function describe(f: ServerFrame): string {
  switch (f.kind) {
    case 'prekey_response': {
      const status = f.map.get('status');
      const who = f.map.get('user');
      const name = typeof who === 'string' ? who : who instanceof Uint8Array ? text(who) : String(who);
      return status === undefined ? `bundle ${name} otk ${String(f.map.get('one_time_prekey_index'))}` : `${String(status)} ${name}`;
    }
    case 'status':
      return `status ${text(f.user)}`;
    case 'group_roster':
      return `roster ${f.members.map(text).join(',')}`;
    case 'error':
      return `error ${f.reason}`;
    default:
      return f.kind;
  }
}

test('FETCH_PREKEYS (found and not found), GET_STATUS, GROUP_ROSTER and a refused request in flight together are answered in request order, each prekey answer naming its user', async () => {
  // Budgets out of the way: this is about order, not shaping.
  t = await startTestNode({ rate_limit_prekey_fetches_burst: 10_000, rate_limit_prekey_fetches_per_target_per_min: 10_000 });
  for (const owner of ['ro-ann', 'ro-ben']) {
    const o = await user(t, owner);
    o.raw(prekeyUploadPacket(50));
    assert.equal((await o.next((f) => f.kind === 'prekey_response')).kind, 'prekey_response');
  }
  const c = await user(t, 'ro-asker');
  c.raw(encodeGroupCreatePacket(utf8('ro-group')));
  const joined = await c.next<Extract<ServerFrame, { kind: 'group_join' }>>((f) => f.kind === 'group_join');
  const gid = joined.gid;
  const noGroup = utf8('00000000-0000-4000-8000-000000000000');
  const tooLong = new Uint8Array(257).fill(0x7a);

  const packets: Uint8Array[] = [];
  const expected: string[] = [];
  for (let round = 0; round < 5; round++) {
    const add = (p: Uint8Array, answer: string) => {
      packets.push(p);
      expected.push(answer);
    };
    add(encodeFetchPrekeysPacket(utf8('ro-ann')), `bundle ro-ann otk ${round * 2}`);
    add(encodeFetchPrekeysPacket(utf8(`ro-nobody-${round}`)), `not_found ro-nobody-${round}`);
    add(encodeGetStatusPacket(utf8('ro-ann')), 'status ro-ann');
    add(encodeGroupRosterPacket(gid), 'roster ro-asker');
    add(encodeFetchPrekeysPacket(utf8('ro-ben')), `bundle ro-ben otk ${round}`);
    add(encodeGroupRosterPacket(noGroup), 'error not_member');
    add(encodeFetchPrekeysPacket(utf8('ro-ann')), `bundle ro-ann otk ${round * 2 + 1}`);
    add(concat([Uint8Array.of(0x05, 0x01, 0x01), tooLong]), 'error target_too_long');
    add(encodeGetStatusPacket(utf8(`ro-nobody-${round}`)), `status ro-nobody-${round}`);
  }
  c.raw(concat(packets));
  const answers: string[] = [];
  for (let i = 0; i < expected.length; i++) answers.push(describe(await c.next()));
  assert.deepEqual(answers, expected);
});
