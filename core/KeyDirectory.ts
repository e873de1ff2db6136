/**
 * The E2EE key directory: each user's prekey bundle (identity key, signed prekey with its
 * Ed25519 signature, checked on upload) and pool of one-time prekeys. A GenServer that owns it
 * and is its only writer, so a fetch consumes a one-time prekey exactly once; the answer is
 * sent only after the consumption (or the upload) is durable. When the pool is empty a fetch
 * falls back to the signed prekey (`spkFallbackMode`). The server never sees plaintext.
 * Requests arrive as casts and are answered to `replyTo` with their `tag` (connections answer
 * their clients in request order); a fetch's answer names the user it is about.
 *
 * Memory: bundles read from storage are cached, at most STATE_CACHE_ENTRIES, least recently
 * used first out, but never one with a write in flight (storage may not show that write yet,
 * and a prekey must never be handed out twice); a lookup of an unknown user costs nothing.
 *
 * Tables: `prekeys` (user) → bundle record; `otks` (user, index) → 32-byte key.
 */
import * as GenServer from '../actors/GenServer.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessContext } from '../runtime/ProcessContext.js';
import type { StorageEngine, StorageOp } from '../runtime/Env.js';
import { STATE_CACHE_ENTRIES } from './defaults.js';
import { ed25519Verify } from './Ed25519.js';
import { LruCache } from './LruCache.js';
import type { PrekeyBundle, PrekeyUpload } from './Prekeys.js';
import { userBytes, type UserKey } from './UserId.js';

/** Below this many one-time prekeys the pool is reported low. */
export const PREKEY_LOW_WATER = 20;
/** Most one-time prekeys a user may hold. */
export const MAX_ONE_TIME_PREKEYS = 1000;
/** Registered name of the key directory server. */
export const KEYS_NAME = 'key_directory';

export type KeyDirectoryRequest =
  | { t: 'upload'; user: UserKey; upload: PrekeyUpload; replyTo: Pid; tag: number }
  | { t: 'fetch'; target: UserKey; replyTo: Pid; tag: number };

export type KeyDirectoryReply =
  | { t: 'prekeys'; tag: number; status: 'ok' }
  | { t: 'prekeys'; tag: number; status: 'not_found'; user: UserKey }
  | { t: 'prekeys'; tag: number; status: 'error'; reason: 'bad_signature' | 'too_many_prekeys' | 'storage_failed' }
  | { t: 'prekeys'; tag: number; status: 'bundle'; user: UserKey; bundle: PrekeyBundle };

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

/** Start the key directory (registered as `name`, default KEYS_NAME) linked to `ctx` (its supervisor). */
export function startKeyDirectory(ctx: ProcessContext, storage: StorageEngine, name: string = KEYS_NAME): Promise<GenServer.StartResult> {
  return GenServer.startLink(ctx, keyDirectoryBehaviour, storage, { name, label: 'KeyDirectory' });
}

class Directory {
  readonly bundles;
  readonly otks;
  private readonly cache = new LruCache<UserKey, Stored>(STATE_CACHE_ENTRIES);
  /** Records with writes in flight and how many: never read back from storage meanwhile. */
  private readonly writing = new Map<UserKey, { s: Stored; n: number }>();

  constructor(readonly storage: StorageEngine) {
    this.bundles = storage.table(PREKEYS);
    this.otks = storage.table(OTKS);
  }

  load(user: UserKey): Stored | null {
    const w = this.writing.get(user);
    if (w !== undefined) return w.s;
    const hit = this.cache.get(user);
    if (hit !== undefined) return hit;
    const raw = this.bundles.get([userBytes(user)]);
    if (raw === undefined) return null; // a miss is not remembered: it must cost nothing
    const pool = this.otks.getRange({ prefix: [userBytes(user)] }).map((e) => ({ i: e.key[1] as number, k: e.value }));
    const s: Stored = { ...decodeBundle(raw), pool };
    this.cache.set(user, s);
    return s;
  }

  /** Issue `ops` for `user`'s record `s` (already changed in memory); `done` gets the outcome once durable. */
  write(user: UserKey, s: Stored, ops: StorageOp[], done: (ok: boolean) => void): void {
    this.cache.set(user, s);
    const w = this.writing.get(user) ?? { s, n: 0 };
    w.s = s;
    w.n++;
    this.writing.set(user, w);
    void this.storage.batch(ops).then((r) => {
      if (--w.n === 0) this.writing.delete(user);
      // A failed write leaves memory ahead of the disk: read it again from storage next time.
      if (!r.ok) this.cache.delete(user);
      done(r.ok);
    });
  }
}

const keyDirectoryBehaviour: GenServer.Behaviour<Directory, StorageEngine, never, never, KeyDirectoryRequest> = {
  init: (storage) => ({ state: new Directory(storage) }),
  handleCast: (m, d, ctx) => {
    if (m.t === 'upload') upload(d, ctx, m);
    else fetch(d, ctx, m);
    return { noreply: true, state: d };
  },
};

function upload(d: Directory, ctx: ProcessContext, m: Extract<KeyDirectoryRequest, { t: 'upload' }>): void {
  const reply = (r: KeyDirectoryReply) => ctx.send(m.replyTo, r);
  const u = m.upload;
  if (!ed25519Verify(u.identityKey, u.signedPrekey, u.signedPrekeySignature)) return reply({ t: 'prekeys', tag: m.tag, status: 'error', reason: 'bad_signature' });
  const ub = userBytes(m.user);
  const prev = d.load(m.user);
  const ops: StorageOp[] = [];
  let pool = prev?.pool ?? [];
  let next = prev?.nextIndex ?? 0;
  if (prev !== null && !bytesEqual(prev.identityKey, u.identityKey)) {
    // A new identity invalidates every one-time prekey of the old one.
    for (const o of pool) ops.push({ type: 'remove', table: OTKS, key: [ub, o.i] });
    pool = [];
  }
  if (pool.length + u.oneTimePrekeys.length > MAX_ONE_TIME_PREKEYS) return reply({ t: 'prekeys', tag: m.tag, status: 'error', reason: 'too_many_prekeys' });
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
  d.write(m.user, s, ops, (ok) => reply(ok ? { t: 'prekeys', tag: m.tag, status: 'ok' } : { t: 'prekeys', tag: m.tag, status: 'error', reason: 'storage_failed' }));
}

function fetch(d: Directory, ctx: ProcessContext, m: Extract<KeyDirectoryRequest, { t: 'fetch' }>): void {
  const reply = (r: KeyDirectoryReply) => ctx.send(m.replyTo, r);
  const s = d.load(m.target);
  if (s === null) return reply({ t: 'prekeys', tag: m.tag, status: 'not_found', user: m.target });
  const taken = s.pool.shift();
  const base = {
    identityKey: s.identityKey,
    signedPrekey: s.signedPrekey,
    signedPrekeySignature: s.signature,
    signedPrekeyTimestamp: s.timestamp,
    prekeysRemaining: s.pool.length,
  };
  if (taken === undefined) {
    return reply({ t: 'prekeys', tag: m.tag, status: 'bundle', user: m.target, bundle: { ...base, oneTimePrekey: null, oneTimePrekeyIndex: null, spkFallbackMode: true } });
  }
  if (s.pool.length < PREKEY_LOW_WATER) ctx.env.log.debug({ remaining: s.pool.length }, 'one-time prekey pool low');
  // Handed out only once its removal is durable: a crash can never give it out twice.
  d.write(m.target, s, [{ type: 'remove', table: OTKS, key: [userBytes(m.target), taken.i] }], (ok) => {
    if (!ok) return reply({ t: 'prekeys', tag: m.tag, status: 'error', reason: 'storage_failed' });
    reply({ t: 'prekeys', tag: m.tag, status: 'bundle', user: m.target, bundle: { ...base, oneTimePrekey: taken.k, oneTimePrekeyIndex: taken.i, spkFallbackMode: false } });
  });
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
