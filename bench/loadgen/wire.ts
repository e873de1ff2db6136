/**
 * The load generator's lean v1 framing: the few client packets it sends (LOGIN, SEND, ACK)
 * written straight into output buffers, and a zero-copy scan of the server frames it can see.
 * It trades the project codec's checks and copies for speed; the codec stays the reference.
 */
import { V1ClientOp, V1ServerOp } from '../../edge/protocol/V1Packets.js';

/** LOGIN: `01, user[:token]` (no length: send it alone and wait for LOGIN_OK). */
export function loginPacket(user: Buffer, token: string | null): Buffer {
  const tokenBytes = token === null ? null : Buffer.from(token, 'latin1');
  const b = Buffer.allocUnsafe(1 + user.length + (tokenBytes === null ? 0 : 1 + tokenBytes.length));
  b[0] = V1ClientOp.LOGIN;
  user.copy(b, 1);
  if (tokenBytes !== null) {
    b[1 + user.length] = 0x3a;
    tokenBytes.copy(b, 2 + user.length);
  }
  return b;
}

/** The constant head of a SEND to `target` with a `msgBytes` payload: `02, tlen u16, target, mlen u16`. */
export function sendHeader(target: Buffer, msgBytes: number): Buffer {
  const b = Buffer.allocUnsafe(1 + 2 + target.length + 2);
  b[0] = V1ClientOp.SEND;
  b.writeUInt16BE(target.length, 1);
  target.copy(b, 3);
  b.writeUInt16BE(msgBytes, 3 + target.length);
  return b;
}

export const ACK_BYTES = 17;
export const ACK_OP = V1ClientOp.ACK;

/** What the scan found at one position. */
export const enum Frame {
  NeedMore,
  LoginOk,
  Reliable,
  RateLimited,
  Error,
  Other,
  AuthFailedText,
  RateLimitedText,
  Unknown,
}

/** Filled by scanFrame: the frame's total size and, for RELIABLE_MSG, where its id and payload sit. */
export interface Scan {
  size: number;
  idAt: number;
  idLen: number;
  msgAt: number;
  msgLen: number;
}

const AUTH_FAILED_LEN = 'AUTH_FAILED'.length;
const RATE_LIMITED_TEXT_LEN = 'RATE_LIMITED'.length;

/** Identify the server frame starting at `p` (bytes up to `end` are available). */
export function scanFrame(b: Buffer, p: number, end: number, out: Scan): Frame {
  const avail = end - p;
  switch (b[p]) {
    case V1ServerOp.RELIABLE_MSG: {
      if (avail < 3) return Frame.NeedMore;
      const idLen = b.readUInt16BE(p + 1);
      if (avail < 3 + idLen + 4) return Frame.NeedMore;
      const msgLen = b.readUInt32BE(p + 3 + idLen);
      const size = 7 + idLen + msgLen;
      if (avail < size) return Frame.NeedMore;
      out.size = size;
      out.idAt = p + 3;
      out.idLen = idLen;
      out.msgAt = p + 7 + idLen;
      out.msgLen = msgLen;
      return Frame.Reliable;
    }
    case V1ServerOp.LOGIN_OK:
      if (avail < 9) return Frame.NeedMore;
      out.size = 9;
      return Frame.LoginOk;
    case V1ServerOp.RATE_LIMITED:
      if (avail < 5) return Frame.NeedMore;
      out.size = 5;
      out.msgAt = p + 1;
      return Frame.RateLimited;
    case V1ServerOp.ERROR: {
      if (avail < 3) return Frame.NeedMore;
      const size = 3 + b.readUInt16BE(p + 1);
      if (avail < size) return Frame.NeedMore;
      out.size = size;
      out.msgAt = p + 3;
      out.msgLen = size - 3;
      return Frame.Error;
    }
    case V1ServerOp.STATUS: {
      if (avail < 3) return Frame.NeedMore;
      const size = 3 + b.readUInt16BE(p + 1) + 9;
      if (avail < size) return Frame.NeedMore;
      out.size = size;
      return Frame.Other;
    }
    case 0x41: // 'A': AUTH_FAILED
      if (avail < AUTH_FAILED_LEN) return Frame.NeedMore;
      out.size = AUTH_FAILED_LEN;
      return Frame.AuthFailedText;
    case 0x52: // 'R': RATE_LIMITED
      if (avail < RATE_LIMITED_TEXT_LEN) return Frame.NeedMore;
      out.size = RATE_LIMITED_TEXT_LEN;
      return Frame.RateLimitedText;
    default:
      return Frame.Unknown;
  }
}
