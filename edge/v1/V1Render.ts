/**
 * How the v1 protocol shows the core's records to a client: a delivery is a RELIABLE_MSG whose
 * payload is the bytes the original protocol put there (the message itself, an E2EE_DELIVERY,
 * a GROUP_MSG with the true sender stamped into its header, a SENDER_KEY_DIST); a notice is a
 * bare frame (TYPING, READ_RECEIPT_RELAY). Byte-compatible with protocol-v1.md §3.
 */
import type { Delivery, Notice } from '../../core/Delivery.js';
import {
  encodeE2eeDeliveryFrame,
  encodeGroupMsgFrame,
  encodeReadReceiptRelayFrame,
  encodeReliableMsgFrameShortLived,
  encodeSenderKeyDistFrame,
  encodeTypingFrame,
  groupHeaderWithSender,
} from '../protocol/V1Encoder.js';

const encoder = new TextEncoder();

/** The payload of the RELIABLE_MSG that carries `rec`. */
export function v1Payload(rec: Delivery): Uint8Array {
  switch (rec.k) {
    case 'direct':
      return rec.body;
    case 'v1_payload':
      return rec.payload;
    case 'e2ee':
      return encodeE2eeDeliveryFrame(rec.from, rec.header, rec.ciphertext);
    case 'group': {
      // The header was checked to be a CBOR map when the sender's packet was read; should it
      // still not take the stamp, the sender is not claimed at all rather than mis-stamped.
      const h = groupHeaderWithSender(rec.header, rec.from);
      return encodeGroupMsgFrame(encoder.encode(rec.gid), h.ok ? h.bytes : rec.header, rec.ciphertext);
    }
    case 'sender_key':
      return encodeSenderKeyDistFrame(encoder.encode(rec.gid), rec.keydata);
  }
}

/**
 * The RELIABLE_MSG frame of a delivery. It may share a slab with other short-lived frames: it
 * is written at once and never kept (nothing is written twice on one connection).
 */
export function v1DeliveryFrame(id: Uint8Array, rec: Delivery): Uint8Array {
  return encodeReliableMsgFrameShortLived(id, v1Payload(rec));
}

/** The bare frame of a notice. */
export function v1NoticeFrame(rec: Notice): Uint8Array {
  switch (rec.k) {
    case 'typing':
      return encodeTypingFrame(rec.from, rec.on);
    case 'receipt':
      return encodeReadReceiptRelayFrame(rec.msgId, rec.from, Math.floor(rec.atMs));
    case 'v1_frame':
      return rec.frame;
  }
}
