// Every size limit of wire protocol v1 (protocol-v1.md §1–§3), named once. The codec, the
// connection layer and the tests read these constants; no other file repeats the numbers.
// Limits are inclusive: a field of exactly the limit is legal, one byte more is refused.

const KiB = 1024;
const MiB = 1024 * KiB;

/** LOGIN: the user part (before the first ':') is 1..256 bytes. */
export const V1_MAX_USER_BYTES = 256;
/** LOGIN: the token part (after the first ':') is at most 8 KiB (longer tokens are refused unread). */
export const V1_MAX_TOKEN_BYTES = 8 * KiB;
/**
 * The longest legal LOGIN: opcode, user, ':' and the longest token. Before login a connection
 * holds at most this many bytes of input.
 */
export const V1_MAX_LOGIN_BYTES = 1 + V1_MAX_USER_BYTES + 1 + V1_MAX_TOKEN_BYTES;
/** SEND, BATCH_SEND, GET_STATUS, SEND_SEQ, CBOR_MSG, TYPING: target ≤ 256 bytes. */
export const V1_MAX_TARGET_BYTES = 256;
/** E2EE_MSG recipient; same bound as any user id. */
export const V1_MAX_RECIPIENT_BYTES = V1_MAX_USER_BYTES;
/** Group ids (36-char UUID text in practice); bounded like user ids on every group opcode. */
export const V1_MAX_GROUP_ID_BYTES = 256;
/** GROUP_CREATE name. */
export const V1_MAX_GROUP_NAME_BYTES = 256;

/** BATCH_SEND: the blob is at most 1 MiB and holds at most 1000 items. */
export const V1_MAX_BATCH_BLOB_BYTES = 1 * MiB;
export const V1_MAX_BATCH_ITEMS = 1000;

/** CBOR_MSG: the CBOR map is at most 256 KiB. */
export const V1_MAX_CBOR_MSG_BYTES = 256 * KiB;
/** UPLOAD_PREKEYS: the CBOR map is at most 8 KiB. */
export const V1_MAX_PREKEYS_BLOB_BYTES = 8 * KiB;
/** E2EE_MSG and GROUP_MSG: the header CBOR map is at most 1 KiB. */
export const V1_MAX_E2EE_HEADER_BYTES = 1 * KiB;
/** E2EE_MSG and GROUP_MSG: the ciphertext is at most 64 KiB. */
export const V1_MAX_CIPHERTEXT_BYTES = 64 * KiB;
/** READ_RECEIPT: the acknowledged message id is at most 64 bytes. */
export const V1_MAX_RECEIPT_MSG_ID_BYTES = 64;
/** SENDER_KEY_DIST: the key data is at most 8 KiB. */
export const V1_MAX_KEYDATA_BYTES = 8 * KiB;

/** Message ids the server issues (RELIABLE_MSG) and the client echoes in ACK: exactly 16 bytes. */
export const V1_MESSAGE_ID_BYTES = 16;

/** Prekey material: X25519/Ed25519 public keys are 32 bytes, Ed25519 signatures 64 bytes. */
export const V1_PREKEY_KEY_BYTES = 32;
export const V1_PREKEY_SIGNATURE_BYTES = 64;

/** Default per-connection input buffer cap (bytes held while waiting for the rest of a packet). */
export const V1_INPUT_BUFFER_CAP_DEFAULT = 1 * MiB;

/**
 * Deepest CBOR nesting (arrays, maps and tags) the codec accepts. The protocol's maps are
 * flat; the bound keeps hostile input from exhausting the stack.
 */
export const V1_MAX_CBOR_DEPTH = 32;

/**
 * The largest legal client packet: a BATCH_SEND with a full target and a full blob
 * (opcode + tlen + target + blen + blob). A packet of known legal length is never refused by
 * the input buffer cap, so this is what one connection may hold at most while assembling it.
 */
export const V1_MAX_PACKET_BYTES = 1 + 2 + V1_MAX_TARGET_BYTES + 4 + V1_MAX_BATCH_BLOB_BYTES;

/**
 * Client side: the largest payload inside a RELIABLE_MSG. The biggest routed payload is a
 * CBOR_MSG map; E2EE_DELIVERY, GROUP_MSG and SENDER_KEY_DIST frames are all smaller.
 */
export const V1_MAX_DELIVERY_BYTES = V1_MAX_CBOR_MSG_BYTES;
/** Client side: the largest PREKEY_RESPONSE map. */
export const V1_MAX_PREKEY_RESPONSE_BYTES = V1_MAX_PREKEYS_BLOB_BYTES;
/** Client side: the largest GROUP_ROSTER member array (far above 256 ids of 256 bytes). */
export const V1_MAX_ROSTER_BYTES = 1 * MiB;
/** Client side: the longest ERROR reason accepted. */
export const V1_MAX_ERROR_REASON_BYTES = 256;
