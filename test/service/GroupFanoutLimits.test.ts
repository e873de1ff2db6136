/**
 * Group fan-out is bounded and never loses a message silently. Each group message costs its
 * sender one fan-out token per recipient (group_fanout_*); a message beyond the budget is
 * refused ERROR rate_limited to the sender and counted in /metrics
 * iris_group_fanout_refusals_total, and reaches no one. A member whose inbox is full does not
 * lose a group message silently: the sender hears ERROR inbox_full (counted in
 * iris_inbox_full_refusals_total) while the other members get it. Real node, real sockets,
 * real LMDB; members are added through the groups server as the admin API does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceFixture } from '../support/serviceFixture.js';
import type { TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat, isReliable, roundTrip, type Reliable } from '../support/serviceKit.js';
import { metric } from '../support/nodeHttp.js';
import { nodeIdle } from '../support/nodeIdle.js';
import * as GenServer from '../../actors/GenServer.js';
import { GROUPS_NAME, type GroupsAdminReply, type GroupsAdminRequest } from '../../core/Groups.js';
import { userKey } from '../../core/UserId.js';
import { parseDeliveryPayload } from '../../edge/protocol/V1ClientDecoder.js';
import { encodeCbor } from '../../edge/protocol/Cbor.js';
import { encodeGroupCreatePacket, encodeGroupMsgPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';

const { node, user } = serviceFixture();

/** A group created by `admin` (logged in on `c`) with `members` added. */
async function group(n: TestNode, c: V1TestClient, admin: string, members: string[]): Promise<string> {
  c.raw(encodeGroupCreatePacket(utf8('limits')));
  const gid = text((await c.next<Extract<ServerFrame, { kind: 'group_join' }>>((f) => f.kind === 'group_join')).gid);
  for (const m of members) {
    const r = await GenServer.callFrom<GroupsAdminReply>(n.node.runtime.main, GROUPS_NAME, { t: 'admin', op: 'add', actor: userKey(utf8(admin)), gid, user: userKey(utf8(m)) } satisfies GroupsAdminRequest);
    assert.deepEqual(r, { ok: true, value: { ok: true } });
  }
  return gid;
}

const groupMsg = (gid: string, n: number): Uint8Array => encodeGroupMsgPacket(utf8(gid), encodeCbor({ n }), utf8(`cipher ${n}`));
const cipherOf = (f: Reliable): string => {
  const p = parseDeliveryPayload(f.msg);
  assert.equal(p.kind, 'group_msg');
  return p.kind === 'group_msg' ? text(p.ciphertext) : '';
};

test('with a fan-out budget of 4, two messages to a group of three pass and the third is refused rate_limited, counted, and delivered to no one', async () => {
  const n = await node({ group_fanout_burst: 4, group_fanout_per_s: 1 });
  const admin = await user(n, 'gf-admin');
  const m1 = await user(n, 'gf-m1');
  const m2 = await user(n, 'gf-m2');
  const gid = await group(n, admin, 'gf-admin', ['gf-m1', 'gf-m2']);
  assert.equal(await metric(n.node.httpPort, 'iris_group_fanout_refusals_total'), 0);
  admin.raw(concat([groupMsg(gid, 1), groupMsg(gid, 2), groupMsg(gid, 3)]));
  assert.deepEqual(await admin.next(), { kind: 'error', reason: 'rate_limited' });
  for (const m of [m1, m2]) {
    const got = [await m.next<Reliable>(isReliable), await m.next<Reliable>(isReliable)];
    assert.deepEqual(got.map(cipherOf), ['cipher 1', 'cipher 2']);
    for (const f of got) m.ack(f.msgId);
  }
  await nodeIdle(n);
  for (const c of [admin, m1, m2]) await roundTrip(c);
  assert.deepEqual([admin.unconsumed(), m1.unconsumed(), m2.unconsumed()], [[], [], []]);
  assert.equal(await metric(n.node.httpPort, 'iris_group_fanout_refusals_total'), 1);
});

test('a member whose inbox is full makes the sender hear ERROR inbox_full (counted); the other member gets the message', async () => {
  const n = await node({ inbox_cap: 2 });
  const admin = await user(n, 'gi-admin');
  const online = await user(n, 'gi-online');
  const gid = await group(n, admin, 'gi-admin', ['gi-online', 'gi-full']);
  // gi-full is offline with a full inbox (2 messages).
  const filler = await user(n, 'gi-filler');
  filler.send('gi-full', 'one');
  filler.send('gi-full', 'two');
  await nodeIdle(n);
  await roundTrip(filler);
  assert.deepEqual(filler.unconsumed(), []);
  const before = await metric(n.node.httpPort, 'iris_inbox_full_refusals_total');

  admin.raw(groupMsg(gid, 7));
  assert.deepEqual(await admin.next(), { kind: 'error', reason: 'inbox_full' });
  const f = await online.next<Reliable>(isReliable);
  assert.equal(cipherOf(f), 'cipher 7');
  online.ack(f.msgId);
  assert.equal((await metric(n.node.httpPort, 'iris_inbox_full_refusals_total')) - before, 1);
  // What the full member holds is untouched.
  const full = await user(n, 'gi-full');
  assert.deepEqual(await full.receiveAndAck(2), ['one', 'two']);
  await nodeIdle(n);
  await roundTrip(full);
  assert.deepEqual(full.unconsumed(), []);
});
