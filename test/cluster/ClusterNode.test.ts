/**
 * The clustered node with real processes: `iris start` children joined through a real 3-server
 * NATS cluster (JetStream R3), v1 clients over real sockets, loopback only. One NATS cluster and
 * one set of node processes for the whole file, in this order:
 *
 * - `/health`, `/cluster/status` and `/metrics` describe each node and every shard group;
 * - clients on different nodes exchange 1:1, SEND_SEQ, group messages, receipts and prekeys, and
 *   presence is right within a second on every node;
 * - a node cut off from NATS enters safe mode within ~2 s, refuses writes at once with
 *   cluster_unavailable, still answers GET_STATUS, and leaves safe mode by itself on heal;
 * - kill -9 of a core node owning groups while clients send: writes resume within seconds (the
 *   figure is printed), every message sent is delivered once, in order, and nothing
 *   acknowledged comes back at the next login;
 * - kill -9 of an edge node: its client logs in on another node and gets exactly what it had
 *   not acknowledged, then what was sent meanwhile; its other users show offline everywhere.
 *
 * Set CLUSTER_TEST_LOG=1 to have the nodes log at info level (shown when a wait times out).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardGroups } from '../../core/cluster/ShardGroups.js';
import { userKey } from '../../core/UserId.js';
import { decodeCborMap, encodeCbor } from '../../edge/protocol/Cbor.js';
import { parseDeliveryPayload } from '../../edge/protocol/V1ClientDecoder.js';
import {
  encodeFetchPrekeysPacket,
  encodeGetStatusPacket,
  encodeGroupCreatePacket,
  encodeGroupMsgPacket,
  encodeReadReceiptPacket,
  encodeSendSeqPacket,
} from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import type { ClusterStatusBody } from '../../server/ServiceCore.js';
import { IrisCluster, TEST_ADMIN_TOKEN } from '../support/irisCluster.js';
import { startTestNode } from '../support/irisNode.js';
import { httpText, metric } from '../support/nodeHttp.js';
import { prekeyUploadPacket } from '../support/prekeyUpload.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';

type F<K extends ServerFrame['kind']> = Extract<ServerFrame, { kind: K }>;

const GROUPS = new ShardGroups(6);
let c: IrisCluster;
const clients: V1TestClient[] = [];

before(async () => {
  c = await IrisCluster.start();
  await Promise.all(['a', 'b', 'c'].map((n) => c.startNode(n)));
  await c.waitSettled();
});

after(async () => {
  for (const x of clients) x.close();
  await c?.close();
});

async function login(node: string, user: string): Promise<V1TestClient> {
  const x = await V1TestClient.tcp(c.node(node).tcpPort);
  clients.push(x);
  assert.equal((await x.login(user)).kind, 'login_ok');
  return x;
}

/** A user name `<prefix><i>` whose shard group `node` owns (per `s`). */
function userOwnedBy(s: ClusterStatusBody, node: string, prefix: string, skip = 0): string {
  for (let i = 0, found = 0; i < 10_000; i++) {
    const name = `${prefix}${i}`;
    if (s.groups[GROUPS.ofUser(userKey(utf8(name)))]!.owner === node && found++ === skip) return name;
  }
  throw new Error(`no user of ${node}'s groups`);
}

/** The next RELIABLE_MSG payload as text (acknowledged unless `ack` is false). */
async function nextText(x: V1TestClient, ack = true, timeoutMs = 10_000): Promise<string> {
  const f = await x.next<F<'reliable_msg'>>((m) => m.kind === 'reliable_msg', timeoutMs);
  if (ack) x.ack(f.msgId);
  return text(f.msg);
}

/** GET_STATUS of `user` through `x`, polled until `online` matches; ms it took from `since`. */
async function statusTurns(x: V1TestClient, user: string, online: boolean, since: number, timeoutMs = 5_000): Promise<{ ms: number; lastSeen: bigint }> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    x.raw(encodeGetStatusPacket(utf8(user)));
    const s = await x.next<F<'status'>>((f) => f.kind === 'status' && text(f.user) === user);
    if (s.online === online) return { ms: Date.now() - since, lastSeen: s.lastSeen };
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${user} never showed ${online ? 'online' : 'offline'}`);
}

async function adminAddMember(node: string, gid: string, user: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${c.node(node).httpPort}/admin/groups/${gid}/members`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ op: 'add', user }),
  });
  return r.status;
}

/**
 * Everything the user had stored is exactly `expected` (in order): the client sends itself a
 * marker and reads until it; anything stored comes before it.
 */
async function storedThenMarker(x: V1TestClient, me: string, marker: string): Promise<string[]> {
  x.send(me, marker);
  const out: string[] = [];
  for (let i = 0; i < 1_000; i++) {
    const t = await nextText(x);
    if (t === marker) return out;
    out.push(t);
  }
  throw new Error('no marker');
}

test('/health, /cluster/status and /metrics describe each node, its quorum and every shard group; a single node has no cluster status', async () => {
  const s = await c.waitSettled();
  const owned = new Map<string, number>();
  for (const g of s.groups) owned.set(g.owner!, (owned.get(g.owner!) ?? 0) + 1);
  for (const name of ['a', 'b', 'c']) {
    const h = await c.health(name);
    assert.deepEqual(
      { status: h.status, node: h.node, cluster: h.cluster, roles: h.roles, quorum: h.quorum, safe_mode: h.safe_mode, node_count: h.node_count, expected_nodes: h.expected_nodes, owned: h.shard_groups_owned },
      { status: 'ok', node: name, cluster: 'itest', roles: ['edge', 'core'], quorum: true, safe_mode: false, node_count: 3, expected_nodes: 3, owned: owned.get(name) ?? 0 },
    );
    assert.equal(await metric(c.node(name).httpPort, 'iris_cluster_safe_mode'), 0);
    assert.equal(await metric(c.node(name).httpPort, 'iris_cluster_nodes_visible'), 3);
    assert.equal(await metric(c.node(name).httpPort, 'iris_cluster_groups_owned'), owned.get(name) ?? 0);
  }
  assert.equal([...owned.values()].reduce((x, y) => x + y, 0), 6);
  const st = await c.waitFor('every standby\'s lag known', async () => {
    const x = await c.status('b');
    return x.groups.every((g) => Object.values(g.standby_lag).every((l) => typeof l === 'number')) ? x : null;
  });
  assert.deepEqual({ cluster: st.cluster, node: st.node, safe_mode: st.safe_mode, shard_groups: st.shard_groups }, { cluster: 'itest', node: 'b', safe_mode: false, shard_groups: 6 });
  assert.deepEqual(st.members.map((m) => [m.name, m.roles, m.self]), [['a', ['edge', 'core'], false], ['b', ['edge', 'core'], true], ['c', ['edge', 'core'], false]]);
  for (const m of st.members) assert.ok(Number.isSafeInteger(m.incarnation) && m.incarnation > 0, `incarnation of ${m.name}`);
  assert.deepEqual(st.groups.map((g) => g.group), [0, 1, 2, 3, 4, 5]);
  for (const g of st.groups) {
    assert.ok(['a', 'b', 'c'].includes(g.owner!), `group ${g.group} owner`);
    assert.ok(g.epoch! >= 2, `group ${g.group} epoch ${g.epoch}`);
    assert.equal(g.owner_incarnation, st.members.find((m) => m.name === g.owner)!.incarnation);
    assert.equal(g.standbys.length, 2);
    assert.ok(!g.standbys.includes(g.owner!));
    assert.deepEqual(Object.keys(g.standby_lag).sort(), [...g.standbys].sort());
    assert.ok(typeof g.head_seq === 'number' && g.head_seq > 0);
  }
  const single = await startTestNode();
  try {
    const r = await fetch(`http://127.0.0.1:${single.node.httpPort}/cluster/status`);
    assert.deepEqual([r.status, ((await r.json()) as { code: string }).code], [404, 'not_clustered']);
    const h = JSON.parse(await httpText(single.node.httpPort, '/health')) as Record<string, unknown>;
    assert.deepEqual([h['cluster'], h['quorum'], h['safe_mode'], h['node_count'], h['shard_groups_owned']], [null, true, false, 1, null]);
  } finally {
    await single.stop();
  }
});

test('clients on different nodes exchange 1:1, SEND_SEQ and group messages, receipts and prekeys; presence is right within a second on every node', async () => {
  const alice = await login('a', 'alice');
  const bob = await login('b', 'bob');
  const carol = await login('c', 'carol');

  alice.send('bob', 'hello bob');
  const toBob = await bob.next<F<'reliable_msg'>>((f) => f.kind === 'reliable_msg');
  assert.equal(text(toBob.msg), 'hello bob');
  bob.ack(toBob.msgId);
  bob.send('alice', 'hello alice');
  assert.equal(await nextText(alice), 'hello alice');

  // SEND_SEQ across nodes: a repeated seq is not delivered twice, order holds.
  alice.raw(encodeSendSeqPacket(utf8('carol'), 1, utf8('one')));
  alice.raw(encodeSendSeqPacket(utf8('carol'), 1, utf8('one again')));
  alice.raw(encodeSendSeqPacket(utf8('carol'), 2, utf8('two')));
  alice.send('carol', 'after the sequence');
  assert.deepEqual([await nextText(carol), await nextText(carol), await nextText(carol)], ['one', 'two', 'after the sequence']);

  // A receipt from bob (node b) reaches alice (node a).
  bob.raw(encodeReadReceiptPacket(toBob.msgId, utf8('alice')));
  const receipt = await alice.next<F<'read_receipt_relay'>>((f) => f.kind === 'read_receipt_relay');
  assert.deepEqual([text(receipt.reader), [...receipt.msgId]], ['bob', [...toBob.msgId]]);

  // A group created on node a, members added through node c's admin API, a message fanned out to b and c.
  alice.raw(encodeGroupCreatePacket(utf8('across')));
  const gid = text((await alice.next<F<'group_join'>>((f) => f.kind === 'group_join')).gid);
  assert.equal(await adminAddMember('c', gid, 'bob'), 200);
  assert.equal(await adminAddMember('c', gid, 'carol'), 200);
  alice.raw(encodeGroupMsgPacket(utf8(gid), encodeCbor({ n: 7 }), utf8('to the group')));
  for (const member of [bob, carol]) {
    const f = await member.next<F<'reliable_msg'>>((m) => m.kind === 'reliable_msg');
    member.ack(f.msgId);
    const p = parseDeliveryPayload(f.msg);
    assert.equal(p.kind, 'group_msg');
    if (p.kind !== 'group_msg') return;
    const header = decodeCborMap(p.header);
    assert.ok(header.ok);
    assert.deepEqual([text(p.gid), text(p.ciphertext), header.map.get('sender'), header.map.get('n')], [gid, 'to the group', 'alice', 7]);
  }

  // The key directory: carol uploads on node c, alice fetches from node a and takes the one-time prekey.
  carol.raw(prekeyUploadPacket(1));
  assert.equal((await carol.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response')).map.get('status'), 'ok');
  alice.raw(encodeFetchPrekeysPacket(utf8('carol')));
  const bundle = (await alice.next<F<'prekey_response'>>((f) => f.kind === 'prekey_response')).map;
  assert.deepEqual([bundle.get('prekeys_remaining'), [...(bundle.get('one_time_prekey') as Uint8Array)]], [0, new Array(32).fill(1)]);

  // Presence: dave logs in on node b; every node shows it within a second, and the logout too.
  const t0 = Date.now();
  const dave = await login('b', 'dave');
  const online = await Promise.all([alice, bob, carol].map((x) => statusTurns(x, 'dave', true, t0)));
  dave.close();
  const t1 = Date.now();
  const offline = await Promise.all([alice, bob, carol].map((x) => statusTurns(x, 'dave', false, t1)));
  console.log(`# presence on nodes a, b, c: online after ${online.map((o) => o.ms).join('/')} ms, offline after ${offline.map((o) => o.ms).join('/')} ms`);
  for (const o of [...online, ...offline]) assert.ok(o.ms < 1_000, `presence took ${o.ms} ms`);
  for (const o of offline) assert.ok(o.lastSeen > 0n);
});

test('a client that sends and closes at once loses nothing: every message it wrote before closing reaches its recipient on another node, in order', async () => {
  const s = await c.waitSettled();
  const to = userOwnedBy(s, 'c', 'closer-to');
  const recipient = await login('b', to);
  const sender = await login('a', 'closer-from');
  const N = 200; // far more than a lane sends at once (route_in_flight): most wait at the edge
  for (let k = 1; k <= N; k++) sender.send(to, `c:${k}`);
  sender.close();
  const got: string[] = [];
  for (let k = 1; k <= N; k++) got.push(await nextText(recipient, true, 20_000));
  assert.deepEqual(got, Array.from({ length: N }, (_, k) => `c:${k + 1}`));
  recipient.close();
});

test('a node cut off from NATS enters safe mode within ~2 s, refuses writes at once with cluster_unavailable, answers GET_STATUS, and leaves safe mode by itself on heal', async () => {
  await c.waitSettled();
  const erin = await login('c', 'erin');
  const frank = await login('a', 'frank');
  const gina = await login('b', 'gina');
  const t0 = Date.now();
  c.isolate('c');
  await c.waitFor('node c in safe mode', async () => (await c.health('c')).safe_mode);
  const safeMs = Date.now() - t0;
  const t1 = Date.now();
  erin.send('frank', 'refused');
  const e = await erin.next<F<'error'>>((f) => f.kind === 'error');
  const refusedMs = Date.now() - t1;
  assert.equal(e.reason, 'cluster_unavailable');
  erin.raw(encodeGetStatusPacket(utf8('frank')));
  const st = await erin.next<F<'status'>>((f) => f.kind === 'status');
  assert.equal(text(st.user), 'frank');
  const r = await fetch(`http://127.0.0.1:${c.node('c').httpPort}/health`);
  const h = (await r.json()) as { status: string; safe_mode: boolean; quorum: boolean; node_count: number };
  assert.deepEqual([r.status, h.status, h.safe_mode, h.quorum, h.node_count], [503, 'safe_mode', true, false, 1]);
  assert.equal(await metric(c.node('c').httpPort, 'iris_cluster_safe_mode'), 1);
  // The majority keeps working (groups c owned move to a and b).
  for (const n of ['a', 'b']) assert.equal((await c.health(n)).safe_mode, false);
  frank.send('gina', 'during the partition');
  assert.equal(await nextText(gina, true, 20_000), 'during the partition');
  const t2 = Date.now();
  c.heal('c');
  await c.waitFor('node c out of safe mode', async () => !(await c.health('c')).safe_mode);
  const healMs = Date.now() - t2;
  console.log(`# partition: safe mode after ${safeMs} ms, a write refused in ${refusedMs} ms, safe mode left ${healMs} ms after heal`);
  assert.ok(safeMs < 5_000, `safe mode took ${safeMs} ms`);
  assert.ok(refusedMs < 1_000, `the refusal took ${refusedMs} ms`);
  erin.send('frank', 'after the heal');
  assert.equal(await nextText(frank, true, 20_000), 'after the heal');
  await c.waitSettled();
});

test('kill -9 of a core node owning groups while clients send: writes resume within seconds, every message is delivered once and in order, and nothing acknowledged comes back', async () => {
  const s = await c.waitSettled();
  const victim = 'c';
  const r1 = userOwnedBy(s, victim, 'kr');
  const r2 = userOwnedBy(s, victim, 'kr', 1);
  const senders = [await login('a', 'ks1'), await login('a', 'ks2')];
  const recipients = [await login('b', r1), await login('b', r2)];
  const names = [r1, r2];
  const got: Array<Array<{ k: number; at: number }>> = [[], []];
  const sent = [0, 0];
  const sentAt: number[][] = [[], []];
  let receiving = true;
  const readers = recipients.map(async (x, i) => {
    while (receiving && !x.closed) {
      const f = await x.next<F<'reliable_msg'>>((m) => m.kind === 'reliable_msg', 200).catch(() => null);
      if (f === null) continue;
      x.ack(f.msgId);
      got[i]!.push({ k: Number(text(f.msg).split(':')[1]), at: Date.now() });
    }
  });
  let sending = true;
  const writers = senders.map(async (x, i) => {
    for (let k = 1; sending && k < 100_000; k++) {
      // ks1 uses SEND, ks2 SEND_SEQ: both must come through once and in order.
      if (i === 0) x.send(names[i]!, `m:${k}`);
      else x.raw(encodeSendSeqPacket(utf8(names[i]!), k, utf8(`m:${k}`)));
      sent[i] = k;
      sentAt[i]!.push(Date.now());
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  await c.waitFor('messages flowing before the kill', () => got.every((g) => g.length >= 20));
  const tKill = Date.now();
  await c.kill(victim);
  const resumed = await c.waitFor(
    'a message sent after the kill delivered',
    () => {
      const first = got.map((g, i) => g.find((x) => sentAt[i]![x.k - 1]! > tKill));
      return first.every((x) => x !== undefined) ? Math.max(...first.map((x) => x!.at)) - tKill : null;
    },
    30_000,
  );
  await new Promise((r) => setTimeout(r, 300)); // keep sending a little after the failover
  sending = false;
  await Promise.all(writers);
  // SEND_SEQ dedup across the ownership move: the sequenced sender sends its last numbers
  // again (as a client does that reconnects unsure of them); the new owner has their records.
  // One new number after them: a repeat delivered again would come before it (one sender's order).
  for (let k = Math.max(1, sent[1]! - 4); k <= sent[1]!; k++) senders[1]!.raw(encodeSendSeqPacket(utf8(names[1]!), k, utf8(`m:${k}`)));
  sent[1]!++;
  senders[1]!.raw(encodeSendSeqPacket(utf8(names[1]!), sent[1]!, utf8(`m:${sent[1]!}`)));
  await c.waitFor('every message sent delivered', () => got.every((g, i) => g.length >= sent[i]!), 30_000).catch(() => undefined);
  receiving = false;
  await Promise.all(readers);
  console.log(`# failover: writes resumed ${resumed} ms after kill -9 of node ${victim} (${sent[0]} + ${sent[1]} messages sent)`);
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(
      got[i]!.map((x) => x.k),
      Array.from({ length: sent[i]! }, (_, k) => k + 1),
      `recipient ${i}: every message once, in order (SEND_SEQ repeats after the move not delivered again)`,
    );
  }
  assert.ok(resumed < 10_000, `writes resumed after ${resumed} ms`);
  // Acknowledged means gone: a new login of each recipient finds only the marker of the last round.
  for (const [i, name] of [r1, r2].entries()) {
    const x = recipients[i]!;
    x.send(name, 'last-round');
    const f = await x.next<F<'reliable_msg'>>((m) => m.kind === 'reliable_msg' && text(m.msg) === 'last-round', 20_000);
    void f; // not acknowledged: it must come back, and only it
    x.close();
    const again = await login('a', name);
    assert.deepEqual(await storedThenMarker(again, name, 'end'), ['last-round'], `${name}: nothing acknowledged came back`);
  }
});

test('kill -9 of an edge node: its client logs in on another node and gets exactly what it had not acknowledged, then what was sent meanwhile; its users go offline everywhere', async () => {
  // A third node again (the killed one's replacement), so the cluster keeps a majority after the next kill.
  await c.startNode('d');
  await c.waitSettled();
  const edge = 'b';
  const hank = await login(edge, 'hank');
  const ivy = await login('a', 'ivy');
  for (let k = 1; k <= 6; k++) ivy.send('hank', `e:${k}`);
  const seen: string[] = [];
  for (let k = 1; k <= 6; k++) seen.push(await nextText(hank, k <= 3));
  assert.deepEqual(seen, ['e:1', 'e:2', 'e:3', 'e:4', 'e:5', 'e:6']);
  // A marker hank sends himself travels behind his acknowledgements: once it is back, they are durable.
  hank.send('hank', 'mark');
  assert.equal(await nextText(hank, false), 'mark');
  const tKill = Date.now();
  await c.kill(edge);
  ivy.send('hank', 'e:7');
  const again = await login('d', 'hank');
  assert.deepEqual(await storedThenMarker(again, 'hank', 'end'), ['e:4', 'e:5', 'e:6', 'mark', 'e:7']);
  // Users whose sessions died with the edge show offline everywhere, also those of the groups it owned.
  const offline = await Promise.all(['bob', 'gina', 'dave'].map((u) => statusTurns(ivy, u, false, tKill, 15_000)));
  console.log(`# edge kill: its users offline on node a after ${offline.map((o) => o.ms).join('/')} ms`);
});
