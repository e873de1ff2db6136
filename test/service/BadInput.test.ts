/**
 * Hostile and broken input against a real node (real sockets, real LMDB): random bytes, cut and
 * oversized packets, bad logins, unknown opcodes, text WebSocket frames, buffer, connection and
 * message floods. Each bad client gets a clear answer or is closed alone; other users keep working.
 */
import { test } from 'node:test';
import { sharedNodeClients } from '../support/serviceFixture.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import fc from 'fast-check';
import WebSocket from 'ws';
import { LISTENER_DEFAULTS } from '../../edge/listeners/ListenerSettings.js';
import { startTestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import {
  assertHealthyPair,
  concat,
  drainToMarker,
  roundTrip,
  sameBytes,
  waitUntil,
  type ErrorFrame,
  type Reliable,
  type StatusFrame,
  isReliable,
} from '../support/serviceKit.js';
import {
  encodeAckPacket,
  encodeBatchSendPacket,
  encodeGetStatusPacket,
  encodeLoginPacket,
  encodeReadReceiptPacket,
  encodeSendPacket,
  encodeSendSeqPacket,
  encodeTypingPacket,
} from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { issueToken } from '../../edge/auth/JwtVerifier.js';

/** The node under test: a small input cap (the config minimum) and connection cap, so both are reachable. */
const INPUT_CAP = 4096;
const MAX_CONNECTIONS = 200;
const KiB = 1024;
const MiB = 1024 * KiB;

const { clients, node } = sharedNodeClients({ max_input_buffer_bytes: INPUT_CAP, max_connections: MAX_CONNECTIONS });

const u16 = (n: number): Uint8Array => Uint8Array.of(n >>> 8, n & 0xff);
const u32 = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const op = (b: number): Uint8Array => Uint8Array.of(b);
const fill = (n: number, b = 0x61): Uint8Array => new Uint8Array(n).fill(b);
const isRefusal = (f: ServerFrame): boolean => f.kind === 'error' || f.kind === 'auth_failed_text' || f.kind === 'rate_limited_text';

/** GET /health on a fresh connection (no keep-alive socket left behind). */
function health(): Promise<{ status: string; connections: number }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port: node().node.httpPort, path: '/health', agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(JSON.parse(body) as { status: string; connections: number }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('/health did not answer within 5 s')));
  });
}

async function statusOf(observer: V1TestClient, user: string | Uint8Array): Promise<StatusFrame> {
  const target = typeof user === 'string' ? utf8(user) : user;
  observer.raw(encodeGetStatusPacket(target));
  return observer.next<StatusFrame>((f) => f.kind === 'status' && sameBytes(f.user, target));
}

/** Polls GET_STATUS until `user` shows offline (the protocol allows 1 s). */
async function assertGoesOffline(observer: V1TestClient, user: string | Uint8Array): Promise<void> {
  const deadline = Date.now() + 1000;
  for (let i = 0; i < 1000; i++) {
    if (!(await statusOf(observer, user)).online) return;
    assert.ok(Date.now() < deadline, 'still online 1 s after its connection was closed');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------
// Random bytes (fast-check)

const KNOWN_OPCODES = [0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x10, 0x20, 0x21, 0x23, 0x30, 0x32, 0x33, 0x35, 0x36, 0x70, 0x71, 0x74];
const smallName = fc.uint8Array({ minLength: 0, maxLength: 12 });
const validPacket: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(smallName, fc.uint8Array({ maxLength: 40 })).map(([to, m]) => encodeSendPacket(to, m)),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((id) => encodeAckPacket(id)),
  fc.tuple(smallName, fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 5 })).map(([to, items]) => encodeBatchSendPacket(to, items)),
  smallName.map((to) => encodeGetStatusPacket(to)),
  fc.tuple(smallName, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.uint8Array({ maxLength: 20 })).map(([to, s, m]) => encodeSendSeqPacket(to, s, m)),
  fc.tuple(smallName, fc.boolean()).map(([to, on]) => encodeTypingPacket(to, on)),
  fc.tuple(fc.uint8Array({ maxLength: 20 }), smallName).map(([id, s]) => encodeReadReceiptPacket(id, s)),
);
/** Pure noise, a known opcode followed by noise, valid packets cut short, and valid packets with one byte changed. */
const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 600 }),
  fc.tuple(fc.constantFrom(...KNOWN_OPCODES), fc.uint8Array({ maxLength: 300 })).map(([o, rest]) => concat([op(o), rest])),
  fc.tuple(fc.array(validPacket, { minLength: 1, maxLength: 6 }), fc.nat()).map(([ps, cut]) => {
    const all = concat(ps);
    return all.subarray(0, 1 + (cut % all.length));
  }),
  fc.tuple(fc.array(validPacket, { minLength: 1, maxLength: 6 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([ps, at, b]) => {
    const all = concat(ps).slice();
    all[at % all.length] = b;
    return all;
  }),
);
const fuzzCase = fc.record({ loginFirst: fc.boolean(), bytes: hostileBytes });

let fuzzRun = 0;
/** One hostile connection; returns a description of what went wrong, or null. */
async function runHostile(input: { loginFirst: boolean; bytes: Uint8Array }): Promise<string | null> {
  const n = ++fuzzRun;
  const c = await clients.tcp();
  if (input.loginFirst) {
    const f = await c.login(`fuzz-${n}`);
    if (f.kind !== 'login_ok') return `login refused: ${f.kind}`;
  }
  c.raw(input.bytes);
  // A status probe: answered unless the bytes left a packet open (or the connection was closed).
  const probe = utf8(`fuzz-probe-${n}`);
  c.raw(encodeGetStatusPacket(probe));
  await c.next((f) => f.kind === 'status' && sameBytes(f.user, probe), 300).catch(() => undefined);
  const frames = c.unconsumed();
  if (c.decodeError !== null) return `the server sent bytes that are not v1 frames (${c.decodeError})`;
  if (c.closed && !frames.some(isRefusal)) {
    // The one silent close allowed: replaced by a newer login of the same user (random LOGIN
    // bytes may repeat a short user id another connection of this batch logged in with).
    const replaced = !input.loginFirst && frames.some((f) => f.kind === 'login_ok');
    if (!replaced) return `closed without a refusal; frames: ${JSON.stringify(frames.map((f) => f.kind))}`;
  }
  c.close();
  return null;
}

test('random bytes never take the node down: every reply is a well-formed v1 frame and a connection is only closed after a refusal', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fuzzCase, { minLength: 16, maxLength: 16 }), async (cases) => {
      const problems = (await Promise.all(cases.map(runHostile))).filter((p) => p !== null);
      assert.deepEqual(problems, []);
    }),
    { numRuns: 8 },
  );
  assert.equal((await health()).status, 'ok');
  await assertHealthyPair(clients);
});

// ---------------------------------------------------------------------------------------------
// Cut and oversized packets

test('a SEND written one byte at a time is reassembled and delivered once with its exact bytes', async () => {
  const a = await clients.user('cut-a');
  const b = await clients.user('cut-b');
  const payload = Uint8Array.of(0, 1, 2, 0xff, 0x68, 0x69, 0);
  const bytes = encodeSendPacket(utf8('cut-b'), payload);
  for (const byte of bytes) {
    a.raw(Uint8Array.of(byte));
    await new Promise((r) => setImmediate(r));
  }
  const f = await b.next<Reliable>(isReliable);
  assert.deepEqual([...f.msg], [...payload]);
  b.ack(f.msgId);
  a.send('cut-b', 'marker');
  assert.deepEqual(await drainToMarker(b, 'marker'), [], 'the cut SEND was delivered twice');
});

test('a connection closed in the middle of a packet affects no one and the partial packet is never delivered', async () => {
  const b = await clients.user('half-b');
  const a = await clients.user('half-a');
  const bytes = encodeSendPacket(utf8('half-b'), utf8('never whole'));
  a.raw(bytes.subarray(0, bytes.length - 3));
  a.close();
  const other = await clients.user('half-c');
  other.send('half-b', 'marker');
  assert.deepEqual(await drainToMarker(b, 'marker'), []);
  await assertHealthyPair(clients);
});

const oversized: Array<[string, Uint8Array, string]> = [
  ['SEND to a 257-byte target', concat([op(0x02), u16(257), fill(257), u16(2), utf8('hi')]), 'target_too_long'],
  ['GET_STATUS of a 257-byte target', concat([op(0x05), u16(257), fill(257)]), 'target_too_long'],
  ['TYPING_START to a 257-byte target', concat([op(0x70), u16(257), fill(257)]), 'target_too_long'],
  ['BATCH_SEND with a blob of 1 MiB + 1', concat([op(0x04), u16(1), utf8('x'), u32(MiB + 1), fill(MiB + 1)]), 'payload_too_large'],
  ['BATCH_SEND of 1001 items', encodeBatchSendPacket(utf8('x'), Array.from({ length: 1001 }, () => utf8('a'))), 'batch_too_many_items'],
  ['BATCH_SEND whose item runs past the blob', concat([op(0x04), u16(1), utf8('x'), u32(3), u16(5), utf8('a')]), 'bad_batch'],
  ['CBOR_MSG of 256 KiB + 1', concat([op(0x10), u16(1), utf8('x'), u32(256 * KiB + 1), fill(256 * KiB + 1)]), 'payload_too_large'],
  ['CBOR_MSG that is not CBOR', concat([op(0x10), u16(1), utf8('x'), u32(1), op(0xff)]), 'bad_cbor'],
  ['CBOR_MSG holding an array, not a map', concat([op(0x10), u16(1), utf8('x'), u32(1), op(0x80)]), 'cbor_not_map'],
  ['UPLOAD_PREKEYS of 8 KiB + 1', concat([op(0x20), u32(8 * KiB + 1), fill(8 * KiB + 1)]), 'payload_too_large'],
  ['FETCH_PREKEYS of a 257-byte user', concat([op(0x21), u16(257), fill(257)]), 'user_too_long'],
  ['E2EE_MSG to a 257-byte recipient', concat([op(0x23), u16(257), fill(257), u16(1), op(0xa0), u32(1), utf8('c')]), 'recipient_too_long'],
  ['E2EE_MSG with a header of 1 KiB + 1', concat([op(0x23), u16(1), utf8('x'), u16(KiB + 1), fill(KiB + 1), u32(1), utf8('c')]), 'header_too_large'],
  ['E2EE_MSG with a ciphertext of 64 KiB + 1', concat([op(0x23), u16(1), utf8('x'), u16(1), op(0xa0), u32(64 * KiB + 1), fill(64 * KiB + 1)]), 'payload_too_large'],
  ['GROUP_CREATE with a 257-byte name', concat([op(0x30), u16(257), fill(257)]), 'name_too_long'],
  ['GROUP_MSG to a 257-byte group id', concat([op(0x33), u16(257), fill(257), u16(1), op(0xa0), u32(1), utf8('c')]), 'gid_too_long'],
  ['SENDER_KEY_DIST with 8 KiB + 1 of key data', concat([op(0x36), u16(1), utf8('g'), u32(8 * KiB + 1), fill(8 * KiB + 1)]), 'payload_too_large'],
  ['READ_RECEIPT of a 65-byte message id', concat([op(0x74), u16(65), fill(65), u16(1), utf8('x')]), 'msg_id_too_long'],
];

test('each over-limit or malformed packet is answered with its exact ERROR code, skipped whole, and the connection keeps working', async () => {
  const a = await clients.user('big-a');
  const b = await clients.user('big-b');
  for (const [name, bytes, code] of oversized) {
    a.raw(concat([bytes, encodeSendPacket(utf8('big-b'), utf8(name))]));
    const first = await a.next();
    assert.deepEqual(first, { kind: 'error', reason: code }, name);
    await roundTrip(a);
    assert.deepEqual(a.unconsumed(), [], `${name}: frames beyond the one ERROR`);
    const f = await b.next<Reliable>(isReliable);
    assert.equal(text(f.msg), name, `${name}: the packet after the refused one was not routed`);
    b.ack(f.msgId);
  }
});

test('an over-limit packet is refused as soon as its length is known and its remaining bytes are dropped as they arrive', async () => {
  const a = await clients.user('early-a');
  const b = await clients.user('early-b');
  const bad = concat([op(0x02), u16(300), fill(300), u16(5), utf8('12345')]);
  a.raw(bad.subarray(0, 3 + 300 + 2)); // every length field is in: total known, 5 bytes still to come
  const e = await a.next<ErrorFrame>();
  assert.deepEqual(e, { kind: 'error', reason: 'target_too_long' });
  a.raw(concat([bad.subarray(305, 307)]));
  a.raw(concat([bad.subarray(307), encodeSendPacket(utf8('early-b'), utf8('after'))]));
  const f = await b.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'after');
  b.ack(f.msgId);
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), []);
});

test('a message to an empty target is refused with ERROR invalid_recipient (not a storage failure), once per message, and the connection keeps working', async () => {
  const a = await clients.user('empty-a');
  const b = await clients.user('empty-b');
  const none = new Uint8Array(0);
  a.raw(concat([encodeSendPacket(none, utf8('x')), encodeBatchSendPacket(none, [utf8('y'), utf8('z')]), encodeSendSeqPacket(none, 1n, utf8('w'))]));
  const refusals = [await a.next(), await a.next(), await a.next(), await a.next()];
  assert.deepEqual(refusals, Array.from({ length: 4 }, () => ({ kind: 'error', reason: 'invalid_recipient' })));
  a.send('empty-b', 'after');
  const f = await b.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'after');
  b.ack(f.msgId);
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), []);
});

// ---------------------------------------------------------------------------------------------
// Logins

test('a 10 KB login is answered AUTH_FAILED and closed; a 256-byte user logs in and a 257-byte one is refused', async () => {
  const huge = await clients.tcp();
  assert.equal((await huge.login(fill(10 * KiB, 0x75))).kind, 'auth_failed_text');
  await huge.closedByServer();
  assert.deepEqual(huge.unconsumed(), []);

  const at = await clients.tcp();
  assert.equal((await at.login(fill(256, 0x76))).kind, 'login_ok');
  const over = await clients.tcp();
  assert.equal((await over.login(fill(257, 0x77))).kind, 'auth_failed_text');
  await over.closedByServer();
  await assertHealthyPair(clients);
});

test('an empty user (":token" or a lone ":") is answered AUTH_FAILED and closed', async () => {
  for (const data of [utf8(':token'), utf8(':')]) {
    const c = await clients.tcp();
    c.raw(concat([op(0x01), data]));
    const f = await c.next();
    assert.equal(f.kind, 'auth_failed_text');
    await c.closedByServer();
  }
});

test('a login with NUL bytes is answered: NUL is part of the user id, so "nul\\0x" and "nul" are different users', async () => {
  const withNul = Uint8Array.of(0x6e, 0x75, 0x6c, 0x00, 0x78);
  const a = await clients.tcp();
  assert.equal((await a.login(withNul)).kind, 'login_ok');
  const plain = await clients.user('nul');
  const lone = await clients.tcp();
  assert.equal((await lone.login(Uint8Array.of(0))).kind, 'login_ok');
  const sender = await clients.user('nul-sender');
  sender.raw(encodeSendPacket(withNul, utf8('to nul-x')));
  sender.send('nul', 'to nul');
  sender.raw(encodeSendPacket(Uint8Array.of(0), utf8('to lone NUL')));
  const fa = await a.next<Reliable>(isReliable);
  const fp = await plain.next<Reliable>(isReliable);
  // The user "\0" may hold messages from the random-bytes test on this node: wait for ours.
  const fl = await lone.next<Reliable>((f) => isReliable(f) && text((f as Reliable).msg) === 'to lone NUL');
  assert.deepEqual([text(fa.msg), text(fp.msg), text(fl.msg)], ['to nul-x', 'to nul', 'to lone NUL']);
  for (const [c, f] of [[a, fa], [plain, fp], [lone, fl]] as const) c.ack(f.msgId);
  const s = await statusOf(sender, withNul);
  assert.equal(s.online, true);
  // A NUL in the token part is ignored with auth off (dev): the login is answered LOGIN_OK.
  const tok = await clients.tcp();
  tok.raw(concat([encodeLoginPacket(utf8('nul-token')), utf8(':'), Uint8Array.of(0, 0, 0)]));
  assert.equal((await tok.next()).kind, 'login_ok');
});

test('with auth on: garbage tokens for alice get AUTH_FAILED, then RATE_LIMITED from that address once its 10 failures are spent, yet alice\'s valid token logs in from that address and from another', async () => {
  const secret = 'a-test-secret-of-at-least-32-bytes-long!';
  const auth = await startTestNode({ auth_enabled: true, jwt_secret: secret });
  const opened: V1TestClient[] = [];
  const from = async (localAddress: string): Promise<V1TestClient> => {
    const c = await V1TestClient.tcp(auth.node.tcpPort, '127.0.0.1', localAddress);
    opened.push(c);
    return c;
  };
  const BAD_SOURCE = '127.0.0.1';
  const OTHER_SOURCE = '127.0.0.2';
  try {
    const clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };
    const tokenFor = async (sub: string): Promise<string> => {
      const r = await issueToken(secret, { sub, ttlSeconds: 600 }, clock);
      assert.ok(r.ok);
      return r.token;
    };
    const attempts: Uint8Array[] = [
      concat([utf8('alice:'), Uint8Array.of(0, 0, 0)]),
      concat([utf8('alice:ey'), Uint8Array.of(0), utf8('.x.y')]),
      utf8('alice'),
      utf8('alice:not-a-jwt'),
      utf8(`alice:${await tokenFor('trent')}`),
    ];
    for (let i = 0; i < 10; i++) {
      const c = await from(BAD_SOURCE);
      c.raw(concat([op(0x01), attempts[i % attempts.length]!]));
      assert.equal((await c.next()).kind, 'auth_failed_text', `failed login ${i + 1}`);
      await c.closedByServer();
    }
    for (let i = 0; i < 3; i++) {
      const spent = await from(BAD_SOURCE);
      spent.raw(concat([op(0x01), utf8('alice:not-a-jwt')]));
      assert.equal((await spent.next()).kind, 'rate_limited_text', `bad try ${11 + i} from the spent source`);
      await spent.closedByServer();
    }
    const sameSource = await from(BAD_SOURCE);
    assert.equal((await sameSource.login('alice', await tokenFor('alice'))).kind, 'login_ok', 'alice from the address that spent its failures');
    const otherSource = await from(OTHER_SOURCE);
    assert.equal((await otherSource.login('alice', await tokenFor('alice'))).kind, 'login_ok', 'alice from another address');
    const trent = await from(BAD_SOURCE);
    assert.equal((await trent.login('trent', await tokenFor('trent'))).kind, 'login_ok');
    const stillSpent = await from(BAD_SOURCE);
    stillSpent.raw(concat([op(0x01), utf8('alice:not-a-jwt')]));
    assert.equal((await stillSpent.next()).kind, 'rate_limited_text', 'a valid login does not refill the bad source');
    await stillSpent.closedByServer();
    const otherBad = await from(OTHER_SOURCE);
    otherBad.raw(concat([op(0x01), utf8('alice:not-a-jwt')]));
    assert.equal((await otherBad.next()).kind, 'auth_failed_text', 'another address has its own allowance');
  } finally {
    for (const c of opened) c.close();
    await auth.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// Unknown opcodes and WebSocket abuse

const UNKNOWN_OPCODES = [0x00, 0x06, 0x08, 0x11, 0x22, 0x31, 0x99, 0xfe, 0xff];

test('an unknown opcode is answered ERROR unknown_opcode and closes that connection alone, ignoring the bytes after it', async () => {
  const observer = await clients.user('uo-observer');
  const recv = await clients.user('uo-recv');
  for (const [i, code] of UNKNOWN_OPCODES.entries()) {
    for (const loggedIn of [false, true]) {
      const user = `uo-${i}-${loggedIn ? 'in' : 'out'}`;
      const c = loggedIn ? await clients.user(user) : await clients.tcp();
      c.raw(concat([op(code), encodeSendPacket(utf8('uo-recv'), utf8(`after 0x${code.toString(16)}`))]));
      const e = await c.next();
      assert.deepEqual(e, { kind: 'error', reason: 'unknown_opcode' }, `opcode 0x${code.toString(16)}`);
      await c.closedByServer();
      assert.deepEqual(c.unconsumed(), []);
      if (loggedIn) await assertGoesOffline(observer, user);
    }
  }
  observer.send('uo-recv', 'marker');
  assert.deepEqual(
    (await drainToMarker(recv, 'marker')).map((f) => text(f.msg)),
    [],
    'bytes after an unknown opcode were processed',
  );
  await assertHealthyPair(clients);
});

async function rawWs(): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${node().node.httpPort}/ws`);
  ws.on('error', () => {});
  await once(ws, 'open');
  return ws;
}

test('a text WebSocket frame closes only that WebSocket, with 1003 "binary frames only", before and after login', async () => {
  const observer = await clients.user('wst-observer');
  const bystander = await clients.user('wst-bystander', 'ws');
  for (const loggedIn of [false, true]) {
    const ws = await rawWs();
    const closed = once(ws, 'close');
    if (loggedIn) {
      const firstMessage = once(ws, 'message');
      ws.send(encodeLoginPacket(utf8('wst-user')));
      const [data] = (await firstMessage) as [Buffer];
      assert.equal(data.toString('latin1'), '\x03LOGIN_OK');
    }
    ws.send('hello as text');
    const [code, reason] = (await closed) as [number, Buffer];
    assert.equal(code, 1003);
    assert.equal(reason.toString(), 'binary frames only');
    if (loggedIn) await assertGoesOffline(observer, 'wst-user');
  }
  observer.send('wst-bystander', 'still here');
  const f = await bystander.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'still here');
  bystander.ack(f.msgId);
});

test('a WebSocket message over the frame limit (ws_max_frame_bytes) closes only that WebSocket', async () => {
  const bystander = await clients.user('wsbig-bystander', 'ws');
  const ws = await rawWs();
  const closed = once(ws, 'close');
  ws.send(fill(LISTENER_DEFAULTS.ws_max_frame_bytes + 1, 0x02));
  const [code] = (await closed) as [number, Buffer];
  // uWS drops the socket (1006, no close frame) when a message exceeds maxPayloadLength; 1009 would be the polite form.
  assert.ok(code === 1006 || code === 1009, `close code ${code}`);
  const sender = await clients.user('wsbig-sender');
  sender.send('wsbig-bystander', 'still here');
  const f = await bystander.next<Reliable>(isReliable);
  assert.equal(text(f.msg), 'still here');
  bystander.ack(f.msgId);
});

// ---------------------------------------------------------------------------------------------
// Floods

test('input piling up past the buffer cap is answered ERROR input_buffer_overflow and closes that connection alone', async () => {
  // A target length over its limit: the packet's total stays unknown while the noise keeps coming.
  const flood = concat([op(0x02), u16(0xffff), fill(2 * INPUT_CAP, 0xff)]);
  for (const loggedIn of [false, true]) {
    const c = loggedIn ? await clients.user('cap-flooder') : await clients.tcp();
    c.raw(flood);
    assert.deepEqual(await c.next(), { kind: 'error', reason: 'input_buffer_overflow' });
    await c.closedByServer();
    assert.deepEqual(c.unconsumed(), []);
  }
  await assertHealthyPair(clients);
});

test('legal packets larger than the buffer cap still go through, also when they arrive in pieces', async () => {
  const a = await clients.user('capok-a');
  const b = await clients.user('capok-b');
  const big = fill(60_000, 0x42);
  big[0] = 0;
  big[59_999] = 0xff;
  const send = encodeSendPacket(utf8('capok-b'), big);
  a.raw(send.subarray(0, 10));
  a.raw(send.subarray(10, 30_000));
  a.raw(send.subarray(30_000));
  const items = Array.from({ length: 20 }, (_, i) => fill(5000, 0x30 + i));
  a.raw(encodeBatchSendPacket(utf8('capok-b'), items));
  const first = await b.next<Reliable>(isReliable);
  assert.ok(sameBytes(first.msg, big));
  b.ack(first.msgId);
  for (let i = 0; i < 20; i++) {
    const f = await b.next<Reliable>(isReliable);
    assert.ok(sameBytes(f.msg, items[i]!), `batch item ${i}`);
    b.ack(f.msgId);
  }
  await roundTrip(a);
  assert.deepEqual(a.unconsumed(), []);
});

test(`a flood of 300 connections against a cap of ${MAX_CONNECTIONS}: exactly the free slots log in, the rest get RATE_LIMITED and are closed, and the slots come back`, async () => {
  await waitUntil('no connection left open from earlier tests', async () => (await health()).connections === 0);
  const flood: V1TestClient[] = [];
  try {
    const results = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const c = await V1TestClient.tcp(node().node.tcpPort);
        flood.push(c);
        return { c, kind: (await c.login(`flood-${i}`)).kind };
      }),
    );
    const count = (k: string) => results.filter((r) => r.kind === k).length;
    assert.deepEqual({ login_ok: count('login_ok'), rate_limited_text: count('rate_limited_text') }, { login_ok: MAX_CONNECTIONS, rate_limited_text: 300 - MAX_CONNECTIONS });
    await Promise.all(results.filter((r) => r.kind === 'rate_limited_text').map((r) => r.c.closedByServer()));
    assert.equal((await health()).connections, MAX_CONNECTIONS);
  } finally {
    for (const c of flood) c.close();
  }
  await waitUntil('the flood connections are released', async () => (await health()).connections === 0);
  await assertHealthyPair(clients);
});

test('a flood of 700 connections from one address is cut by the per-address rate (burst 500, then 100/s): the excess gets RATE_LIMITED and is closed, other addresses still connect', async () => {
  // Default limits on a node of its own; 127.0.0.1 is exempt from the per-address rate, 127.0.0.2 is not.
  const node = await startTestNode();
  const flood: V1TestClient[] = [];
  try {
    const started = Date.now();
    const results: Array<{ c: V1TestClient; kind: ServerFrame['kind'] }> = [];
    // In waves of 175, so the listen backlog never drops a SYN (a retried SYN costs a second).
    for (let wave = 0; wave < 4; wave++) {
      results.push(
        ...(await Promise.all(
          Array.from({ length: 175 }, async (_, i) => {
            const c = await V1TestClient.tcp(node.node.tcpPort, '127.0.0.1', '127.0.0.2');
            flood.push(c);
            return { c, kind: (await c.login(`ipflood-${wave}-${i}`)).kind };
          }),
        )),
      );
    }
    const elapsedS = (Date.now() - started) / 1000;
    const ok = results.filter((r) => r.kind === 'login_ok').length;
    const limited = results.filter((r) => r.kind === 'rate_limited_text').length;
    assert.equal(ok + limited, 700, `other answers: ${JSON.stringify(results.filter((r) => r.kind !== 'login_ok' && r.kind !== 'rate_limited_text').map((r) => r.kind))}`);
    assert.ok(ok >= 500 && ok <= 500 + Math.ceil(100 * elapsedS) + 1 && limited > 0, `${ok} admitted in ${elapsedS} s`);
    await Promise.all(results.filter((r) => r.kind === 'rate_limited_text').map((r) => r.c.closedByServer()));
    const other = await V1TestClient.tcp(node.node.tcpPort);
    flood.push(other);
    assert.equal((await other.login('ipflood-other')).kind, 'login_ok');
  } finally {
    for (const c of flood) c.close();
    await node.stop();
  }
});

