// The CBOR maps of the v1 key directory (§2 0x20/0x21, §3 PREKEY_RESPONSE): the shape check of
// an upload, the bundle/status maps the server answers with, and their client-side parse. Shape
// only (the key directory verifies the Ed25519 signature); a refusal is a value, not a throw.
import { cborId, type CborEncodable, type CborMap, type CborValue } from './Cbor.js';
import { V1_PREKEY_KEY_BYTES, V1_PREKEY_SIGNATURE_BYTES } from './v1Limits.js';
import type { PrekeyBundle, PrekeyUpload } from '../../core/Prekeys.js';

export type { PrekeyBundle, PrekeyUpload };

/** Stable reasons for `{status:"error", reason}` replies to a mis-shaped upload. */
export type PrekeyUploadRefusal =
  | 'bad_identity_key'
  | 'bad_signed_prekey'
  | 'bad_signed_prekey_signature'
  | 'bad_one_time_prekeys'
  | 'bad_signed_prekey_timestamp';

export type PrekeyUploadParse = { readonly ok: true; readonly upload: PrekeyUpload } | { readonly ok: false; readonly reason: PrekeyUploadRefusal };

/** What a PREKEY_RESPONSE map says, as read by a client. */
export type PrekeyResponse =
  | { readonly status: 'ok' }
  | { readonly status: 'not_found' }
  | { readonly status: 'error'; readonly reason: string }
  | { readonly status: 'bundle'; readonly bundle: PrekeyBundle }
  | { readonly status: 'unrecognised' };

/** Checks the shape of an UPLOAD_PREKEYS map (keys already normalised to strings). */
export function parsePrekeyUpload(map: CborMap): PrekeyUploadParse {
  const identityKey = map.get('identity_key');
  if (!isBytes(identityKey, V1_PREKEY_KEY_BYTES)) return refuse('bad_identity_key');
  const signedPrekey = map.get('signed_prekey');
  if (!isBytes(signedPrekey, V1_PREKEY_KEY_BYTES)) return refuse('bad_signed_prekey');
  const signature = map.get('signed_prekey_signature');
  if (!isBytes(signature, V1_PREKEY_SIGNATURE_BYTES)) return refuse('bad_signed_prekey_signature');
  const otks = map.get('one_time_prekeys');
  let oneTimePrekeys: readonly Uint8Array[] = [];
  if (otks !== undefined && otks !== null) {
    if (!Array.isArray(otks)) return refuse('bad_one_time_prekeys');
    for (const key of otks as readonly CborValue[]) if (!isBytes(key, V1_PREKEY_KEY_BYTES)) return refuse('bad_one_time_prekeys');
    oneTimePrekeys = otks as readonly Uint8Array[];
  }
  const ts = map.get('signed_prekey_timestamp');
  let signedPrekeyTimestamp: number | null = null;
  if (ts !== undefined && ts !== null) {
    const n = nonNegativeInteger(ts);
    if (n === null) return refuse('bad_signed_prekey_timestamp');
    signedPrekeyTimestamp = n;
  }
  return { ok: true, upload: { identityKey, signedPrekey, signedPrekeySignature: signature, oneTimePrekeys, signedPrekeyTimestamp } };
}

/** The UPLOAD_PREKEYS map a client sends (for the test client and the load generator). */
export function prekeyUploadMap(upload: PrekeyUpload): CborEncodable {
  const map: Record<string, CborEncodable> = {
    identity_key: upload.identityKey,
    signed_prekey: upload.signedPrekey,
    signed_prekey_signature: upload.signedPrekeySignature,
    one_time_prekeys: upload.oneTimePrekeys,
  };
  if (upload.signedPrekeyTimestamp !== null) map.signed_prekey_timestamp = upload.signedPrekeyTimestamp;
  return map;
}

/** The bundle map of a FETCH_PREKEYS reply: exactly the keys listed in §3. */
export function prekeyBundleMap(bundle: PrekeyBundle, user?: Uint8Array): CborEncodable {
  return {
    ...(user !== undefined ? { user: cborId(user) } : {}),
    identity_key: bundle.identityKey,
    signed_prekey: bundle.signedPrekey,
    signed_prekey_signature: bundle.signedPrekeySignature,
    signed_prekey_timestamp: bundle.signedPrekeyTimestamp,
    one_time_prekey: bundle.oneTimePrekey,
    one_time_prekey_index: bundle.oneTimePrekeyIndex,
    prekeys_remaining: bundle.prekeysRemaining,
    spk_fallback_mode: bundle.spkFallbackMode,
  };
}

/** `{status:"not_found", user}`: no bundle for `user` (the key says which fetch this answers). */
export function prekeyNotFoundMap(user: Uint8Array): CborEncodable {
  return { status: 'not_found', user: cborId(user) };
}

/** `{status:"ok"}`, `{status:"not_found"}` and `{status:"error", reason}`. */
export function prekeyStatusMap(status: 'ok' | 'not_found'): CborEncodable;
export function prekeyStatusMap(status: 'error', reason: string): CborEncodable;
export function prekeyStatusMap(status: 'ok' | 'not_found' | 'error', reason?: string): CborEncodable {
  return status === 'error' ? { status, reason: reason ?? '' } : { status };
}

/** Reads a PREKEY_RESPONSE map (client side). */
export function parsePrekeyResponse(map: CborMap): PrekeyResponse {
  const status = map.get('status');
  if (status === 'ok') return { status: 'ok' };
  if (status === 'not_found') return { status: 'not_found' };
  if (status === 'error') {
    const reason = map.get('reason');
    return { status: 'error', reason: typeof reason === 'string' ? reason : '' };
  }
  const identityKey = map.get('identity_key');
  const signedPrekey = map.get('signed_prekey');
  const signedPrekeySignature = map.get('signed_prekey_signature');
  const signedPrekeyTimestamp = nonNegativeInteger(map.get('signed_prekey_timestamp'));
  const otk = map.get('one_time_prekey');
  const otkIndex = map.get('one_time_prekey_index');
  const prekeysRemaining = nonNegativeInteger(map.get('prekeys_remaining'));
  const spkFallbackMode = map.get('spk_fallback_mode');
  const oneTimePrekeyIndex = otkIndex === null ? null : nonNegativeInteger(otkIndex);
  if (
    !isBytes(identityKey, V1_PREKEY_KEY_BYTES) ||
    !isBytes(signedPrekey, V1_PREKEY_KEY_BYTES) ||
    !isBytes(signedPrekeySignature, V1_PREKEY_SIGNATURE_BYTES) ||
    signedPrekeyTimestamp === null ||
    !(otk === null || isBytes(otk, V1_PREKEY_KEY_BYTES)) ||
    (otkIndex !== null && oneTimePrekeyIndex === null) ||
    prekeysRemaining === null ||
    typeof spkFallbackMode !== 'boolean'
  ) {
    return { status: 'unrecognised' };
  }
  return {
    status: 'bundle',
    bundle: { identityKey, signedPrekey, signedPrekeySignature, signedPrekeyTimestamp, oneTimePrekey: otk, oneTimePrekeyIndex, prekeysRemaining, spkFallbackMode },
  };
}

function isBytes(value: CborValue, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length === length;
}

/** A CBOR integer as a safe non-negative number (8-byte integers decode as bigint). */
function nonNegativeInteger(value: CborValue): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value === 'bigint') return value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : null;
  return null;
}

function refuse(reason: PrekeyUploadRefusal): PrekeyUploadParse {
  return { ok: false, reason };
}
