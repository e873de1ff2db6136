/**
 * The deterministic workload the mailbox crash tests share with their child process: which
 * user, payload and metadata message number `seq` has, and which blocks of five go through
 * `appendMany`. A stored entry can so be checked byte for byte against its sequence number.
 */
import type { MailboxMeta } from '../../core/OfflineMailbox.js';

/** Users with NUL bytes, invalid UTF-8 and plain text, to key on raw bytes. */
export const USERS: readonly Uint8Array[] = [
  new Uint8Array([0x61, 0x6c, 0x69, 0x63, 0x65]),
  new Uint8Array([0x00]),
  new Uint8Array([0x00, 0x00, 0x01]),
  new Uint8Array([0xff, 0xfe, 0x00, 0x80]),
  new Uint8Array([0xc3, 0x28]),
];

export const BLOCK = 5;

export function userOf(seq: number): Uint8Array {
  return USERS[seq % USERS.length]!;
}

/** Blocks of BLOCK messages where block % 4 === 3 are written with one appendMany. */
export function isBatchBlock(block: number): boolean {
  return block % 4 === 3;
}

/** 100–199 bytes: the sequence number (8 bytes big-endian), then bytes derived from it. */
export function payloadOf(seq: number): Uint8Array {
  const len = 100 + (seq * 37) % 100;
  const out = new Uint8Array(len);
  new DataView(out.buffer).setBigUint64(0, BigInt(seq));
  let x = (seq * 2654435761) >>> 0;
  for (let i = 8; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function seqOf(payload: Uint8Array): number {
  return Number(new DataView(payload.buffer, payload.byteOffset, payload.length).getBigUint64(0));
}

export function metaOf(seq: number): Required<MailboxMeta> {
  return { sender: new Uint8Array([0x73, seq & 0xff, 0x00]), sentAtMs: 1_700_000_000_000 + seq, kind: seq % 256 };
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

export function unhex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
