/**
 * A snapshot of one shard group's local copy: every record of the group's tables (`meta` with its
 * applied position included) read in one synchronous turn — one read transaction, so the tables
 * and the applied sequence they reflect belong together — and how it travels between replicas.
 * A replica that cannot catch up from the shard stream (the entries after its copy were trimmed,
 * or it has no copy and the stream no longer starts at 1) asks a peer replica for one, checks it,
 * and installs it in one transaction (GroupStore.install); then it tails the stream from there.
 *
 * Transfer, request/reply on `iris.<c>.grp.<g>.snapshot.<node>` (ClusterNames), pulled by the
 * receiver one request at a time:
 * - `open` → the header: an id, the applied seq and Msg-Id, the number of chunks, their bytes and
 *   each chunk's hash32; or a refusal (no trusted copy here);
 * - `chunk <id> <i>` → chunk i (about SNAPSHOT_CHUNK_BYTES of records), or a refusal (dropped).
 * The receiver checks the count, each chunk's hash, that every record decodes, and that the
 * snapshot's own `meta` holds the applied position the header names, before it installs anything.
 * The sender drops a snapshot once its last chunk went out, or SNAPSHOT_HOLD_MS after its last
 * use (checked at the next request), and holds at most SNAPSHOT_HELD_MAX at once. Both sides keep a whole snapshot in memory while it travels (a group's size).
 *
 * It never serves a copy the sender has not seen continued by the stream, and never installs a
 * snapshot that failed a check.
 */
import { decodeValue, encodeValue } from '../../runtime/Envelope.js';
import type { ClusterTransport, StorageKey } from '../../runtime/Env.js';
import { SNAPSHOT_CHUNK_BYTES, SNAPSHOT_HELD_MAX, SNAPSHOT_HOLD_MS, SNAPSHOT_REQUEST_TIMEOUT_MS } from '../defaults.js';
import { hash32 } from '../HashRing.js';
import { APPLIED_KEY, decodeAppliedPosition, META_TABLE, type GroupStore } from './GroupStore.js';
import { isStorageKey } from './ShardStream.js';

/** One record of a group table (the table name without the group prefix). */
export interface SnapshotRecord {
  readonly table: string;
  readonly key: StorageKey;
  readonly value: Uint8Array;
}

/** A snapshot as taken: its applied position and its records, encoded in chunks. */
export interface TakenSnapshot {
  readonly seq: number;
  readonly msgId: string;
  readonly chunks: readonly Uint8Array[];
  readonly hashes: readonly number[];
  readonly bytes: number;
  readonly records: number;
}

/** A snapshot received and checked, ready to install. */
export interface ReceivedSnapshot {
  readonly seq: number;
  readonly msgId: string;
  readonly records: readonly SnapshotRecord[];
  readonly bytes: number;
}

export type TakeResult = { ok: true; snapshot: TakenSnapshot } | { ok: false; message: string };
export type FetchResult = { ok: true; snapshot: ReceivedSnapshot } | { ok: false; message: string };

/**
 * Read `store`'s group tables in this turn and cut them into chunks of about `chunkBytes`.
 * Refused when the copy holds no applied position.
 */
export function takeSnapshot(store: GroupStore, chunkBytes = SNAPSHOT_CHUNK_BYTES): TakeResult {
  const metaRaw = store.table(META_TABLE).get(APPLIED_KEY);
  const applied = metaRaw === undefined ? null : decodeAppliedPosition(metaRaw);
  if (applied === null) return { ok: false, message: `group ${store.group}: no applied position here` };
  const chunks: Uint8Array[] = [];
  const hashes: number[] = [];
  let open: unknown[] = [];
  let openBytes = 0;
  let bytes = 0;
  let records = 0;
  const cut = (): void => {
    if (open.length === 0) return;
    const c = encodeValue(open);
    chunks.push(c);
    hashes.push(hash32(c));
    bytes += c.length;
    open = [];
    openBytes = 0;
  };
  for (const table of store.tableNames()) {
    for (const e of store.table(table).getRange({})) {
      const size = e.value.length + table.length + 64;
      if (openBytes > 0 && openBytes + size > chunkBytes) cut();
      open.push([table, e.key, e.value]);
      openBytes += size;
      records++;
    }
  }
  cut();
  return { ok: true, snapshot: { seq: applied.seq, msgId: applied.msgId, chunks, hashes, bytes, records } };
}

// ---- the wire ---------------------------------------------------------------------------------

const REQ_OPEN = 0;
const REQ_CHUNK = 1;
const ANS_OK = 0;
const ANS_REFUSED = 1;

export type SnapshotRequest = { readonly t: 'open'; readonly from: string } | { readonly t: 'chunk'; readonly id: number; readonly index: number };

export function encodeSnapshotRequest(r: SnapshotRequest): Uint8Array {
  return r.t === 'open' ? encodeValue([REQ_OPEN, r.from]) : encodeValue([REQ_CHUNK, r.id, r.index]);
}

export function decodeSnapshotRequest(bytes: Uint8Array): SnapshotRequest | null {
  try {
    const v = decodeValue(bytes) as unknown[];
    if (!Array.isArray(v)) return null;
    if (v[0] === REQ_OPEN && typeof v[1] === 'string') return { t: 'open', from: v[1] };
    if (v[0] === REQ_CHUNK && Number.isSafeInteger(v[1]) && Number.isSafeInteger(v[2])) return { t: 'chunk', id: v[1] as number, index: v[2] as number };
    return null;
  } catch {
    return null;
  }
}

/** The answer that refuses a snapshot request (the sender's copy cannot serve), with why. */
export function refusal(message: string): Uint8Array {
  return encodeValue([ANS_REFUSED, message]);
}

/**
 * The sender's side: the snapshots it holds for peers and its answers. `take` reads the copy
 * (called in the turn the request is handled); `now` is the monotonic clock.
 */
export class SnapshotServer {
  private readonly held = new Map<number, { snap: TakenSnapshot; usedAt: number }>();
  private nextId = 1;

  constructor(
    private readonly take: () => TakeResult,
    private readonly now: () => number,
  ) {}

  /** The answer to request `data`. */
  answer(data: Uint8Array): Uint8Array {
    const req = decodeSnapshotRequest(data);
    if (req === null) return refusal('unreadable snapshot request');
    const now = this.now();
    for (const [id, h] of this.held) if (now - h.usedAt > SNAPSHOT_HOLD_MS) this.held.delete(id);
    if (req.t === 'open') {
      const taken = this.take();
      if (!taken.ok) return refusal(taken.message);
      while (this.held.size >= SNAPSHOT_HELD_MAX) this.held.delete(this.held.keys().next().value as number);
      const id = this.nextId++;
      this.held.set(id, { snap: taken.snapshot, usedAt: now });
      const s = taken.snapshot;
      return encodeValue([ANS_OK, id, s.seq, s.msgId, s.hashes, s.bytes, s.records]);
    }
    const h = this.held.get(req.id);
    if (h === undefined) return refusal(`snapshot ${req.id} is no longer held here`);
    const chunk = h.snap.chunks[req.index];
    if (chunk === undefined) return refusal(`snapshot ${req.id} has no chunk ${req.index}`);
    h.usedAt = now;
    // The receiver asks in order: once its last chunk went out the snapshot is not needed here.
    if (req.index === h.snap.chunks.length - 1) this.held.delete(req.id);
    return encodeValue([ANS_OK, chunk]);
  }

  /** Snapshots held now. */
  get heldCount(): number {
    return this.held.size;
  }
}

/** The receiver's side: pull the snapshot `subject` serves and check it. */
export async function fetchSnapshot(transport: ClusterTransport, subject: string, self: string, timeoutMs = SNAPSHOT_REQUEST_TIMEOUT_MS): Promise<FetchResult> {
  const head = await transport.request(subject, encodeSnapshotRequest({ t: 'open', from: self }), timeoutMs);
  if (!head.ok) return { ok: false, message: `snapshot request: ${head.reason}` };
  let v: unknown[];
  try {
    v = decodeValue(head.data) as unknown[];
  } catch {
    return { ok: false, message: 'unreadable snapshot header' };
  }
  if (!Array.isArray(v)) return { ok: false, message: 'unreadable snapshot header' };
  if (v[0] === ANS_REFUSED) return { ok: false, message: `refused: ${String(v[1])}` };
  const [, id, seq, msgId, hashes, bytes, records] = v;
  if (v[0] !== ANS_OK || !Number.isSafeInteger(id) || !Number.isSafeInteger(seq) || (seq as number) < 1 || typeof msgId !== 'string' || !Array.isArray(hashes) || !hashes.every((h) => Number.isSafeInteger(h)) || !Number.isSafeInteger(bytes) || !Number.isSafeInteger(records)) {
    return { ok: false, message: 'malformed snapshot header' };
  }
  const out: SnapshotRecord[] = [];
  let got = 0;
  for (let i = 0; i < hashes.length; i++) {
    const r = await transport.request(subject, encodeSnapshotRequest({ t: 'chunk', id: id as number, index: i }), timeoutMs);
    if (!r.ok) return { ok: false, message: `chunk ${i + 1}/${hashes.length}: ${r.reason}` };
    let a: unknown[];
    try {
      a = decodeValue(r.data) as unknown[];
    } catch {
      return { ok: false, message: `chunk ${i + 1}/${hashes.length}: unreadable answer` };
    }
    if (!Array.isArray(a) || a[0] !== ANS_OK || !(a[1] instanceof Uint8Array)) return { ok: false, message: `chunk ${i + 1}/${hashes.length}: ${a?.[0] === ANS_REFUSED ? `refused: ${String(a[1])}` : 'malformed answer'}` };
    const chunk = a[1];
    if (hash32(chunk) !== hashes[i]) return { ok: false, message: `chunk ${i + 1}/${hashes.length} does not match its checksum` };
    got += chunk.length;
    const decoded = decodeChunk(chunk);
    if (decoded === null) return { ok: false, message: `chunk ${i + 1}/${hashes.length} holds a malformed record` };
    for (const rec of decoded) out.push(rec);
  }
  if (got !== bytes || out.length !== records) return { ok: false, message: `snapshot of ${String(bytes)} bytes and ${String(records)} records arrived as ${got} bytes and ${out.length} records` };
  const meta = out.find((r) => r.table === META_TABLE && r.key.length === APPLIED_KEY.length && r.key[0] === APPLIED_KEY[0]);
  const applied = meta === undefined ? null : decodeAppliedPosition(meta.value);
  if (applied === null || applied.seq !== seq || applied.msgId !== msgId) return { ok: false, message: `the snapshot's applied position does not match its header (${String(seq)} ${String(msgId)})` };
  return { ok: true, snapshot: { seq: seq as number, msgId, records: out, bytes: got } };
}

function decodeChunk(chunk: Uint8Array): SnapshotRecord[] | null {
  let v: unknown;
  try {
    v = decodeValue(chunk);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  const out: SnapshotRecord[] = [];
  for (const r of v as unknown[]) {
    if (!Array.isArray(r) || typeof r[0] !== 'string' || !isStorageKey(r[1]) || !(r[2] instanceof Uint8Array)) return null;
    out.push({ table: r[0], key: r[1], value: r[2] });
  }
  return out;
}

