/**
 * The E2EE key directory: each user's prekey bundle (identity key, signed prekey with its
 * Ed25519 signature, checked on upload) and pool of one-time prekeys. One process owns it
 * and is the only writer, so a fetch consumes a one-time prekey exactly once; the reply is
 * sent only after the consumption (or the upload) is durable. When the pool is empty a fetch
 * falls back to the signed prekey (`spk_fallback_mode`). The server never sees plaintext.
 *
 * Tables: `prekeys` (user) → bundle record; `otks` (user, index) → 32-byte key.
 */
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody } from '../runtime/ProcessContext.js';
import type { StorageEngine, StorageOp } from '../runtime/Env.js';
import type { PrekeyBundle, PrekeyUpload } from '../edge/protocol/V1Prekeys.js';
import { ed25519Verify } from './Ed25519.js';
import { userBytes, type UserKey } from './UserId.js';

/** Below this many one-time prekeys the pool is reported low. */
export const PREKEY_LOW_WATER = 20;
/** Most one-time prekeys a user may hold. */
export const MAX_ONE_TIME_PREKEYS = 1000;

export type KeyDirectoryRequest =
  | { t: 'upload'; user: UserKey; upload: PrekeyUpload; replyTo: Pid }
  | { t: 'fetch'; target: UserKey; replyTo: Pid };

export type KeyDirectoryReply =
  | { t: 'prekeys'; status: 'ok' }
  | { t: 'prekeys'; status: 'not_found' }
  | { t: 'prekeys'; status: 'error'; reason: string }
  | { t: 'prekeys'; status: 'bundle'; bundle: PrekeyBundle };

interface Stored {
  identityKey: Uint8Array;
  signedPrekey: Uint8Array;
  signature: Uint8Array;
  timestamp: number;
  /** One-time prekeys not yet handed out, by ascending index (kept in memory once loaded). */
  pool: Array<{ i: number; k: Uint8Array }>;
  nextIndex: number;
}

const PREKEYS = 'prekeys';
const OTKS = 'otks';

function encodeBundle(s: Stored): Uint8Array {
  const out = new Uint8Array(32 + 32 + 64 + 8 + 8);
  out.set(s.identityKey, 0);
  out.set(s.signedPrekey, 32);
  out.set(s.signature, 64);
  const v = new DataView(out.buffer);
  v.setFloat64(128, s.timestamp);
  v.setFloat64(136, s.nextIndex);
  return out;
}

function decodeBundle(b: Uint8Array): Omit<Stored, 'pool'> {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    identityKey: b.slice(0, 32),
    signedPrekey: b.slice(32, 64),
    signature: b.slice(64, 128),
    timestamp: v.getFloat64(128),
    nextIndex: v.getFloat64(136),
  };
}

export function keyDirectory(storage: StorageEngine): ProcessBody {
  return (ctx) => {
    const bundles = storage.table(PREKEYS);
    const otks = storage.table(OTKS);
    const cache = new Map<UserKey, Stored | null>();

    const load = (user: UserKey): Stored | null => {
      const hit = cache.get(user);
      if (hit !== undefined) return hit;
      const raw = bundles.get([userBytes(user)]);
      if (raw === undefined) {
        cache.set(user, null);
        return null;
      }
      const pool = otks.getRange({ prefix: [userBytes(user)] }).map((e) => ({ i: e.key[1] as number, k: e.value }));
      const s: Stored = { ...decodeBundle(raw), pool };
      cache.set(user, s);
      return s;
    };

    const reply = (to: Pid, r: KeyDirectoryReply) => ctx.send(to, r);

    const upload = (m: Extract<KeyDirectoryRequest, { t: 'upload' }>): void => {
      const u = m.upload;
      if (!ed25519Verify(u.identityKey, u.signedPrekey, u.signedPrekeySignature)) {
        reply(m.replyTo, { t: 'prekeys', status: 'error', reason: 'bad_signature' });
        return;
      }
      const ub = userBytes(m.user);
      const prev = load(m.user);
      const ops: StorageOp[] = [];
      let pool = prev?.pool ?? [];
      let next = prev?.nextIndex ?? 0;
      if (prev !== null && !bytesEqual(prev.identityKey, u.identityKey)) {
        // A new identity invalidates every one-time prekey of the old one.
        for (const o of pool) ops.push({ type: 'remove', table: OTKS, key: [ub, o.i] });
        pool = [];
      }
      if (pool.length + u.oneTimePrekeys.length > MAX_ONE_TIME_PREKEYS) {
        reply(m.replyTo, { t: 'prekeys', status: 'error', reason: 'too_many_prekeys' });
        return;
      }
      pool = [...pool];
      for (const k of u.oneTimePrekeys) {
        ops.push({ type: 'put', table: OTKS, key: [ub, next], value: k });
        pool.push({ i: next++, k });
      }
      const s: Stored = {
        identityKey: u.identityKey,
        signedPrekey: u.signedPrekey,
        signature: u.signedPrekeySignature,
        timestamp: u.signedPrekeyTimestamp ?? ctx.env.clock.wallMs(),
        pool,
        nextIndex: next,
      };
      ops.push({ type: 'put', table: PREKEYS, key: [ub], value: encodeBundle(s) });
      cache.set(m.user, s);
      void storage.batch(ops).then((w) => reply(m.replyTo, w.ok ? { t: 'prekeys', status: 'ok' } : { t: 'prekeys', status: 'error', reason: 'storage_failed' }));
    };

    const fetch = (m: Extract<KeyDirectoryRequest, { t: 'fetch' }>): void => {
      const s = load(m.target);
      if (s === null) {
        reply(m.replyTo, { t: 'prekeys', status: 'not_found' });
        return;
      }
      const taken = s.pool.shift();
      const base = {
        identityKey: s.identityKey,
        signedPrekey: s.signedPrekey,
        signedPrekeySignature: s.signature,
        signedPrekeyTimestamp: s.timestamp,
        prekeysRemaining: s.pool.length,
      };
      if (taken === undefined) {
        reply(m.replyTo, { t: 'prekeys', status: 'bundle', bundle: { ...base, oneTimePrekey: null, oneTimePrekeyIndex: null, spkFallbackMode: true } });
        return;
      }
      if (s.pool.length < PREKEY_LOW_WATER) ctx.env.log.debug({ remaining: s.pool.length }, 'one-time prekey pool low');
      // Handed out only once its removal is durable: a crash can never give it out twice.
      void otks.remove([userBytes(m.target), taken.i]).then((w) => {
        if (!w.ok) {
          reply(m.replyTo, { t: 'prekeys', status: 'error', reason: 'storage_failed' });
          return;
        }
        reply(m.replyTo, { t: 'prekeys', status: 'bundle', bundle: { ...base, oneTimePrekey: taken.k, oneTimePrekeyIndex: taken.i, spkFallbackMode: false } });
      });
    };

    return (raw) => {
      const m = raw as KeyDirectoryRequest;
      if (m.t === 'upload') upload(m);
      else if (m.t === 'fetch') fetch(m);
    };
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
