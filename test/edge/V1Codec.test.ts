/**
 * The v1 codec against protocol-v1.md: the worked bytes of §6 exactly, a round trip of every
 * client packet and server frame, the framing rules of §1, every refusal by its stable code,
 * and the CBOR rules (byte-string keys, indefinite lengths, tags, depth, integer encoding).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { V1Decoder } from '../../edge/protocol/V1Decoder.js';
import { checkCborContent, readPrekeyUpload } from '../../edge/protocol/V1Content.js';
import { V1ClientDecoder, parseDeliveryPayload } from '../../edge/protocol/V1ClientDecoder.js';
import * as enc from '../../edge/protocol/V1Encoder.js';
import { checkCborMap, decodeCbor, decodeCborMap, encodeCbor, type CborEncodable, type CborMap } from '../../edge/protocol/Cbor.js';
import { parsePrekeyResponse, prekeyBundleMap, prekeyStatusMap, prekeyUploadMap, type PrekeyBundle } from '../../edge/protocol/V1Prekeys.js';
import type { ClientPacket, ServerFrame, V1DecodeResult } from '../../edge/protocol/V1Packets.js';
import {
  V1_INPUT_BUFFER_CAP_DEFAULT,
  V1_MAX_BATCH_BLOB_BYTES,
  V1_MAX_BATCH_ITEMS,
  V1_MAX_CBOR_DEPTH,
  V1_MAX_CBOR_MSG_BYTES,
  V1_MAX_E2EE_HEADER_BYTES,
  V1_MAX_KEYDATA_BYTES,
  V1_MAX_PREKEYS_BLOB_BYTES,
  V1_MAX_RECEIPT_MSG_ID_BYTES,
  V1_MAX_TARGET_BYTES,
  V1_MAX_USER_BYTES,
} from '../../edge/protocol/v1Limits.js';
import { concat, drain, hex, toHex, utf8 } from './v1Bytes.js';

const ID = hex('00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff');
const bob = utf8('bob');

function decodeOne(bytes: Uint8Array): V1DecodeResult[] {
  const d = new V1Decoder();
  d.push(bytes);
  return drain(d);
}

function packetsOf(results: readonly V1DecodeResult[]): ClientPacket[] {
  return results.map((r) => {
    if (r.kind !== 'packet') assert.fail(`expected a packet, got ${inspect(r)}`);
    return (r as { packet: ClientPacket }).packet;
  });
}

function decodeFrames(bytes: Uint8Array): ServerFrame[] {
  const d = new V1ClientDecoder();
  d.push(bytes);
  return drain(d).map((r) => {
    if (r.kind !== 'frame') assert.fail(`expected a frame, got ${inspect(r)}`);
    return (r as { frame: ServerFrame }).frame;
  });
}

function errorOf(results: readonly V1DecodeResult[], index = 0): { code: string; skip: number | null; fatal: boolean; opcode: number | null } {
  const r = results[index];
  if (r === undefined || r.kind !== 'error') assert.fail(`expected an error, got ${inspect(r)}`);
  return { code: r.code, skip: r.skip, fatal: r.fatal, opcode: r.opcode };
}

const sendHi = enc.encodeSendPacket(bob, utf8('hi'));
const keyOf = (n: number, fill: number) => new Uint8Array(n).fill(fill);

// ---------------------------------------------------------------------------------------------
// §6 worked bytes

test('login "alice" is 01 61 6C 69 63 65, decodes as user alice without token, and LOGIN_OK is the 9 bytes of §6', () => {
  const login = hex('01 61 6C 69 63 65');
  assert.deepEqual(enc.encodeLoginPacket(utf8('alice')), login);
  assert.deepEqual(packetsOf(decodeOne(login)), [{ op: 'login', data: utf8('alice'), user: utf8('alice'), token: null }]);
  assert.deepEqual(enc.encodeLoginOkFrame(), hex('03 4C 4F 47 49 4E 5F 4F 4B'));
  assert.deepEqual(decodeFrames(hex('03 4C 4F 47 49 4E 5F 4F 4B')), [{ kind: 'login_ok' }]);
});

test('alice → bob "hi" is the SEND bytes of §6', () => {
  const bytes = hex('02 00 03 62 6F 62 00 02 68 69');
  assert.deepEqual(sendHi, bytes);
  assert.deepEqual(packetsOf(decodeOne(bytes)), [{ op: 'send', target: bob, msg: utf8('hi') }]);
});

test('the RELIABLE_MSG bob receives for "hi" has the §6 layout and his ACK echoes the same 16 bytes', () => {
  const frame = enc.encodeReliableMsgFrame(ID, utf8('hi'));
  assert.equal(toHex(frame), toHex(concat(hex('10 00 10'), ID, hex('00 00 00 02 68 69'))));
  assert.deepEqual(decodeFrames(frame), [{ kind: 'reliable_msg', msgId: ID, msg: utf8('hi') }]);
  const ack = enc.encodeAckPacket(ID);
  assert.deepEqual(ack, concat(hex('03'), ID));
  assert.deepEqual(packetsOf(decodeOne(ack)), [{ op: 'ack', msgId: ID }]);
});

test('GET_STATUS of bob and the online STATUS reply are the bytes of §6', () => {
  const request = hex('05 00 03 62 6F 62');
  assert.deepEqual(enc.encodeGetStatusPacket(bob), request);
  assert.deepEqual(packetsOf(decodeOne(request)), [{ op: 'get_status', target: bob }]);
  const reply = hex('06 00 03 62 6F 62 01 00 00 00 00 00 00 00 00');
  assert.deepEqual(enc.encodeStatusFrame(bob, true, 0), reply);
  assert.deepEqual(decodeFrames(reply), [{ kind: 'status', user: bob, online: true, lastSeen: 0n }]);
});

test('a batch of "a","bc" to bob is the bytes of §6 and decodes into both items', () => {
  const bytes = hex('04 00 03 62 6F 62 00 00 00 07 00 01 61 00 02 62 63');
  assert.deepEqual(enc.encodeBatchSendPacket(bob, [utf8('a'), utf8('bc')]), bytes);
  assert.deepEqual(packetsOf(decodeOne(bytes)), [{ op: 'batch_send', target: bob, items: [utf8('a'), utf8('bc')] }]);
});

// ---------------------------------------------------------------------------------------------
// Round trips of every opcode

const header = encodeCbor({ v: 1, dh: keyOf(32, 7) });
const upload = { identityKey: keyOf(32, 1), signedPrekey: keyOf(32, 2), signedPrekeySignature: keyOf(64, 3), oneTimePrekeys: [keyOf(32, 4), keyOf(32, 5)], signedPrekeyTimestamp: 1_700_000_000_123 };
const uploadCbor = encodeCbor(prekeyUploadMap(upload));
const cborMsg = encodeCbor({ type: 'note', body: 'hello', n: [1, 2, 3] });

const everyClientPacket: ReadonlyArray<[string, Uint8Array, (p: ClientPacket) => void]> = [
  ['login with token', enc.encodeLoginPacket(utf8('alice'), utf8('tok:en')), (p) => assert.deepEqual(p, { op: 'login', data: utf8('alice:tok:en'), user: utf8('alice'), token: utf8('tok:en') })],
  ['send', sendHi, (p) => assert.deepEqual(p, { op: 'send', target: bob, msg: utf8('hi') })],
  ['ack', enc.encodeAckPacket(ID), (p) => assert.deepEqual(p, { op: 'ack', msgId: ID })],
  ['batch_send (empty)', enc.encodeBatchSendPacket(bob, []), (p) => assert.deepEqual(p, { op: 'batch_send', target: bob, items: [] })],
  ['get_status', enc.encodeGetStatusPacket(bob), (p) => assert.deepEqual(p, { op: 'get_status', target: bob })],
  ['send_seq', enc.encodeSendSeqPacket(bob, 0xfedc_ba98_7654_3210n, utf8('x')), (p) => assert.deepEqual(p, { op: 'send_seq', target: bob, seq: 0xfedc_ba98_7654_3210n, msg: utf8('x') })],
  [
    'cbor_msg',
    enc.encodeCborMsgPacket(bob, cborMsg),
    (p) => {
      assert.deepEqual(p, { op: 'cbor_msg', target: bob, cbor: cborMsg });
      assert.equal(checkCborContent(cborMsg), 'ok');
    },
  ],
  [
    'upload_prekeys',
    enc.encodeUploadPrekeysPacket(uploadCbor),
    (p) => {
      assert.ok(p.op === 'upload_prekeys');
      assert.deepEqual(p, { op: 'upload_prekeys', cbor: uploadCbor });
      assert.deepEqual(readPrekeyUpload(p.cbor), { ok: true, upload });
    },
  ],
  ['fetch_prekeys', enc.encodeFetchPrekeysPacket(bob), (p) => assert.deepEqual(p, { op: 'fetch_prekeys', user: bob })],
  ['e2ee_msg', enc.encodeE2eeMsgPacket(bob, header, utf8('ct')), (p) => assert.deepEqual(p, { op: 'e2ee_msg', recipient: bob, header, ciphertext: utf8('ct') })],
  ['group_create', enc.encodeGroupCreatePacket(utf8('friends')), (p) => assert.deepEqual(p, { op: 'group_create', name: utf8('friends') })],
  ['group_leave', enc.encodeGroupLeavePacket(utf8('g1')), (p) => assert.deepEqual(p, { op: 'group_leave', gid: utf8('g1') })],
  ['group_msg', enc.encodeGroupMsgPacket(utf8('g1'), header, utf8('ct')), (p) => assert.deepEqual(p, { op: 'group_msg', gid: utf8('g1'), header, ciphertext: utf8('ct') })],
  ['group_roster', enc.encodeGroupRosterPacket(utf8('g1')), (p) => assert.deepEqual(p, { op: 'group_roster', gid: utf8('g1') })],
  ['sender_key_dist', enc.encodeSenderKeyDistPacket(utf8('g1'), keyOf(40, 9)), (p) => assert.deepEqual(p, { op: 'sender_key_dist', gid: utf8('g1'), keydata: keyOf(40, 9) })],
  ['typing_start', enc.encodeTypingPacket(bob, true), (p) => assert.deepEqual(p, { op: 'typing_start', target: bob })],
  ['typing_stop', enc.encodeTypingPacket(bob, false), (p) => assert.deepEqual(p, { op: 'typing_stop', target: bob })],
  ['read_receipt', enc.encodeReadReceiptPacket(ID, bob), (p) => assert.deepEqual(p, { op: 'read_receipt', msgId: ID, originalSender: bob })],
];

for (const [name, bytes, check] of everyClientPacket) {
  test(`client packet ${name} round-trips through the encoder and the decoder`, () => {
    const [p] = packetsOf(decodeOne(bytes));
    check(p!);
    assert.deepEqual(enc.encodeClientPacket(p!), bytes, 'encodeClientPacket gives the same bytes back');
  });
}

test('every client opcode of §2 has a round-trip case', () => {
  const opcodes = new Set(everyClientPacket.map(([, bytes]) => bytes[0]));
  assert.deepEqual([...opcodes].sort((a, b) => a! - b!), [0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x10, 0x20, 0x21, 0x23, 0x30, 0x32, 0x33, 0x35, 0x36, 0x70, 0x71, 0x74]);
});

const bundle: PrekeyBundle = {
  identityKey: keyOf(32, 1),
  signedPrekey: keyOf(32, 2),
  signedPrekeySignature: keyOf(64, 3),
  signedPrekeyTimestamp: 1_700_000_000_000,
  oneTimePrekey: keyOf(32, 4),
  oneTimePrekeyIndex: 7,
  prekeysRemaining: 19,
  spkFallbackMode: false,
};

const everyServerFrame: ReadonlyArray<[string, Uint8Array, ServerFrame]> = [
  ['login_ok', enc.encodeLoginOkFrame(), { kind: 'login_ok' }],
  ['reliable_msg', enc.encodeReliableMsgFrame(ID, utf8('payload')), { kind: 'reliable_msg', msgId: ID, msg: utf8('payload') }],
  ['status offline', enc.encodeStatusFrame(bob, false, 1_700_000_000), { kind: 'status', user: bob, online: false, lastSeen: 1_700_000_000n }],
  ['group_join', enc.encodeGroupJoinFrame(utf8('g1'), bob), { kind: 'group_join', gid: utf8('g1'), user: bob }],
  ['group_leave_ok', enc.encodeGroupLeaveOkFrame(), { kind: 'group_leave_ok' }],
  ['typing', enc.encodeTypingFrame(bob, true), { kind: 'typing', sender: bob, typing: true }],
  ['typing stopped', enc.encodeTypingFrame(bob, false), { kind: 'typing', sender: bob, typing: false }],
  ['read_receipt_relay', enc.encodeReadReceiptRelayFrame(ID, bob, 1_700_000_000_123n), { kind: 'read_receipt_relay', msgId: ID, reader: bob, timestampMs: 1_700_000_000_123n }],
  ['error', enc.encodeErrorFrame('not_member'), { kind: 'error', reason: 'not_member' }],
  ['rate_limited', enc.encodeRateLimitedFrame(250), { kind: 'rate_limited', retryAfterMs: 250 }],
  ['auth_failed text', enc.encodeAuthFailedText(), { kind: 'auth_failed_text' }],
  ['rate_limited text', enc.encodeRateLimitedText(), { kind: 'rate_limited_text' }],
];

for (const [name, bytes, expected] of everyServerFrame) {
  test(`server frame ${name} round-trips through the encoder and the client decoder`, () => {
    assert.deepEqual(decodeFrames(bytes), [expected]);
    assert.deepEqual(enc.encodeServerFrame(expected), bytes);
  });
}

test('the plain texts AUTH_FAILED and RATE_LIMITED are the bare ASCII bytes, distinct from the 0xFF frame', () => {
  assert.deepEqual(enc.encodeAuthFailedText(), utf8('AUTH_FAILED'));
  assert.deepEqual(enc.encodeRateLimitedText(), utf8('RATE_LIMITED'));
  assert.deepEqual(enc.encodeRateLimitedFrame(1000), hex('FF 00 00 03 E8'));
  assert.deepEqual(enc.encodeGroupLeaveOkFrame(), hex('32 4F 4B'));
  assert.deepEqual(enc.encodeErrorFrame('bad_cbor'), concat(hex('FE 00 08'), utf8('bad_cbor')));
});

test('PREKEY_RESPONSE frames carry the bundle and status maps with text keys and integer timestamps', () => {
  const frame = enc.encodePrekeyResponseFrame(prekeyBundleMap(bundle));
  const [decoded] = decodeFrames(frame);
  assert.ok(decoded?.kind === 'prekey_response');
  assert.deepEqual(parsePrekeyResponse(decoded.map), { status: 'bundle', bundle });
  // The timestamp is a CBOR unsigned integer (major 0, 8-byte argument), never a float.
  assert.ok(toHex(decoded.cbor).includes(toHex(concat(utf8('signed_prekey_timestamp'), hex('1b 00 00 01 8b cf e5 68 00')))));
  assert.deepEqual([...decoded.map.keys()].every((k) => typeof k === 'string'), true);
  for (const [map, expected] of [
    [prekeyStatusMap('ok'), { status: 'ok' }],
    [prekeyStatusMap('not_found'), { status: 'not_found' }],
    [prekeyStatusMap('error', 'bad_signature'), { status: 'error', reason: 'bad_signature' }],
  ] as const) {
    const [f] = decodeFrames(enc.encodePrekeyResponseFrame(map));
    assert.ok(f?.kind === 'prekey_response');
    assert.deepEqual(parsePrekeyResponse(f.map), expected);
  }
  const noOtk = { ...bundle, oneTimePrekey: null, oneTimePrekeyIndex: null, spkFallbackMode: true };
  const [f] = decodeFrames(enc.encodePrekeyResponseFrame(prekeyBundleMap(noOtk)));
  assert.ok(f?.kind === 'prekey_response');
  assert.deepEqual(parsePrekeyResponse(f.map), { status: 'bundle', bundle: noOtk });
});

test('GROUP_ROSTER is a CBOR array of member ids: text when UTF-8, byte strings otherwise', () => {
  const odd = hex('ff 00 fe');
  const frame = enc.encodeGroupRosterFrame(utf8('g1'), [utf8('alice'), odd]);
  const [decoded] = decodeFrames(frame);
  assert.ok(decoded?.kind === 'group_roster');
  assert.deepEqual(decoded.members, [utf8('alice'), odd]);
  assert.deepEqual(decodeCbor(decoded.cbor), { ok: true, value: ['alice', odd] });
  assert.deepEqual(enc.encodeServerFrame(decoded), frame);
});

test('a forwarded GROUP_MSG header gets sender = the user, overwriting a client sender under a text or byte key, other entries kept byte for byte', () => {
  // {h'sender': "mallory", "v": 1.5, "sender": "eve", "x": tag 1(5)}: byte key, float, text key, tag.
  const client = hex('a4 46 73656e646572 67 6d616c6c6f7279 61 76 f9 3e00 66 73656e646572 63 657665 61 78 c1 05');
  assert.equal(checkCborMap(client), 'ok');
  const edited = enc.groupHeaderWithSender(client, utf8('alice'));
  assert.ok(edited.ok);
  assert.equal(toHex(edited.bytes), toHex(hex('a3 61 76 f9 3e00 61 78 c1 05 66 73656e646572 65 616c696365')));
  const frame = enc.encodeGroupMsgFrame(utf8('g1'), edited.bytes, utf8('ct'));
  const [delivered] = decodeFrames(enc.encodeReliableMsgFrame(ID, frame));
  assert.ok(delivered?.kind === 'reliable_msg');
  assert.deepEqual(parseDeliveryPayload(delivered.msg), { kind: 'group_msg', gid: utf8('g1'), header: edited.bytes, ciphertext: utf8('ct') });
  assert.deepEqual(enc.groupHeaderWithSender(hex('81 00'), utf8('alice')), { ok: false, code: 'cbor_not_map' });
});

test('E2EE_DELIVERY and SENDER_KEY_DIST read out of a RELIABLE_MSG payload; other payloads are opaque', () => {
  const e2ee = enc.encodeE2eeDeliveryFrame(utf8('alice'), header, utf8('ct'));
  assert.deepEqual(parseDeliveryPayload(e2ee), { kind: 'e2ee_delivery', sender: utf8('alice'), header, ciphertext: utf8('ct') });
  const skd = enc.encodeSenderKeyDistFrame(utf8('g1'), keyOf(10, 1));
  assert.deepEqual(skd, enc.encodeSenderKeyDistPacket(utf8('g1'), keyOf(10, 1)), 'the frame repeats the client layout');
  assert.deepEqual(parseDeliveryPayload(skd), { kind: 'sender_key_dist', gid: utf8('g1'), keydata: keyOf(10, 1) });
  assert.deepEqual(parseDeliveryPayload(utf8('hi')), { kind: 'opaque' });
  assert.deepEqual(parseDeliveryPayload(e2ee.subarray(0, e2ee.length - 1)), { kind: 'opaque' });
  assert.deepEqual(parseDeliveryPayload(new Uint8Array(0)), { kind: 'opaque' });
});

test('encoders refuse a field longer than its length prefix with a RangeError (a bug, not input)', () => {
  assert.throws(() => enc.encodeSendPacket(new Uint8Array(0x1_0000), utf8('x')), RangeError);
  assert.throws(() => enc.encodeRateLimitedFrame(-1), RangeError);
  assert.throws(() => enc.encodeStatusFrame(bob, true, -1), RangeError);
  assert.throws(() => enc.encodeErrorFrame('naïve'), RangeError);
  assert.throws(() => encodeCbor({ n: 1n << 64n }), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Framing (§1)

test('an ACK followed by a SEND in one segment decodes both', () => {
  assert.deepEqual(packetsOf(decodeOne(concat(enc.encodeAckPacket(ID), sendHi))), [
    { op: 'ack', msgId: ID },
    { op: 'send', target: bob, msg: utf8('hi') },
  ]);
});

test('coalesced ACKs in one segment decode one by one', () => {
  const other = keyOf(16, 0xab);
  assert.deepEqual(packetsOf(decodeOne(concat(enc.encodeAckPacket(ID), enc.encodeAckPacket(other), enc.encodeAckPacket(ID)))), [
    { op: 'ack', msgId: ID },
    { op: 'ack', msgId: other },
    { op: 'ack', msgId: ID },
  ]);
});

test('a packet fed one byte at a time waits, then decodes whole: a short header is never dropped', () => {
  const bytes = concat(enc.encodeE2eeMsgPacket(bob, header, utf8('ciphertext')), enc.encodeAckPacket(ID));
  const d = new V1Decoder();
  const got: V1DecodeResult[] = [];
  for (const byte of bytes) {
    d.push(Uint8Array.of(byte));
    got.push(...drain(d));
  }
  assert.deepEqual(packetsOf(got), [
    { op: 'e2ee_msg', recipient: bob, header, ciphertext: utf8('ciphertext') },
    { op: 'ack', msgId: ID },
  ]);
  assert.equal(d.bufferedBytes, 0);
});

test('LOGIN takes the rest of the buffered bytes and splits user and token at the first colon', () => {
  assert.deepEqual(packetsOf(decodeOne(concat(hex('01'), utf8('alice:a.b:c'), sendHi))), [
    { op: 'login', data: concat(utf8('alice:a.b:c'), sendHi), user: utf8('alice'), token: concat(utf8('a.b:c'), sendHi) },
  ]);
  assert.deepEqual(packetsOf(decodeOne(concat(hex('01'), utf8('alice:')))), [{ op: 'login', data: utf8('alice:'), user: utf8('alice'), token: new Uint8Array(0) }]);
});

test('a lone LOGIN opcode waits for login data instead of logging in an empty user', () => {
  const d = new V1Decoder();
  d.push(hex('01'));
  assert.deepEqual(d.next(), { kind: 'need_more' });
  d.push(utf8('bob'));
  assert.deepEqual(packetsOf(drain(d)), [{ op: 'login', data: bob, user: bob, token: null }]);
});

test('a login containing a NUL byte decodes (the session answers it; it is never silently dropped)', () => {
  const data = concat(utf8('al'), hex('00'), utf8('ice'));
  assert.deepEqual(packetsOf(decodeOne(concat(hex('01'), data))), [{ op: 'login', data, user: data, token: null }]);
});

test('a login with an empty user is refused with empty_user; over 256 bytes with user_too_long', () => {
  assert.deepEqual(errorOf(decodeOne(concat(hex('01'), utf8(':token')))), { code: 'empty_user', skip: 7, fatal: false, opcode: 0x01 });
  const long = new Uint8Array(V1_MAX_USER_BYTES + 1).fill(0x61);
  assert.deepEqual(errorOf(decodeOne(concat(hex('01'), long, utf8(':t')))), { code: 'user_too_long', skip: 1 + long.length + 2, fatal: false, opcode: 0x01 });
  const exact = long.subarray(1);
  assert.equal(packetsOf(decodeOne(concat(hex('01'), exact)))[0]!.op, 'login');
});

test('SEND_SEQ carries its u64 sequence number exactly, as a bigint', () => {
  const max = (1n << 64n) - 1n;
  assert.deepEqual(packetsOf(decodeOne(enc.encodeSendSeqPacket(bob, max, utf8('m')))), [{ op: 'send_seq', target: bob, seq: max, msg: utf8('m') }]);
});

test('a decoded packet owns its bytes: reusing the pushed chunk afterwards does not change it', () => {
  const chunk = Buffer.from(concat(sendHi, sendHi.subarray(0, 4)));
  const d = new V1Decoder();
  d.push(chunk);
  const [first] = packetsOf(drain(d));
  chunk.fill(0); // the transport reuses its read buffer after need_more
  d.push(sendHi.subarray(4));
  const [second] = packetsOf(drain(d));
  for (const p of [first, second]) {
    assert.deepEqual(p, { op: 'send', target: bob, msg: utf8('hi') });
    assert.equal(Object.getPrototypeOf((p as { target: Uint8Array }).target), Uint8Array.prototype, 'a plain Uint8Array, not a Buffer view');
  }
});

// ---------------------------------------------------------------------------------------------
// Refusals

test('a target over 256 bytes is refused with target_too_long and the stream resynchronises', () => {
  const bad = enc.encodeSendPacket(new Uint8Array(V1_MAX_TARGET_BYTES + 1).fill(0x62), utf8('hi'));
  const results = decodeOne(concat(bad, sendHi));
  assert.deepEqual(errorOf(results), { code: 'target_too_long', skip: bad.length, fatal: false, opcode: 0x02 });
  assert.deepEqual(packetsOf(results.slice(1)), [{ op: 'send', target: bob, msg: utf8('hi') }]);
  const exact = enc.encodeSendPacket(new Uint8Array(V1_MAX_TARGET_BYTES).fill(0x62), utf8('hi'));
  assert.equal(packetsOf(decodeOne(exact))[0]!.op, 'send', 'a target of exactly 256 bytes is legal');
});

test('an over-limit packet is skipped as soon as its length is known, including bytes that arrive later', () => {
  const bad = enc.encodeCborMsgPacket(bob, new Uint8Array(V1_MAX_CBOR_MSG_BYTES + 1));
  const d = new V1Decoder();
  d.push(bad.subarray(0, 10)); // opcode, target and clen have arrived
  assert.deepEqual(errorOf(drain(d)), { code: 'payload_too_large', skip: bad.length, fatal: false, opcode: 0x10 });
  assert.equal(d.bufferedBytes, 0);
  d.push(bad.subarray(10, 100_000));
  assert.deepEqual(drain(d), []);
  d.push(concat(bad.subarray(100_000), sendHi));
  assert.deepEqual(packetsOf(drain(d)), [{ op: 'send', target: bob, msg: utf8('hi') }]);
});

test('a BATCH_SEND blob over 1 MiB is refused with payload_too_large and never buffered', () => {
  const d = new V1Decoder();
  const head = concat(hex('04 00 03'), bob, hex('00 10 00 01')); // blen = 1 MiB + 1
  d.push(head);
  assert.deepEqual(errorOf(drain(d)), { code: 'payload_too_large', skip: head.length + V1_MAX_BATCH_BLOB_BYTES + 1, fatal: false, opcode: 0x04 });
  for (let sent = 0; sent <= V1_MAX_BATCH_BLOB_BYTES; sent += 65_536) {
    d.push(new Uint8Array(Math.min(65_536, V1_MAX_BATCH_BLOB_BYTES + 1 - sent)));
    assert.deepEqual(drain(d), []);
    assert.equal(d.bufferedBytes, 0);
  }
  d.push(sendHi);
  assert.deepEqual(packetsOf(drain(d)).map((p) => p.op), ['send']);
});

test('a batch whose items overrun the blob is refused with bad_batch', () => {
  const bytes = concat(hex('04 00 03'), bob, hex('00 00 00 04 00 05 61 62'));
  assert.deepEqual(errorOf(decodeOne(concat(bytes, sendHi))), { code: 'bad_batch', skip: bytes.length, fatal: false, opcode: 0x04 });
  const dangling = concat(hex('04 00 03'), bob, hex('00 00 00 01 00'));
  assert.equal(errorOf(decodeOne(dangling)).code, 'bad_batch');
});

test('a batch of 1000 items decodes and one of 1001 items is refused with batch_too_many_items', () => {
  const items = Array.from({ length: V1_MAX_BATCH_ITEMS }, (_, i) => utf8(String(i)));
  const [p] = packetsOf(decodeOne(enc.encodeBatchSendPacket(bob, items)));
  assert.ok(p?.op === 'batch_send');
  assert.deepEqual(p.items, items);
  const tooMany = enc.encodeBatchSendPacket(bob, [...items, utf8('x')]);
  assert.deepEqual(errorOf(decodeOne(tooMany)), { code: 'batch_too_many_items', skip: tooMany.length, fatal: false, opcode: 0x04 });
});

test('unknown opcode answers unknown_opcode, fatally, and keeps answering it', () => {
  const d = new V1Decoder();
  d.push(concat(sendHi, hex('06 00 01 02'), sendHi));
  const results = drain(d);
  assert.equal(packetsOf(results.slice(0, 1))[0]!.op, 'send');
  assert.deepEqual(errorOf(results, 1), { code: 'unknown_opcode', skip: null, fatal: true, opcode: 0x06 });
  d.push(sendHi);
  assert.deepEqual(d.next(), results[1]);
  assert.equal(d.bufferedBytes, 0);
});

test('each length limit of §2 is refused with its own code', () => {
  const over = (n: number) => new Uint8Array(n + 1);
  const cases: Array<[Uint8Array, string]> = [
    [enc.encodeGetStatusPacket(over(V1_MAX_TARGET_BYTES)), 'target_too_long'],
    [enc.encodeTypingPacket(over(V1_MAX_TARGET_BYTES), true), 'target_too_long'],
    [enc.encodeFetchPrekeysPacket(over(V1_MAX_USER_BYTES)), 'user_too_long'],
    [enc.encodeE2eeMsgPacket(over(256), header, utf8('c')), 'recipient_too_long'],
    [enc.encodeE2eeMsgPacket(bob, over(V1_MAX_E2EE_HEADER_BYTES), utf8('c')), 'header_too_large'],
    [enc.encodeE2eeMsgPacket(bob, header, over(64 * 1024)), 'payload_too_large'],
    [enc.encodeGroupCreatePacket(over(256)), 'name_too_long'],
    [enc.encodeGroupLeavePacket(over(256)), 'gid_too_long'],
    [enc.encodeGroupMsgPacket(over(256), header, utf8('c')), 'gid_too_long'],
    [enc.encodeGroupMsgPacket(utf8('g'), over(V1_MAX_E2EE_HEADER_BYTES), utf8('c')), 'header_too_large'],
    [enc.encodeSenderKeyDistPacket(utf8('g'), over(V1_MAX_KEYDATA_BYTES)), 'payload_too_large'],
    [enc.encodeUploadPrekeysPacket(over(V1_MAX_PREKEYS_BLOB_BYTES)), 'payload_too_large'],
    [enc.encodeReadReceiptPacket(over(V1_MAX_RECEIPT_MSG_ID_BYTES), bob), 'msg_id_too_long'],
    [enc.encodeReadReceiptPacket(ID, over(256)), 'sender_too_long'],
  ];
  for (const [bytes, code] of cases) {
    const results = decodeOne(concat(bytes, sendHi));
    assert.deepEqual(errorOf(results), { code, skip: bytes.length, fatal: false, opcode: bytes[0] }, code);
    assert.equal(packetsOf(results.slice(1))[0]!.op, 'send', `${code}: the next packet still decodes`);
  }
});

test('the decoder leaves CBOR content unread; malformed CBOR in a CBOR_MSG is refused bad_cbor by the content check', () => {
  for (const cbor of [hex(''), hex('a1 61'), hex('a1 00 00 00'), hex('ff'), hex('a1 00 f0'), hex('a1 00 1c'), hex('a1 00 5f 01 ff')]) {
    const results = decodeOne(concat(enc.encodeCborMsgPacket(bob, cbor), sendHi));
    const [p, next] = packetsOf(results);
    assert.deepEqual(p, { op: 'cbor_msg', target: bob, cbor }, toHex(cbor));
    assert.equal(checkCborContent(cbor), 'bad_cbor', toHex(cbor));
    assert.equal(next!.op, 'send');
  }
});

test('a CBOR_MSG holding an array instead of a map, or such a header, is refused cbor_not_map by the content check', () => {
  assert.equal(checkCborContent(encodeCbor([1, 2])), 'cbor_not_map');
  assert.equal(checkCborContent(encodeCbor('x')), 'cbor_not_map');
  assert.equal(checkCborContent(hex('a1 01')), 'bad_cbor');
  const [e] = packetsOf(decodeOne(enc.encodeE2eeMsgPacket(bob, encodeCbor('x'), utf8('c'))));
  assert.deepEqual(e, { op: 'e2ee_msg', recipient: bob, header: encodeCbor('x'), ciphertext: utf8('c') });
});

test('input held beyond the cap while a header is still incomplete is a fatal input_buffer_overflow', () => {
  const d = new V1Decoder({ inputBufferCap: 1000 });
  // An E2EE_MSG whose 65535-byte recipient is over its limit: the decoder needs hlen and clen,
  // which come after the recipient, before it knows how much to skip.
  d.push(concat(hex('23 ff ff'), new Uint8Array(2000)));
  assert.deepEqual(errorOf(drain(d)), { code: 'input_buffer_overflow', skip: null, fatal: true, opcode: null });
});

test('a caller that pushes without draining is stopped at the cap', () => {
  const d = new V1Decoder({ inputBufferCap: 100 });
  d.push(sendHi.subarray(0, 5));
  assert.deepEqual(d.next(), { kind: 'need_more' });
  for (let i = 0; i < 30; i++) d.push(sendHi);
  const results = drain(d);
  assert.deepEqual(results.at(-1), { kind: 'error', code: 'input_buffer_overflow', skip: null, fatal: true, opcode: null });
});

test('the largest legal BATCH_SEND arriving in 64 KiB segments decodes under the default 1 MiB cap', () => {
  const items: Uint8Array[] = [];
  let blob = 0;
  while (blob + 2 + 2000 <= V1_MAX_BATCH_BLOB_BYTES) {
    items.push(new Uint8Array(2000).fill(items.length & 0xff));
    blob += 2002;
  }
  items.push(new Uint8Array(V1_MAX_BATCH_BLOB_BYTES - blob - 2));
  const bytes = enc.encodeBatchSendPacket(new Uint8Array(V1_MAX_TARGET_BYTES).fill(0x74), items);
  assert.ok(bytes.length > V1_INPUT_BUFFER_CAP_DEFAULT);
  const d = new V1Decoder();
  const got: V1DecodeResult[] = [];
  for (let o = 0; o < bytes.length; o += 65_536) {
    d.push(bytes.subarray(o, o + 65_536));
    got.push(...drain(d));
  }
  const [p] = packetsOf(got);
  assert.ok(p?.op === 'batch_send');
  assert.equal(p.items.length, items.length);
  assert.deepEqual(p.items.at(-1), items.at(-1));
});

// ---------------------------------------------------------------------------------------------
// CBOR (§2 UPLOAD_PREKEYS, §3)

test('UPLOAD_PREKEYS with byte-string map keys reads exactly like text keys', () => {
  // Same map as `uploadCbor`, written with byte-string keys the way the original server did.
  const byteKeyed = hex(
    'a5' +
      '4c 6964656e746974795f6b6579 5820' + '01'.repeat(32) +
      '4d 7369676e65645f707265 6b6579 5820' + '02'.repeat(32) +
      '57 7369676e65645f707265 6b65795f7369676e6174757265 5840' + '03'.repeat(64) +
      '50 6f6e655f74696d655f707265 6b657973 82 5820' + '04'.repeat(32) + '5820' + '05'.repeat(32) +
      '57 7369676e65645f707265 6b65795f74696d657374616d70 1b 0000018bcfe5687b',
  );
  const [p] = packetsOf(decodeOne(enc.encodeUploadPrekeysPacket(byteKeyed)));
  assert.ok(p?.op === 'upload_prekeys');
  assert.deepEqual(readPrekeyUpload(p.cbor), { ok: true, upload });
  const map = decodeCborMap(p.cbor);
  assert.ok(map.ok);
  assert.deepEqual([...map.map.keys()], ['identity_key', 'signed_prekey', 'signed_prekey_signature', 'one_time_prekeys', 'signed_prekey_timestamp']);
});

test('UPLOAD_PREKEYS with a wrong-sized key reads as a typed refusal for the PREKEY_RESPONSE error', () => {
  const base = prekeyUploadMap(upload) as { readonly [key: string]: CborEncodable };
  const [p] = packetsOf(decodeOne(enc.encodeUploadPrekeysPacket(encodeCbor({ ...base, identity_key: keyOf(31, 1) }))));
  assert.ok(p?.op === 'upload_prekeys');
  assert.deepEqual(readPrekeyUpload(p.cbor), { ok: false, code: 'bad_identity_key' });
  const [q] = packetsOf(decodeOne(enc.encodeUploadPrekeysPacket(encodeCbor({ ...base, signed_prekey_timestamp: 1.5 }))));
  assert.ok(q?.op === 'upload_prekeys');
  assert.deepEqual(readPrekeyUpload(q.cbor), { ok: false, code: 'bad_signed_prekey_timestamp' });
  assert.deepEqual(readPrekeyUpload(hex('a1 61')), { ok: false, code: 'bad_cbor' });
});

test('indefinite-length maps, arrays, text and byte strings are accepted', () => {
  // {_ "k": [_ 1, 2], (_ "a", "b"): (_ h'01', h'02')}
  const bytes = hex('bf 61 6b 9f 01 02 ff 7f 61 61 61 62 ff 5f 41 01 41 02 ff ff');
  assert.deepEqual(decodeCborMap(bytes), { ok: true, map: new Map<unknown, unknown>([['k', [1, 2]], ['ab', hex('01 02')]]) });
});

test('tags are ignored in the decoded view, so shared-reference tags cannot build cycles', () => {
  // {0: 28([29(0)])} would decode with cbor-x's tag support as an array containing itself.
  assert.deepEqual(decodeCborMap(hex('a1 00 d8 1c 81 d8 1d 00')), { ok: true, map: new Map<unknown, unknown>([[0, [0]]]) });
  // A bignum tag over a large byte string stays a byte string (no quadratic bigint build).
  const big = concat(hex('a1 00 c2 5a 00 01 00 00'), new Uint8Array(65_536).fill(0xff));
  const decoded = decodeCborMap(big);
  assert.ok(decoded.ok);
  assert.equal((decoded.map.get(0) as Uint8Array).length, 65_536);
});

test('nesting deeper than V1_MAX_CBOR_DEPTH is bad_cbor, not a stack overflow', () => {
  const nested = (depth: number) => concat(hex('a1 00'), new Uint8Array(depth - 1).fill(0x81), hex('00'));
  assert.ok(decodeCborMap(nested(V1_MAX_CBOR_DEPTH)).ok);
  assert.deepEqual(decodeCborMap(nested(V1_MAX_CBOR_DEPTH + 1)), { ok: false, code: 'bad_cbor' });
  assert.deepEqual(decodeCborMap(nested(200_000)), { ok: false, code: 'bad_cbor' });
});

test('decoded maps are Maps: keys like __proto__ and constructor are plain entries', () => {
  const decoded = decodeCborMap(encodeCbor(JSON.parse('{"__proto__": 1, "constructor": 2}') as { [k: string]: number }));
  assert.ok(decoded.ok);
  const map: CborMap = decoded.map;
  assert.equal(map.get('__proto__'), 1);
  assert.equal(map.get('constructor'), 2);
  assert.equal(map.get('toString'), undefined);
});
