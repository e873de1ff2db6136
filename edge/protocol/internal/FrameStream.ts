// The per-connection input buffer behind both v1 decoders: pushed chunks in, whole frames out to
// a frame parser; it waits on incomplete frames, drops refused ones (bytes still to come too) and
// enforces the input cap. Also the shared length-prefix layout walker. No I/O, never throws.
//
// Buffering. A pushed chunk is lent, not copied: frames are parsed straight out of it. When a
// frame is incomplete, the decoder copies the unconsumed tail into its own growable buffer
// (with a read offset, compacted in place) and appends later chunks there until that buffer is
// drained; then it lends again. So whole-frame segments cost no buffering copy, and a frame
// split over segments is copied once. Contract: keep a pushed chunk unchanged until `next()`
// answers need_more or a fatal error (the natural "push, then drain" loop; a transport whose
// read buffer is reused after the callback, as uWebSockets.js's is, must drain in the callback).
//
// Cap. The cap bounds the bytes held while waiting. Bytes of one frame whose total length is
// known and legal may exceed it (the protocol limits bound those), so the largest legal packet
// always fits; anything else over the cap (undecodable backlog, an endless header) is fatal.
// A strict cap makes no such exception (a connection before login may send nothing longer than
// a LOGIN). The held buffer grows to what it must hold (at most the cap, or the frame being
// assembled), never by doubling past that.
import type { V1DecodeError, V1NeedMore } from '../V1Packets.js';

/** What a parser reports besides its return value; reset before each call. */
export interface ParseOut {
  /** Frame parsed: its length. Refused: its total length, or -1 when unknown (fatal). */
  size: number;
  /** Incomplete: the frame's total length once known, else 0. */
  total: number;
  /** Refused: the stable reason. */
  code: string;
  /** The opcode byte the parser looked at. */
  opcode: number;
  /** True when the frame is refused. */
  bad: boolean;
}

/**
 * Parses one frame at `src[start]` (with `end > start`). Returns the result value and sets
 * `out.size`; or returns null and either sets `out.bad` (refused) or leaves it false (incomplete).
 */
export type FrameParser<R> = (src: Uint8Array, start: number, end: number, out: ParseOut) => R | null;

export const NEED_MORE: V1NeedMore = Object.freeze({ kind: 'need_more' });

const EMPTY = new Uint8Array(0);
/** One ParseOut for every stream: a parse is synchronous and reads it only within `next`. */
const sharedOut: ParseOut = { size: 0, total: 0, code: '', opcode: 0, bad: false };
/** An own buffer larger than this is released once drained, so one big packet does not pin memory. */
const RELEASE_ABOVE_BYTES = 64 * 1024;
const MIN_OWN_BYTES = 4096;

export class FrameStream<R, Code extends string> {
  private own: Uint8Array = EMPTY;
  private ownStart = 0;
  private ownEnd = 0;
  private lent: Uint8Array | null = null;
  private lentPos = 0;
  private discardLeft = 0;
  private pendingTotal = 0;
  private overflowed = false;
  private failure: V1DecodeError<Code> | null = null;

  constructor(
    private readonly parse: FrameParser<R>,
    private cap: number,
    private readonly overflowCode: Code,
    private strict = false,
  ) {}

  /** Change the cap (and whether a legal frame may exceed it); applies from the next push. */
  setCap(cap: number, strict: boolean): void {
    this.cap = cap;
    this.strict = strict;
  }

  /** Bytes the held buffer occupies (its capacity, not what it holds). */
  get heldCapacity(): number {
    return this.own.length;
  }

  /** Bytes that may be held: the cap, or the frame being assembled when it is legal and the cap is not strict. */
  private limit(): number {
    return this.strict ? this.cap : Math.max(this.cap, this.pendingTotal);
  }

  /** Bytes received and not yet consumed (held or lent). */
  get bufferedBytes(): number {
    return this.ownEnd - this.ownStart + (this.lent === null ? 0 : this.lent.length - this.lentPos);
  }

  push(bytes: Uint8Array): void {
    if (this.failure !== null || this.overflowed || bytes.length === 0) return;
    let from = 0;
    if (this.discardLeft > 0) {
      from = Math.min(this.discardLeft, bytes.length);
      this.discardLeft -= from;
      if (from === bytes.length) return;
    }
    if (this.lent !== null) this.absorbLent(); // pushed again without draining
    const held = this.ownEnd - this.ownStart;
    if (held === 0) {
      this.lent = bytes;
      this.lentPos = from;
      return;
    }
    // Checked before appending: a chunk may complete a legal frame and start the next one.
    // A strict cap admits no such exception: nothing beyond it is ever copied in.
    if (held > this.limit() || (this.strict && held + bytes.length - from > this.cap)) {
      this.overflowed = true;
      this.own = EMPTY;
      this.ownStart = 0;
      this.ownEnd = 0;
      return;
    }
    this.append(bytes, from);
  }

  next(): R | V1NeedMore | V1DecodeError<Code> {
    if (this.failure !== null) return this.failure;
    if (this.overflowed) return this.fail(this.overflowCode, null);
    let src: Uint8Array;
    let start: number;
    let end: number;
    if (this.ownEnd > this.ownStart) {
      src = this.own;
      start = this.ownStart;
      end = this.ownEnd;
    } else if (this.lent !== null) {
      src = this.lent;
      start = this.lentPos;
      end = src.length;
    } else {
      this.pendingTotal = 0;
      return NEED_MORE;
    }
    const out = sharedOut;
    out.size = 0;
    out.total = 0;
    out.code = '';
    out.opcode = src[start]!;
    out.bad = false;
    const result = this.parse(src, start, end, out);
    if (result !== null) {
      this.pendingTotal = 0;
      this.consume(out.size);
      return result;
    }
    if (out.bad) {
      if (out.size < 0) return this.fail(out.code as Code, out.opcode);
      this.pendingTotal = 0;
      const available = end - start;
      if (out.size <= available) {
        this.consume(out.size);
      } else {
        this.consume(available);
        this.discardLeft = out.size - available;
      }
      return { kind: 'error', code: out.code as Code, skip: out.size, fatal: false, opcode: out.opcode };
    }
    this.pendingTotal = out.total;
    if (src === this.lent) {
      if (this.strict && end - start > this.cap) return this.fail(this.overflowCode, null);
      this.absorbLent();
    }
    if (this.ownEnd - this.ownStart > this.limit()) return this.fail(this.overflowCode, null);
    return NEED_MORE;
  }

  private consume(n: number): void {
    if (this.ownEnd > this.ownStart) {
      this.ownStart += n;
      if (this.ownStart === this.ownEnd) {
        this.ownStart = 0;
        this.ownEnd = 0;
        if (this.own.length > RELEASE_ABOVE_BYTES) this.own = EMPTY;
      }
    } else {
      this.lentPos += n;
      if (this.lentPos === this.lent!.length) this.lent = null;
    }
  }

  /** Copies the unconsumed tail of the lent chunk into the own buffer (which is empty). */
  private absorbLent(): void {
    const lent = this.lent!;
    this.lent = null;
    this.append(lent, this.lentPos);
  }

  private append(bytes: Uint8Array, from: number): void {
    const extra = bytes.length - from;
    if (extra === 0) return;
    const held = this.ownEnd - this.ownStart;
    if (this.own.length - this.ownEnd < extra) {
      if (held + extra <= this.own.length) {
        this.own.copyWithin(0, this.ownStart, this.ownEnd);
      } else {
        // Doubling keeps appends cheap, but never past what may be held: the frame being
        // assembled when its length is known, else the cap.
        const ceiling = Math.max(held + extra, this.limit());
        const grown = new Uint8Array(Math.min(Math.max(held + extra, this.own.length * 2, MIN_OWN_BYTES), ceiling));
        grown.set(this.own.subarray(this.ownStart, this.ownEnd));
        this.own = grown;
      }
      this.ownStart = 0;
      this.ownEnd = held;
    }
    this.own.set(from === 0 ? bytes : bytes.subarray(from), this.ownEnd);
    this.ownEnd += extra;
  }

  private fail(code: Code, opcode: number | null): V1DecodeError<Code> {
    this.failure = { kind: 'error', code, skip: null, fatal: true, opcode };
    this.own = EMPTY;
    this.ownStart = 0;
    this.ownEnd = 0;
    this.lent = null;
    return this.failure;
  }
}

// ---------------------------------------------------------------------------------------------
// Layouts: a frame is its opcode followed by fields, each either fixed-size or a big-endian
// u16/u32 length followed by that many bytes.

export interface LayoutField {
  /** Bytes of the length prefix (2 or 4), or 0 for a fixed-size field. */
  readonly width: 0 | 2 | 4;
  /** The fixed size (width 0) or the largest legal length. */
  readonly max: number;
  /** The refusal code when the length is over `max`. */
  readonly code: string;
}
export type Layout = readonly LayoutField[];

export function fixedField(size: number): LayoutField {
  return { width: 0, max: size, code: '' };
}
export function u16Field(max: number, code: string): LayoutField {
  return { width: 2, max, code };
}
export function u32Field(max: number, code: string): LayoutField {
  return { width: 4, max, code };
}

/** Offsets (from the frame start) and lengths of the fields found by the last `walkLayout`. */
export const fieldAt = new Float64Array(8);
export const fieldLen = new Float64Array(8);

/**
 * Walks `layout` over the frame at `src[start]` (its opcode). Returns true when the frame is
 * complete and legal (`out.size` = its length, fields in `fieldAt`/`fieldLen`). Returns false
 * with `out.bad` set when a length is over its limit (`out.size` = the frame's total length,
 * known because every length field has arrived), or with `out.bad` false when more bytes are
 * needed (`out.total` = the total length once every length field has arrived).
 */
export function walkLayout(src: Uint8Array, start: number, end: number, layout: Layout, out: ParseOut): boolean {
  let p = start + 1;
  let badCode = '';
  for (let i = 0; i < layout.length; i++) {
    const field = layout[i]!;
    let len: number;
    if (field.width === 0) {
      len = field.max;
    } else {
      if (end - p < field.width) return false; // a length field has not arrived: total unknown
      len = field.width === 2 ? (src[p]! << 8) | src[p + 1]! : readU32(src, p);
      p += field.width;
      if (len > field.max && badCode === '') badCode = field.code;
    }
    fieldAt[i] = p - start;
    fieldLen[i] = len;
    p += len;
  }
  const total = p - start;
  if (badCode !== '') {
    out.bad = true;
    out.code = badCode;
    out.size = total;
    return false;
  }
  if (total > end - start) {
    out.total = total;
    return false;
  }
  out.size = total;
  return true;
}

export function readU32(b: Uint8Array, p: number): number {
  return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

export function readU64(b: Uint8Array, p: number): bigint {
  return (BigInt(readU32(b, p)) << 32n) | BigInt(readU32(b, p + 4));
}

/** Copies `size` bytes at `start` into a fresh, exactly sized, plain Uint8Array. */
export function copyOut(src: Uint8Array, start: number, size: number): Uint8Array {
  const owned = new Uint8Array(size);
  owned.set(src.subarray(start, start + size));
  return owned;
}

/** The view of field `i` of the last walk inside `frame` (a copy starting at the opcode). */
export function field(frame: Uint8Array, i: number): Uint8Array {
  const at = fieldAt[i]!;
  return frame.subarray(at, at + fieldLen[i]!);
}
