/**
 * Every error a client can see, as one typed union of stable codes, with what each means. A v1
 * client sees a code as the reason of an ERROR frame (0xFE), inside a PREKEY_RESPONSE
 * `{status: "error", reason}`, or as the plain text AUTH_FAILED / RATE_LIMITED at login (see
 * LOGIN_TEXT); v2 carries the same codes. Codes are snake_case ASCII and never change meaning;
 * docs/errors.md lists them for client developers (a test keeps the two in step).
 */
import type { AppendRefusal } from '../core/Inbox.js';
import type { GroupError } from '../core/Groups.js';
import type { V1DecodeErrorCode } from './protocol/V1Packets.js';
import type { PrekeyUploadRefusal } from './protocol/V1Prekeys.js';

/** Refusals decided by the edge itself. */
export type EdgeErrorCode =
  /** A request that needs a login came before one. */
  | 'not_logged_in'
  /** A second LOGIN on a logged-in connection. */
  | 'already_logged_in'
  /** No LOGIN within login_timeout_ms; the connection closes. */
  | 'login_timeout'
  /** A FETCH_PREKEYS of one target repeated beyond its per-minute allowance, or a group fan-out budget spent. */
  | 'rate_limited'
  /** The login token expired while the session was open; the connection closes. */
  | 'token_expired'
  /** The login token was revoked while the session was open; the connection closes. */
  | 'token_revoked'
  /** A request got no answer from its service within request_timeout_ms (it restarted, or is unreachable); send it again. */
  | 'request_timeout'
  /** In a cluster, the node sees fewer than a majority of the expected nodes (safe mode): writes are refused at once, nothing was done. */
  | 'cluster_unavailable'
  /**
   * The node is being drained (taken out of the cluster): stop sending, close this connection
   * and log in on another node. Everything the node read before the client closed is handled.
   */
  | 'node_draining';

/** The key directory's refusals (inside PREKEY_RESPONSE). */
export type KeyDirectoryErrorCode = 'bad_signature' | 'too_many_prekeys' | 'storage_failed' | PrekeyUploadRefusal;

export type ClientErrorCode = EdgeErrorCode | AppendRefusal | GroupError | KeyDirectoryErrorCode | V1DecodeErrorCode;

/** Every code, for the documentation check. */
export const CLIENT_ERROR_CODES: readonly ClientErrorCode[] = [
  'not_logged_in',
  'already_logged_in',
  'login_timeout',
  'rate_limited',
  'token_expired',
  'token_revoked',
  'request_timeout',
  'cluster_unavailable',
  'node_draining',
  'inbox_full',
  'storage_unavailable',
  'invalid_recipient',
  'not_member',
  'not_admin',
  'last_admin',
  'too_many_groups',
  'group_full',
  'already_member',
  'storage_failed',
  'bad_signature',
  'too_many_prekeys',
  'bad_identity_key',
  'bad_signed_prekey',
  'bad_signed_prekey_signature',
  'bad_one_time_prekeys',
  'bad_signed_prekey_timestamp',
  'unknown_opcode',
  'input_buffer_overflow',
  'empty_user',
  'user_too_long',
  'target_too_long',
  'recipient_too_long',
  'gid_too_long',
  'name_too_long',
  'msg_id_too_long',
  'sender_too_long',
  'header_too_large',
  'payload_too_large',
  'batch_too_many_items',
  'bad_batch',
  'bad_cbor',
  'cbor_not_map',
];

/** What a refused login sees (v1: plain text, then the connection closes). */
export const LOGIN_TEXT = {
  /** Bad, expired, revoked or missing token; a malformed login. */
  auth_failed: 'AUTH_FAILED',
  /** Too many failed logins for this account from this address, the node's connection cap, or the per-address connection rate. */
  rate_limited: 'RATE_LIMITED',
} as const;

/** The one shape of an expected failure the edge answers a client with. */
export interface Refusal {
  readonly ok: false;
  readonly code: ClientErrorCode;
}
