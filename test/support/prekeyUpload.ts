/**
 * An UPLOAD_PREKEYS packet with a fresh Ed25519 identity, a signed prekey (all 7s) signed by
 * it, and `oneTimePrekeys` one-time prekeys (key i filled with i + 1), for tests of the key
 * directory over the wire.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { encodeCbor } from '../../edge/protocol/Cbor.js';
import { encodeUploadPrekeysPacket } from '../../edge/protocol/V1Encoder.js';

export function prekeyUploadPacket(oneTimePrekeys: number): Uint8Array {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const identity = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
  const spk = new Uint8Array(32).fill(7);
  return encodeUploadPrekeysPacket(
    encodeCbor({
      identity_key: identity,
      signed_prekey: spk,
      signed_prekey_signature: new Uint8Array(sign(null, spk, privateKey)),
      signed_prekey_timestamp: 1_700_000_000_000,
      one_time_prekeys: Array.from({ length: oneTimePrekeys }, (_, i) => new Uint8Array(32).fill((i + 1) & 0xff)),
    }),
  );
}
