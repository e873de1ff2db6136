/**
 * What a shard group's stream (`IRIS_<C>_G<g>`) holds and how it is written: its entries (a
 * batch of storage operations, an owner's marker, a hand-off), their msgpack encoding, the
 * Msg-Id chain `<epoch>.<n>` that fences a stale owner, and the stream specs of the shard and
 * control streams. Pure codecs and names; it never appends or reads anything itself.
 *
 * Entries, each one JetStream message:
 * - `ops`: the storage operations an owner issued in one turn (table names without the group
 *   prefix), applied on every replica in one transaction;
 * - `marker`: the first entry of an owner's epoch, `<epoch>.0`: after it no entry of an older
 *   epoch is accepted;
 * - `handoff`: the last entry of an owner handing the group to `to`, who takes over from there.
 *
 * On core NATS (`iris.<c>.grp.<g>.entry`) the owner publishes each acknowledged entry with its
 * sequence, and, when idle, a head beat with its last sequence, so standbys notice a lost one.
 */
import { decodeValue, encodeValue } from '../../runtime/Envelope.js';
import type { StorageKey, StorageKeyPart, StorageOp, StreamSpec } from '../../runtime/Env.js';
import type { ClusterNames } from './ClusterNames.js';
import { SHARD_STREAM_DUPLICATE_WINDOW_MS, SHARD_ENTRY_MAX_BYTES } from '../defaults.js';

export type ShardEntry =
  | { readonly t: 'ops'; readonly ops: readonly StorageOp[] }
  | { readonly t: 'marker'; readonly epoch: number; readonly owner: string }
  | { readonly t: 'handoff'; readonly epoch: number; readonly to: string };

/** An entry as it is in the stream: its sequence, Msg-Id and body. */
export interface LoggedEntry {
  readonly seq: number;
  readonly msgId: string;
  readonly entry: ShardEntry;
}

const T_OPS = 0;
const T_MARKER = 1;
const T_HANDOFF = 2;
const OP_PUT = 0;
const OP_REMOVE = 1;

export function encodeEntry(e: ShardEntry): Uint8Array {
  switch (e.t) {
    case 'ops':
      return encodeValue([T_OPS, e.ops.map((op) => (op.type === 'put' ? [OP_PUT, op.table, op.key, op.value] : [OP_REMOVE, op.table, op.key]))]);
    case 'marker':
      return encodeValue([T_MARKER, e.epoch, e.owner]);
    case 'handoff':
      return encodeValue([T_HANDOFF, e.epoch, e.to]);
  }
}

/** The entry `bytes` encode, or null when they are not one (a corrupt stream: never skipped). */
export function decodeEntry(bytes: Uint8Array): ShardEntry | null {
  let v: unknown;
  try {
    v = decodeValue(bytes);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  switch (v[0]) {
    case T_OPS: {
      if (!Array.isArray(v[1])) return null;
      const ops: StorageOp[] = [];
      for (const raw of v[1] as unknown[]) {
        if (!Array.isArray(raw) || typeof raw[1] !== 'string' || !isStorageKey(raw[2])) return null;
        if (raw[0] === OP_PUT && raw[3] instanceof Uint8Array) ops.push({ type: 'put', table: raw[1], key: raw[2], value: raw[3] });
        else if (raw[0] === OP_REMOVE) ops.push({ type: 'remove', table: raw[1], key: raw[2] });
        else return null;
      }
      return { t: 'ops', ops };
    }
    case T_MARKER:
      return typeof v[1] === 'number' && typeof v[2] === 'string' ? { t: 'marker', epoch: v[1], owner: v[2] } : null;
    case T_HANDOFF:
      return typeof v[1] === 'number' && typeof v[2] === 'string' ? { t: 'handoff', epoch: v[1], to: v[2] } : null;
    default:
      return null;
  }
}

/** Whether a decoded value is a storage key tuple. */
export function isStorageKey(k: unknown): k is StorageKey {
  return Array.isArray(k) && k.length > 0 && k.every((p: StorageKeyPart) => typeof p === 'string' || typeof p === 'number' || p instanceof Uint8Array);
}

/** The Msg-Id of entry `n` of `epoch` (the marker is n = 0). */
export function entryMsgId(epoch: number, n: number): string {
  return `${epoch}.${n}`;
}

/** `<epoch>.<n>` parsed, or null. */
export function parseMsgId(id: string | null): { epoch: number; n: number } | null {
  if (id === null) return null;
  const m = /^(\d+)\.(\d+)$/.exec(id);
  return m === null ? null : { epoch: Number(m[1]), n: Number(m[2]) };
}

/** What the owner publishes to standbys on `iris.<c>.grp.<g>.entry`. */
export type ReplicationMessage = { readonly t: 'entry'; readonly seq: number; readonly msgId: string; readonly data: Uint8Array } | { readonly t: 'head'; readonly seq: number };

export function encodeReplication(m: ReplicationMessage): Uint8Array {
  return m.t === 'entry' ? encodeValue([0, m.seq, m.msgId, m.data]) : encodeValue([1, m.seq]);
}

export function decodeReplication(bytes: Uint8Array): ReplicationMessage | null {
  try {
    const v = decodeValue(bytes) as unknown[];
    if (!Array.isArray(v) || typeof v[1] !== 'number') return null;
    if (v[0] === 0 && typeof v[2] === 'string' && v[3] instanceof Uint8Array) return { t: 'entry', seq: v[1], msgId: v[2], data: v[3] };
    if (v[0] === 1) return { t: 'head', seq: v[1] };
    return null;
  } catch {
    return null;
  }
}

/** What a standby reports on `iris.<c>.grp.<g>.applied`: it applied (and fsync'd) up to `seq`. */
export interface AppliedReport {
  readonly node: string;
  readonly seq: number;
}

export function encodeApplied(r: AppliedReport): Uint8Array {
  return encodeValue([r.node, r.seq]);
}

export function decodeApplied(bytes: Uint8Array): AppliedReport | null {
  try {
    const v = decodeValue(bytes) as unknown[];
    return Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number' ? { node: v[0], seq: v[1] } : null;
  } catch {
    return null;
  }
}

/** The shard stream of `group`. */
export function shardStreamSpec(names: ClusterNames, group: number, replicas: number): StreamSpec {
  return { name: names.groupStream(group), subjects: [names.groupStreamSubject(group)], replicas, duplicateWindowMs: SHARD_STREAM_DUPLICATE_WINDOW_MS, maxEntryBytes: SHARD_ENTRY_MAX_BYTES };
}

/** The control stream. */
export function controlStreamSpec(names: ClusterNames, replicas: number): StreamSpec {
  return { name: names.ctlStream, subjects: [names.ctlSubjects], replicas, duplicateWindowMs: SHARD_STREAM_DUPLICATE_WINDOW_MS };
}
