/**
 * Groups and the E2EE key directory over real sockets and LMDB: create/roster/leave with the
 * admin rules, group message fan-out with the sender stamped in the header (online live,
 * offline stored), sender-key distribution, prekey upload with Ed25519 checking, and
 * one-time prekeys consumed exactly once with fallback to the signed prekey.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import {
  encodeFetchPrekeysPacket,
  encodeGroupCreatePacket,
  encodeGroupLeavePacket,
  encodeGroupMsgPacket,
  encodeGroupRosterPacket,
  encodeSenderKeyDistPacket,
  encodeUploadPrekeysPacket,
} from '../../edge/protocol/V1Encoder.js';
import { decodeCborMap, encodeCbor } from '../../edge/protocol/Cbor.js';
import { parseDeliveryPayload } from '../../edge/protocol/V1ClientDecoder.js';
import * as GenServer from '../../actors/GenServer.js';
import { GROUPS_NAME, type GroupsAdminReply, type GroupsAdminRequest } from '../../core/Groups.js';
import { userKey } from '../../core/UserId.js';

let t: TestNode;
const clients: V1TestClient[] = [];
before(async () => {
  t = await startTestNode();
});
after(async () => {
  for (const c of clients) c.close();
  await t.stop();
});
async function login(user: string): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(t.node.tcpPort);
  clients.push(c);
  assert.equal((await c.login(user)).kind, 'login_ok');
  return c;
}
type F<K extends ServerFrame['kind']> = Extract<ServerFrame, { kind: K }>;

/** Administration (not in v1): add a member through the groups server. */
async function adminAdd(actor: string, gid: string, user: string): Promise<GroupsAdminReply> {
  const r = await GenServer.callFrom<GroupsAdminReply>(t.node.runtime.main, GROUPS_NAME, { t: 'admin', op: 'add', actor: userKey(utf8(actor)), gid, user: userKey(utf8(user)) } satisfies GroupsAdminRequest);
  assert.ok(r.ok, `call failed: ${JSON.stringify(r)}`);
  return r.value;
}

async function createGroup(c: V1TestClient, name: string): Promise<string> {
  c.raw(encodeGroupCreatePacket(utf8(name)));
  const j = await c.next<F<'group_join'>>((f) => f.kind === 'group_join');
  const gid = text(j.gid);
  assert.match(gid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  return gid;
}

test('GROUP_CREATE answers GROUP_JOIN with a UUID gid and the creator; the roster lists the creator', async () => {
  const a = await login('ga1');
  const gid = await createGroup(a, 'friends');
  a.raw(encodeGroupRosterPacket(utf8(gid)));
  const r = await a.next<F<'group_roster'>>((f) => f.kind === 'group_roster');
  assert.deepEqual(r.members.map(text), ['ga1']);
});

test('a non-member gets not_member for roster, message and leave', async () => {
  const a = await login('ga2');
  const b = await login('gb2');
  const gid = await createGroup(a, 'private');
  for (const pkt of [encodeGroupRosterPacket(utf8(gid)), encodeGroupMsgPacket(utf8(gid), encodeCbor({}), utf8('x')), encodeGroupLeavePacket(utf8(gid))]) {
    b.raw(pkt);
    const e = await b.next<F<'error'>>((f) => f.kind === 'error');
    assert.equal(e.reason, 'not_member');
  }
});

test('a group message reaches every other member with the sender in the header, live and stored', async () => {
  const a = await login('ga3');
  const b = await login('gb3');
  const gid = await createGroup(a, 'trio');
  assert.deepEqual(await adminAdd('ga3', gid, 'gb3'), { ok: true });
  assert.deepEqual(await adminAdd('ga3', gid, 'gc3'), { ok: true });
  a.raw(encodeGroupMsgPacket(utf8(gid), encodeCbor({ sender: 'forged', n: 1 }), utf8('ciphertext')));
  const got = await b.next<F<'reliable_msg'>>((f) => f.kind === 'reliable_msg');
  b.ack(got.msgId);
  const p = parseDeliveryPayload(got.msg);
  assert.equal(p.kind, 'group_msg');
  if (p.kind !== 'group_msg') return;
  assert.equal(text(p.gid), gid);
  assert.equal(text(p.ciphertext), 'ciphertext');
  const header = decodeCborMap(p.header);
  assert.ok(header.ok);
  assert.equal(header.map.get('sender'), 'ga3');
  assert.equal(header.map.get('n'), 1);
  // The sender does not get its own message; the offline member gets it at login.
  await assert.rejects(a.next((f) => f.kind === 'reliable_msg', 300));
  const c = await login('gc3');
  const stored = await c.next<F<'reliable_msg'>>((f) => f.kind === 'reliable_msg');
  assert.equal(parseDeliveryPayload(stored.msg).kind, 'group_msg');
});

test('the last admin cannot leave while others remain; a member can', async () => {
  const a = await login('ga4');
  const b = await login('gb4');
  const gid = await createGroup(a, 'g4');
  await adminAdd('ga4', gid, 'gb4');
  a.raw(encodeGroupLeavePacket(utf8(gid)));
  assert.equal((await a.next<F<'error'>>((f) => f.kind === 'error')).reason, 'last_admin');
  b.raw(encodeGroupLeavePacket(utf8(gid)));
  assert.equal((await b.next((f) => f.kind === 'group_leave_ok')).kind, 'group_leave_ok');
  a.raw(encodeGroupRosterPacket(utf8(gid)));
  assert.deepEqual((await a.next<F<'group_roster'>>((f) => f.kind === 'group_roster')).members.map(text), ['ga4']);
});

test('a sender key is forwarded to the other members as SENDER_KEY_DIST', async () => {
  const a = await login('ga5');
  const b = await login('gb5');
  const gid = await createGroup(a, 'g5');
  await adminAdd('ga5', gid, 'gb5');
  a.raw(encodeSenderKeyDistPacket(utf8(gid), Uint8Array.from([1, 2, 3])));
  const got = await b.next<F<'reliable_msg'>>((f) => f.kind === 'reliable_msg');
  const p = parseDeliveryPayload(got.msg);
  assert.equal(p.kind, 'sender_key_dist');
  if (p.kind === 'sender_key_dist') assert.deepEqual([...p.keydata], [1, 2, 3]);
});

function bundleUpload(otks: number, badSignature = false): Uint8Array {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const identity = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  const spk = new Uint8Array(32).fill(7);
  const sig = new Uint8Array(sign(null, spk, privateKey));
  if (badSignature) sig[0]! ^= 1;
  return encodeUploadPrekeysPacket(
    encodeCbor({
      identity_key: identity,
      signed_prekey: spk,
      signed_prekey_signature: sig,
      signed_prekey_timestamp: 1_700_000_000_000,
      one_time_prekeys: Array.from({ length: otks }, (_, i) => new Uint8Array(32).fill(i + 1)),
    }),
  );
}

test('a prekey upload with a bad signature is refused; a good one is stored', async () => {
  const a = await login('ka1');
  a.raw(bundleUpload(2, true));
  const bad = await a.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response');
  assert.equal(bad.map.get('status'), 'error');
  assert.equal(bad.map.get('reason'), 'bad_signature');
  a.raw(bundleUpload(2));
  const ok = await a.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response');
  assert.equal(ok.map.get('status'), 'ok');
});

test('each fetch consumes one one-time prekey in order, then falls back to the signed prekey', async () => {
  const owner = await login('ka2');
  owner.raw(bundleUpload(2));
  await owner.next((f) => f.kind === 'prekey_response');
  const asker = await login('kb2');
  const fetch = async () => {
    asker.raw(encodeFetchPrekeysPacket(utf8('ka2')));
    return (await asker.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response')).map;
  };
  const first = await fetch();
  assert.equal(first.get('one_time_prekey_index'), 0);
  assert.deepEqual([...(first.get('one_time_prekey') as Uint8Array)], new Array(32).fill(1));
  assert.equal(first.get('prekeys_remaining'), 1);
  assert.equal(first.get('spk_fallback_mode'), false);
  const second = await fetch();
  assert.equal(second.get('one_time_prekey_index'), 1);
  assert.equal(second.get('prekeys_remaining'), 0);
  const third = await fetch();
  assert.equal(third.get('one_time_prekey'), null);
  assert.equal(third.get('spk_fallback_mode'), true);
  assert.deepEqual([...(third.get('signed_prekey') as Uint8Array)], new Array(32).fill(7));
});

test('fetching the bundle of a user without one answers not_found', async () => {
  const a = await login('ka3');
  a.raw(encodeFetchPrekeysPacket(utf8('nobody-ka3')));
  const r = await a.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response');
  assert.equal(r.map.get('status'), 'not_found');
});
