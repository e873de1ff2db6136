/**
 * What a v1 decoder holds while a packet arrives in pieces: its own buffer grows to what it
 * must hold, the cap or the packet being assembled (whichever is larger, and never past the
 * cap when the cap is strict, as before login), never by doubling past it. A legal 1 MiB
 * BATCH_SEND arriving in 64 KiB segments costs its own size, not 2 MiB; a packet smaller than
 * the cap costs at most the cap; with a strict cap the decoder refuses the packet with a fatal
 * input_buffer_overflow instead of holding it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { V1Decoder } from '../../edge/protocol/V1Decoder.js';
import type { V1DecodeResult } from '../../edge/protocol/V1Packets.js';
import { encodeSendPacket } from '../../edge/protocol/V1Encoder.js';
import { V1_INPUT_BUFFER_CAP_DEFAULT, V1_MAX_BATCH_BLOB_BYTES, V1_MAX_LOGIN_BYTES } from '../../edge/protocol/v1Limits.js';
import { concat, drain, utf8 } from './v1Bytes.js';

const KiB = 1024;
const u16 = (n: number): Uint8Array => Uint8Array.of(n >>> 8, n & 0xff);
const u32 = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);

/** A complete BATCH_SEND to `target` with a blob of exactly `blobBytes` (items of up to 65,535 bytes). */
function batchSend(target: string, blobBytes: number): Uint8Array {
  const blob = new Uint8Array(blobBytes);
  for (let at = 0; at + 2 <= blob.length; at += 2 + 65_535) blob.set(u16(Math.min(65_535, blob.length - at - 2)), at);
  return concat(Uint8Array.of(0x04), u16(utf8(target).length), utf8(target), u32(blobBytes), blob);
}

/**
 * Feed `bytes` in fresh segments of `segment` bytes (as a socket hands them over), draining after
 * each; returns every result and the largest buffer the decoder held after any segment.
 */
function feed(d: V1Decoder, bytes: Uint8Array, segment: number): { results: V1DecodeResult[]; maxHeld: number } {
  const results: V1DecodeResult[] = [];
  let maxHeld = 0;
  for (let at = 0; at < bytes.length; at += segment) {
    d.push(bytes.slice(at, at + segment));
    maxHeld = Math.max(maxHeld, d.heldCapacity);
    results.push(...drain(d));
    maxHeld = Math.max(maxHeld, d.heldCapacity);
    if (results.some((r) => r.kind === 'error' && r.fatal)) break;
  }
  return { results, maxHeld };
}

test('a legal 1 MiB BATCH_SEND arriving in 64 KiB segments is held in a buffer of at most its own size (not doubled to 2 MiB), then decoded whole', () => {
  const packet = batchSend('bob', V1_MAX_BATCH_BLOB_BYTES);
  assert.ok(packet.length > V1_INPUT_BUFFER_CAP_DEFAULT, 'the packet is larger than the default cap');
  const d = new V1Decoder();
  const { results, maxHeld } = feed(d, packet, 64 * KiB);
  assert.deepEqual(
    results.map((r) => (r.kind === 'packet' ? r.packet.op : r.kind)),
    ['batch_send'],
  );
  assert.ok(maxHeld <= packet.length, `held ${maxHeld} bytes for a ${packet.length}-byte packet`);
  assert.equal(d.heldCapacity, 0, 'a large buffer is released once the packet is decoded');
});

test('a 60 KB SEND arriving in 1,000-byte segments under a 4 KiB cap is held in at most its own size', () => {
  const packet = encodeSendPacket(utf8('bob'), new Uint8Array(60_000).fill(7));
  const d = new V1Decoder({ inputBufferCap: 4 * KiB });
  const { results, maxHeld } = feed(d, packet, 1000);
  assert.deepEqual(
    results.map((r) => (r.kind === 'packet' ? r.packet.op : r.kind)),
    ['send'],
  );
  assert.ok(maxHeld <= packet.length, `held ${maxHeld} bytes for a ${packet.length}-byte packet`);
});

test('a packet smaller than the cap arriving in pieces is held in at most the cap', () => {
  const cap = 16 * KiB;
  const packet = encodeSendPacket(utf8('bob'), new Uint8Array(12_000).fill(7));
  const d = new V1Decoder({ inputBufferCap: cap });
  const { results, maxHeld } = feed(d, packet, 700);
  assert.equal(results.length, 1);
  assert.ok(maxHeld <= cap, `held ${maxHeld} bytes under a cap of ${cap}`);
});

for (const segment of [1000, 64 * KiB]) {
  test(`with the strict pre-login cap (${V1_MAX_LOGIN_BYTES} bytes) a 1 MiB BATCH_SEND in ${segment}-byte segments is refused input_buffer_overflow, holding no more than the cap`, () => {
    const d = new V1Decoder({ inputBufferCap: V1_MAX_LOGIN_BYTES, strictCap: true });
    const { results, maxHeld } = feed(d, batchSend('bob', V1_MAX_BATCH_BLOB_BYTES), segment);
    assert.deepEqual(results, [{ kind: 'error', code: 'input_buffer_overflow', skip: null, fatal: true, opcode: null }]);
    assert.ok(maxHeld <= V1_MAX_LOGIN_BYTES, `held ${maxHeld} bytes under a strict cap of ${V1_MAX_LOGIN_BYTES}`);
    assert.equal(d.heldCapacity, 0, 'nothing is held after the refusal');
  });
}
