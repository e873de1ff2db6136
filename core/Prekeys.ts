/**
 * The key directory's records, protocol-neutral: a prekey upload as a client sends it (already
 * shape-checked by the edge that decoded it) and the bundle a fetch hands out. The server
 * never sees private keys or plaintext; it checks the signed prekey's Ed25519 signature.
 */

/** A well-shaped upload. Byte arrays are the client's keys. */
export interface PrekeyUpload {
  readonly identityKey: Uint8Array;
  readonly signedPrekey: Uint8Array;
  readonly signedPrekeySignature: Uint8Array;
  /** Empty when the client sent none. */
  readonly oneTimePrekeys: readonly Uint8Array[];
  /** Unix milliseconds; null when the client sent none (the directory uses its clock). */
  readonly signedPrekeyTimestamp: number | null;
}

/** The bundle a fetch answers with. */
export interface PrekeyBundle {
  readonly identityKey: Uint8Array;
  readonly signedPrekey: Uint8Array;
  readonly signedPrekeySignature: Uint8Array;
  readonly signedPrekeyTimestamp: number;
  readonly oneTimePrekey: Uint8Array | null;
  readonly oneTimePrekeyIndex: number | null;
  readonly prekeysRemaining: number;
  /** No one-time prekey was left: the client must fall back to the signed prekey. */
  readonly spkFallbackMode: boolean;
}
