/**
 * Properties of the v1 codec (fast-check): every packet and frame round-trips; any way of
 * cutting or coalescing a byte stream decodes to the same results as one buffer; arbitrary or
 * mutated bytes never throw out of a decoder and only produce typed results; the CBOR guard
 * admits exactly what the CBOR decoder decodes. Runs are bounded to keep the file fast.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { V1Decoder } from '../../edge/protocol/V1Decoder.js';
import { V1ClientDecoder } from '../../edge/protocol/V1ClientDecoder.js';
import { encodeClientPacket, encodeServerFrame, groupHeaderWithSender } from '../../edge/protocol/V1Encoder.js';
import { cborId, checkCborMap, decodeCbor, decodeCborMap, encodeCbor, type CborEncodable, type CborValue } from '../../edge/protocol/Cbor.js';
import { prekeyUploadMap, type PrekeyUpload } from '../../edge/protocol/V1Prekeys.js';
import type { ClientPacket, ServerFrame, V1ClientDecodeResult, V1DecodeResult } from '../../edge/protocol/V1Packets.js';
import { V1_MAX_TARGET_BYTES } from '../../edge/protocol/v1Limits.js';
import { concat, drain, utf8 } from './v1Bytes.js';

const RUNS = { numRuns: 150 };

/** fc.record with an ordinary prototype, so values compare deep-equal to decoded packets. */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model).map((o) => ({ ...o }) as T);
}

// ---------------------------------------------------------------------------------------------
// CBOR values and the view the decoder gives of them

const U32_LIMIT = 2 ** 32;

const cborValue: fc.Arbitrary<CborEncodable> = fc.letrec<{ value: CborEncodable }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: -1000, max: 1000 }),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(1n << 64n) + 1n, max: (1n << 64n) - 1n }),
    fc.constantFrom(1.5, -2.25, 1e300),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
    fc.uint8Array({ maxLength: 12 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const cborMapValue = fc.dictionary(fc.string({ maxLength: 8 }), cborValue, { maxKeys: 5 });

/** What decoding `encodeCbor(value)` must give: objects as Maps, integers beyond 32 bits as bigint. */
function view(value: CborEncodable): CborValue {
  if (typeof value === 'number') return Number.isSafeInteger(value) && (value >= U32_LIMIT || value < -U32_LIMIT) ? BigInt(value) : value;
  if (typeof value === 'bigint') return value >= -BigInt(U32_LIMIT) && value < BigInt(U32_LIMIT) ? Number(value) : value;
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return (value as readonly CborEncodable[]).map(view);
  return new Map(Object.entries(value as { readonly [key: string]: CborEncodable }).map(([k, v]) => [k, view(v)]));
}

// ---------------------------------------------------------------------------------------------
// Client packets: arbitrary legal packets with the packet the decoder must produce

const bytes = (maxLength: number) => fc.uint8Array({ maxLength });
const id = fc.uint8Array({ maxLength: 24 });
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const noColon = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((u) => u.map((b) => (b === 0x3a ? 0x3b : b)));

const upload: fc.Arbitrary<PrekeyUpload> = rec({
  identityKey: key32,
  signedPrekey: key32,
  signedPrekeySignature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  oneTimePrekeys: fc.array(key32, { maxLength: 5 }),
  signedPrekeyTimestamp: fc.option(fc.maxSafeInteger().map(Math.abs), { nil: null }),
});

const headerBytes = cborMapValue.map((v) => encodeCbor(v));

/** Every client packet except LOGIN, which takes the rest of the buffer. */
const framedPacket: fc.Arbitrary<ClientPacket> = fc.oneof(
  rec({ op: fc.constant('send' as const), target: id, msg: bytes(300) }),
  rec({ op: fc.constant('ack' as const), msgId: fc.uint8Array({ minLength: 16, maxLength: 16 }) }),
  rec({ op: fc.constant('batch_send' as const), target: id, items: fc.array(bytes(20), { maxLength: 12 }) }),
  rec({ op: fc.constant('get_status' as const), target: id }),
  rec({ op: fc.constant('send_seq' as const), target: id, seq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), msg: bytes(40) }),
  cborMapValue.chain((value) => {
    const cbor = encodeCbor(value);
    return rec({ op: fc.constant('cbor_msg' as const), target: id, cbor: fc.constant(cbor) });
  }),
  upload.map((u): ClientPacket => ({ op: 'upload_prekeys', cbor: encodeCbor(prekeyUploadMap(u)) })),
  rec({ op: fc.constant('fetch_prekeys' as const), user: id }),
  rec({ op: fc.constant('e2ee_msg' as const), recipient: id, header: headerBytes, ciphertext: bytes(100) }),
  rec({ op: fc.constant('group_create' as const), name: id }),
  rec({ op: fc.constant('group_leave' as const), gid: id }),
  rec({ op: fc.constant('group_msg' as const), gid: id, header: headerBytes, ciphertext: bytes(100) }),
  rec({ op: fc.constant('group_roster' as const), gid: id }),
  rec({ op: fc.constant('sender_key_dist' as const), gid: id, keydata: bytes(100) }),
  rec({ op: fc.constant('typing_start' as const), target: id }),
  rec({ op: fc.constant('typing_stop' as const), target: id }),
  rec({ op: fc.constant('read_receipt' as const), msgId: bytes(64), originalSender: id }),
);

const loginPacket: fc.Arbitrary<ClientPacket> = fc.tuple(noColon, fc.option(bytes(60), { nil: null })).map(([user, token]) => ({
  op: 'login' as const,
  data: token === null ? user : concat(user, utf8(':'), token),
  user,
  token,
}));

/** A stream item: a legal packet, or a refused one with the error it must produce. */
type StreamItem = { readonly bytes: Uint8Array; readonly expected: V1DecodeResult };

const refusedPacket: fc.Arbitrary<StreamItem> = fc
  .tuple(fc.integer({ min: V1_MAX_TARGET_BYTES + 1, max: 400 }), bytes(30))
  .map(([targetLength, msg]) => {
    const b = encodeClientPacket({ op: 'send', target: new Uint8Array(targetLength), msg });
    return { bytes: b, expected: { kind: 'error', code: 'target_too_long', skip: b.length, fatal: false, opcode: 0x02 } };
  });

const streamItem: fc.Arbitrary<StreamItem> = fc.oneof(
  { weight: 6, arbitrary: framedPacket.map((p) => ({ bytes: encodeClientPacket(p), expected: { kind: 'packet', packet: p } as V1DecodeResult })) },
  { weight: 1, arbitrary: refusedPacket },
);

/** Cuts `whole` at the given points (taken modulo its length). */
function cut(whole: Uint8Array, points: readonly number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => (whole.length === 0 ? 0 : p % (whole.length + 1))))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...at, whole.length]) {
    chunks.push(whole.subarray(prev, p));
    prev = p;
  }
  return chunks;
}

function decodeChunks(chunks: readonly Uint8Array[], cap?: number): V1DecodeResult[] {
  const d = new V1Decoder(cap === undefined ? {} : { inputBufferCap: cap });
  const results: V1DecodeResult[] = [];
  for (const chunk of chunks) {
    if (endsFatally(results)) break;
    d.push(chunk);
    results.push(...drain(d));
  }
  return results;
}

function endsFatally(results: readonly (V1DecodeResult | V1ClientDecodeResult)[]): boolean {
  const last = results.at(-1);
  return last !== undefined && last.kind === 'error' && last.fatal;
}

test('every client packet round-trips: decode(encode(p)) is p and re-encodes to the same bytes', () => {
  fc.assert(
    fc.property(fc.oneof(framedPacket, loginPacket), (p) => {
      const b = encodeClientPacket(p);
      assert.deepEqual(decodeChunks([b]), [{ kind: 'packet', packet: p }]);
      assert.deepEqual(encodeClientPacket(p), b);
    }),
    RUNS,
  );
});

test('split and coalesced segments decode the same as one buffer, refusals included', () => {
  fc.assert(
    fc.property(fc.array(streamItem, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (items, points) => {
      const whole = concat(...items.map((i) => i.bytes));
      const expected = items.map((i) => i.expected);
      assert.deepEqual(decodeChunks([whole]), expected);
      assert.deepEqual(decodeChunks(cut(whole, points)), expected);
    }),
    RUNS,
  );
});

test('one byte at a time decodes the same as one buffer', () => {
  fc.assert(
    fc.property(fc.array(streamItem, { minLength: 1, maxLength: 4 }), (items) => {
      const whole = concat(...items.map((i) => i.bytes));
      assert.deepEqual(decodeChunks(Array.from(whole, (b) => Uint8Array.of(b))), items.map((i) => i.expected));
    }),
    { numRuns: 60 },
  );
});

// ---------------------------------------------------------------------------------------------
// Arbitrary input never throws

const V1_OPCODES = [0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x10, 0x20, 0x21, 0x23, 0x30, 0x32, 0x33, 0x35, 0x36, 0x70, 0x71, 0x74];

/** Bytes that look like v1 often enough to reach deep into the parsers. */
function hostileBytes(opcodes: readonly number[], valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
    .map(([b, edits]) => {
      const copy = Uint8Array.from(b);
      for (const [at, value] of edits) if (copy.length > 0) copy[at % copy.length] = value;
      return copy;
    });
  const opcodeLed = fc.tuple(fc.constantFrom(...opcodes), bytes(80)).map(([op, rest]) => concat(Uint8Array.of(op), rest));
  return fc.oneof(mutated, opcodeLed, bytes(200));
}

function assertTypedResults<R extends V1DecodeResult | V1ClientDecodeResult>(results: readonly R[]): void {
  for (const [i, r] of results.entries()) {
    if (r.kind === 'error') {
      assert.equal(typeof r.code, 'string');
      assert.match(r.code, /^[a-z_]+$/);
      if (r.fatal) {
        assert.equal(r.skip, null);
        assert.equal(i, results.length - 1, 'a fatal error ends the stream');
      } else {
        assert.ok(r.skip !== null && Number.isInteger(r.skip) && r.skip >= 1, `skip ${r.skip}`);
      }
    } else {
      assert.ok(r.kind === 'packet' || r.kind === 'frame', `unexpected result ${r.kind}`);
    }
  }
}

test('arbitrary bytes in random chunks never throw out of the decoder; every result is typed', () => {
  const input = fc.array(hostileBytes(V1_OPCODES, fc.array(streamItem, { maxLength: 3 }).map((items) => concat(...items.map((i) => i.bytes)))), {
    minLength: 1,
    maxLength: 4,
  });
  fc.assert(
    fc.property(input, fc.array(fc.nat(), { maxLength: 8 }), fc.option(fc.integer({ min: 1, max: 600 }), { nil: undefined }), (parts, points, cap) => {
      const whole = concat(...parts);
      const d = new V1Decoder(cap === undefined ? {} : { inputBufferCap: cap });
      const results: V1DecodeResult[] = [];
      for (const chunk of cut(whole, points)) {
        if (endsFatally(results)) break;
        d.push(chunk);
        results.push(...drain(d));
      }
      assertTypedResults(results);
      const last = results.at(-1);
      if (last?.kind === 'error' && last.fatal) assert.deepEqual(d.next(), last, 'a fatal error is sticky');
    }),
    { numRuns: 400 },
  );
});

// ---------------------------------------------------------------------------------------------
// Server frames and the client-side decoder

const asciiReason = fc.stringMatching(/^[a-z_]{1,40}$/);

const serverFrame: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.constant<ServerFrame>({ kind: 'login_ok' }),
  rec({ kind: fc.constant('reliable_msg' as const), msgId: bytes(64), msg: bytes(300) }),
  rec({ kind: fc.constant('status' as const), user: id, online: fc.boolean(), lastSeen: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  cborMapValue.map((v): ServerFrame => ({ kind: 'prekey_response', cbor: encodeCbor(v), map: view(v) as ReadonlyMap<CborValue, CborValue> })),
  rec({ kind: fc.constant('group_join' as const), gid: id, user: id }),
  fc.constant<ServerFrame>({ kind: 'group_leave_ok' }),
  fc.tuple(id, fc.array(id, { maxLength: 6 })).map(([gid, members]): ServerFrame => ({ kind: 'group_roster', gid, cbor: encodeCbor(members.map(cborId)), members })),
  rec({ kind: fc.constant('typing' as const), sender: id, typing: fc.boolean() }),
  rec({ kind: fc.constant('read_receipt_relay' as const), msgId: bytes(64), reader: id, timestampMs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  rec({ kind: fc.constant('error' as const), reason: asciiReason }),
  rec({ kind: fc.constant('rate_limited' as const), retryAfterMs: fc.integer({ min: 0, max: 0xffff_ffff }) }),
  fc.constant<ServerFrame>({ kind: 'auth_failed_text' }),
  fc.constant<ServerFrame>({ kind: 'rate_limited_text' }),
);

function decodeFrameChunks(chunks: readonly Uint8Array[]): V1ClientDecodeResult[] {
  const d = new V1ClientDecoder();
  const results: V1ClientDecodeResult[] = [];
  for (const chunk of chunks) {
    if (endsFatally(results)) break;
    d.push(chunk);
    results.push(...drain(d));
  }
  return results;
}

test('every server frame round-trips through the client decoder, whole or cut anywhere', () => {
  fc.assert(
    fc.property(fc.array(serverFrame, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, points) => {
      const whole = concat(...frames.map(encodeServerFrame));
      const expected = frames.map((frame) => ({ kind: 'frame', frame }));
      assert.deepEqual(decodeFrameChunks([whole]), expected);
      assert.deepEqual(decodeFrameChunks(cut(whole, points)), expected);
      const decoded = decodeFrameChunks([whole]).map((r) => (r.kind === 'frame' ? encodeServerFrame(r.frame) : new Uint8Array(0)));
      assert.deepEqual(concat(...decoded), whole, 're-encoding the decoded frames gives the same bytes');
    }),
    RUNS,
  );
});

test('arbitrary bytes never throw out of the client decoder; every result is typed', () => {
  const serverOpcodes = [0x03, 0x06, 0x10, 0x22, 0x31, 0x32, 0x35, 0x72, 0x75, 0xfe, 0xff, 0x41, 0x52];
  const valid = fc.array(serverFrame, { maxLength: 3 }).map((frames) => concat(...frames.map(encodeServerFrame)));
  fc.assert(
    fc.property(hostileBytes(serverOpcodes, valid), fc.array(fc.nat(), { maxLength: 8 }), (whole, points) => {
      assertTypedResults(decodeFrameChunks(cut(whole, points)));
    }),
    { numRuns: 400 },
  );
});

// ---------------------------------------------------------------------------------------------
// CBOR

test('CBOR values round-trip through encodeCbor and decodeCbor as their decoded view', () => {
  fc.assert(
    fc.property(cborValue, (value) => {
      assert.deepEqual(decodeCbor(encodeCbor(value)), { ok: true, value: view(value) });
    }),
    RUNS,
  );
});

/** CBOR-ish bytes: valid encodings, mutated, or built from heads that exercise tags and indefinite items. */
const cborish: fc.Arbitrary<Uint8Array> = fc.oneof(
  cborValue.map(encodeCbor),
  fc.tuple(cborMapValue.map(encodeCbor), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 })).map(([b, edits]) => {
    const copy = Uint8Array.from(b);
    for (const [at, value] of edits) copy[at % copy.length] = value;
    return copy;
  }),
  fc
    .array(fc.constantFrom(0xa1, 0xbf, 0x9f, 0x5f, 0x7f, 0xff, 0xc1, 0xd8, 0x1c, 0x41, 0x61, 0x62, 0x00, 0x01, 0x80, 0xa0, 0xf5, 0xf6, 0xf7, 0xf9, 0xf8, 0x18, 0x20), { maxLength: 16 })
    .map((a) => Uint8Array.from(a)),
  bytes(40),
);

test('arbitrary CBOR-ish bytes never throw, and the guard admits exactly what the decoder decodes', () => {
  fc.assert(
    fc.property(cborish, (b) => {
      const check = checkCborMap(b);
      const decoded = decodeCborMap(b);
      assert.equal(decoded.ok, check === 'ok');
      if (!decoded.ok) assert.equal(decoded.code, check);
      const any = decodeCbor(b);
      assert.equal(any.ok, check !== 'bad_cbor');
    }),
    { numRuns: 600 },
  );
});

test('stamping sender on a group header keeps every other entry and sets sender to the user', () => {
  fc.assert(
    fc.property(cborMapValue, id, (value, user) => {
      const edited = groupHeaderWithSender(encodeCbor(value), user);
      assert.ok(edited.ok);
      const decoded = decodeCborMap(edited.bytes);
      assert.ok(decoded.ok);
      const expected = new Map((view(value) as ReadonlyMap<CborValue, CborValue>).entries());
      expected.delete('sender');
      expected.set('sender', cborId(user));
      assert.deepEqual(decoded.map, expected);
    }),
    RUNS,
  );
});
