/**
 * The CBOR inside v1 packets, read only once the packet has passed its sender's login and
 * budget checks (decoding an adversarial 256 KiB map costs milliseconds of CPU, so the decoder
 * keeps such content as bytes and the connection asks here when it may spend the work).
 */
import type { PrekeyUpload } from '../../core/Prekeys.js';
import { checkCborMap, decodeCborMap, type CborErrorCode } from './Cbor.js';
import { parsePrekeyUpload, type PrekeyUploadRefusal } from './V1Prekeys.js';

/** Whether `bytes` is one well-formed CBOR map (CBOR_MSG content, an E2EE or group header). */
export function checkCborContent(bytes: Uint8Array): 'ok' | CborErrorCode {
  return checkCborMap(bytes);
}

/** The upload an UPLOAD_PREKEYS map describes, or why it is refused. */
export function readPrekeyUpload(cbor: Uint8Array): { ok: true; upload: PrekeyUpload } | { ok: false; code: CborErrorCode | PrekeyUploadRefusal } {
  const decoded = decodeCborMap(cbor);
  if (!decoded.ok) return { ok: false, code: decoded.code };
  const u = parsePrekeyUpload(decoded.map);
  return u.ok ? { ok: true, upload: u.upload } : { ok: false, code: u.reason };
}
