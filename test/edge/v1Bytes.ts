/**
 * Test helpers for the v1 codec tests: bytes from hex and text, and draining a decoder into
 * the list of results it produces up to need_more (or a fatal error).
 */
import type { V1ClientDecodeResult, V1DecodeResult } from '../../edge/protocol/V1Packets.js';

/** Bytes from hex, spaces allowed: `hex('02 00 03')`. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0) throw new Error(`odd hex: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Drainable<R> {
  next(): R;
}

/** Every result up to (excluding) need_more, or up to and including a fatal error. */
export function drain<R extends V1DecodeResult | V1ClientDecodeResult>(decoder: Drainable<R>, limit = 1_000_000): R[] {
  const results: R[] = [];
  for (let i = 0; i < limit; i++) {
    const r = decoder.next();
    if (r.kind === 'need_more') return results;
    results.push(r);
    if (r.kind === 'error' && r.fatal) return results;
  }
  throw new Error('decoder did not settle');
}
