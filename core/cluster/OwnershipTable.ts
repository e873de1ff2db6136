/**
 * The ownership table: who owns each shard group, with its standbys and epoch, as recorded in
 * the control stream `IRIS_<C>_CTL` — and the only code that reads or writes that stream.
 *
 * Records (JSON, so an operator can read them with any NATS tool):
 * - `…ctl.config`: `{shardGroups}`, written once, by the first node, with `expectLastSubjectSeq: 0`;
 * - `…ctl.group.<g>`: `{group, epoch, owner, ownerIncarnation, standbys, successor, reason}`,
 *   the last one is the group's state. A record is only ever written by compare-and-append:
 *   `expectLastSubjectSeq` = the sequence `s` of the record the writer read, and the Msg-Id
 *   `<subject>@<s>` ("the record after s"), so of two racing writers exactly one wins. Both are
 *   needed on nats-server 2.9.10: `expectLastSubjectSeq` > 0 refuses a writer whose read is
 *   stale but lets concurrent appends expecting the same `s` all in (measured:
 *   test/runtime/JetStreamStore.test.ts), while racing writers send the same Msg-Id, so one
 *   entry lands and the others are answered `duplicate` with its seq — a writer told that reads
 *   the entry to learn whether it is its own (a retry after a timeout) or another's (lost). The
 *   epoch is the previous one + 1 (1 for the first, `s` = 0). `successor` names the node a
 *   hand-off is under way to;
 * - `…ctl.drains`: the nodes (name and incarnation) being drained, written the same way.
 *
 * Every node keeps the table in memory (`OwnershipTable`): reads are local and synchronous
 * (no call), like pg's membership; it is filled by `ControlStream.load` at start and kept
 * current by the notices writers publish after each append and a periodic reload, applying a
 * record only when its sequence is newer than the one held. Listeners hear every change.
 * Nothing here decides anything (core/cluster/ControlPlane.ts does); it never writes a record
 * except by compare-and-append, and never builds on JetStream KV (whose update is not a safe
 * compare-and-set on nats-server 2.9).
 */
import type { StreamStore } from '../../runtime/Env.js';
import { canary } from '../Canaries.js';
import { CONTROL_DUPLICATE_READS, STREAM_READ_TIMEOUT_MS } from '../defaults.js';
import type { ClusterNames } from './ClusterNames.js';
import type { GroupAssignment } from './Placement.js';
import { controlStreamSpec } from './ShardStream.js';

export type OwnershipReason =
  /** The group's first record (epoch 1). */
  | 'bootstrap'
  /** A node took the group over because its owner was gone (or its hand-off never completed). */
  | 'failover'
  /** The successor took the group over after the owner's hand-off entry. */
  | 'handoff'
  /** The owner prepares a move toward the placement (a new standby, or the successor named). */
  | 'rebalance'
  /** The same, because the owner is being drained. */
  | 'drain'
  /** The owner replaced standbys that were gone or not where the placement wants them. */
  | 'standbys';

export interface OwnershipRecord {
  readonly group: number;
  readonly epoch: number;
  readonly owner: string;
  /** The owner node's incarnation when it took the group: another life of it does not own it. */
  readonly ownerIncarnation: number;
  /** In order of preference for a failover. */
  readonly standbys: readonly string[];
  /** A hand-off to this node is under way (it takes over at the owner's hand-off entry). */
  readonly successor: string | null;
  readonly reason: OwnershipReason;
}

/** A node being drained: its groups move away, and nothing is placed on it. */
export interface DrainingNode {
  readonly name: string;
  readonly incarnation: number;
}

export interface ClusterConfigRecord {
  readonly shardGroups: number;
}

/** What a table listener hears. */
export type TableChange =
  | { readonly t: 'group'; readonly group: number; readonly record: OwnershipRecord; readonly previous: OwnershipRecord | undefined }
  | { readonly t: 'drains'; readonly nodes: readonly DrainingNode[] };

const REASONS: readonly OwnershipReason[] = ['bootstrap', 'failover', 'handoff', 'rebalance', 'drain', 'standbys'];

const utf8 = new TextEncoder();
const text = new TextDecoder();

export function encodeRecord(r: OwnershipRecord): Uint8Array {
  return utf8.encode(JSON.stringify(r));
}

export function decodeRecord(bytes: Uint8Array): OwnershipRecord | null {
  try {
    const v = JSON.parse(text.decode(bytes)) as Partial<OwnershipRecord>;
    if (typeof v.group !== 'number' || typeof v.epoch !== 'number' || typeof v.owner !== 'string' || typeof v.ownerIncarnation !== 'number') return null;
    if (!Array.isArray(v.standbys) || !v.standbys.every((s) => typeof s === 'string')) return null;
    if (v.successor !== null && typeof v.successor !== 'string') return null;
    if (typeof v.reason !== 'string' || !REASONS.includes(v.reason)) return null;
    return { group: v.group, epoch: v.epoch, owner: v.owner, ownerIncarnation: v.ownerIncarnation, standbys: v.standbys, successor: v.successor ?? null, reason: v.reason };
  } catch {
    return null;
  }
}

function decodeDrains(bytes: Uint8Array): DrainingNode[] | null {
  try {
    const v = JSON.parse(text.decode(bytes)) as { nodes?: unknown };
    if (!Array.isArray(v.nodes)) return null;
    const out: DrainingNode[] = [];
    for (const n of v.nodes as Array<Partial<DrainingNode>>) {
      if (typeof n.name !== 'string' || typeof n.incarnation !== 'number') return null;
      out.push({ name: n.name, incarnation: n.incarnation });
    }
    return out;
  } catch {
    return null;
  }
}

export class OwnershipTable {
  private readonly records: Array<OwnershipRecord | undefined>;
  private readonly seqs: number[];
  private drainList: readonly DrainingNode[] = [];
  private drainSeqValue = 0;
  private readonly listeners = new Set<(c: TableChange) => void>();

  constructor(readonly groups: number) {
    this.records = new Array<OwnershipRecord | undefined>(groups).fill(undefined);
    this.seqs = new Array<number>(groups).fill(0);
  }

  /** The last record of group `g` (undefined before its bootstrap). */
  get(g: number): OwnershipRecord | undefined {
    return this.records[g];
  }

  /** The control-stream sequence of that record (0: none); what a compare-and-append expects. */
  seqOf(g: number): number {
    return this.seqs[g] ?? 0;
  }

  /** The owner node of group `g`, if any. */
  ownerOf(g: number): string | undefined {
    return this.records[g]?.owner;
  }

  /** Every group's record, by group. */
  all(): ReadonlyArray<OwnershipRecord | undefined> {
    return this.records;
  }

  /** The records as placement input. */
  assignments(): Array<GroupAssignment | undefined> {
    return this.records.map((r) => (r === undefined ? undefined : { owner: r.owner, standbys: r.standbys }));
  }

  get draining(): readonly DrainingNode[] {
    return this.drainList;
  }

  get drainSeq(): number {
    return this.drainSeqValue;
  }

  isDraining(name: string, incarnation: number): boolean {
    return this.drainList.some((d) => d.name === name && d.incarnation === incarnation);
  }

  /** Take `record`, read or written at control-stream sequence `seq`, if newer; true if it changed the table. */
  apply(record: OwnershipRecord, seq: number): boolean {
    const g = record.group;
    if (!Number.isInteger(g) || g < 0 || g >= this.groups || seq <= this.seqs[g]!) return false;
    const previous = this.records[g];
    this.records[g] = record;
    this.seqs[g] = seq;
    this.emit({ t: 'group', group: g, record, previous });
    return true;
  }

  applyDrains(nodes: readonly DrainingNode[], seq: number): boolean {
    if (seq <= this.drainSeqValue) return false;
    this.drainList = nodes;
    this.drainSeqValue = seq;
    this.emit({ t: 'drains', nodes });
    return true;
  }

  /** Hear every change (group records and drains); returns a function that stops it. */
  subscribe(listener: (c: TableChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(c: TableChange): void {
    for (const fn of [...this.listeners]) fn(c);
  }
}

export type ReadOutcome<T> = { ok: true; value: T | undefined; seq: number } | { ok: false; message: string };
export type WriteOutcome = { ok: true; seq: number } | { ok: false; reason: 'conflict' | 'unavailable'; message: string };

/** A control-stream notice, published on core NATS after a successful write. */
export type ControlNotice = { readonly t: 'group'; readonly seq: number; readonly record: OwnershipRecord } | { readonly t: 'drains'; readonly seq: number; readonly nodes: readonly DrainingNode[] };

export function encodeNotice(n: ControlNotice): Uint8Array {
  return utf8.encode(JSON.stringify(n));
}

export function decodeNotice(bytes: Uint8Array): ControlNotice | null {
  try {
    const v = JSON.parse(text.decode(bytes)) as { t?: string; seq?: unknown; record?: unknown; nodes?: unknown };
    if (typeof v.seq !== 'number') return null;
    if (v.t === 'group') {
      const record = decodeRecord(utf8.encode(JSON.stringify(v.record)));
      return record === null ? null : { t: 'group', seq: v.seq, record };
    }
    if (v.t === 'drains') {
      const nodes = decodeDrains(utf8.encode(JSON.stringify({ nodes: v.nodes })));
      return nodes === null ? null : { t: 'drains', seq: v.seq, nodes };
    }
    return null;
  } catch {
    return null;
  }
}

/** Reads and compare-and-appends on the control stream. */
export class ControlStream {
  constructor(
    private readonly streams: StreamStore,
    readonly names: ClusterNames,
    private readonly replicas: number,
  ) {}

  /** Create the control stream if missing (needs the JetStream API: at start, never on failover). */
  async ensure(): Promise<{ ok: true } | { ok: false; message: string }> {
    const r = await this.streams.ensureStream(controlStreamSpec(this.names, this.replicas));
    return r.ok ? { ok: true } : { ok: false, message: `control stream ${this.names.ctlStream}: ${r.reason}: ${r.message}` };
  }

  async readConfig(): Promise<ReadOutcome<ClusterConfigRecord>> {
    return this.read(this.names.configSubject, (b) => {
      const v = JSON.parse(text.decode(b)) as Partial<ClusterConfigRecord>;
      return typeof v.shardGroups === 'number' ? { shardGroups: v.shardGroups } : null;
    });
  }

  /** Write the config record if there is none; resolves with the record that holds. */
  async settleConfig(shardGroups: number): Promise<{ ok: true; config: ClusterConfigRecord } | { ok: false; message: string }> {
    const r = await this.readConfig();
    if (!r.ok) return r;
    if (r.value !== undefined) return { ok: true, config: r.value };
    const w = await this.append(this.names.configSubject, utf8.encode(JSON.stringify({ shardGroups })), 0);
    if (w.ok) return { ok: true, config: { shardGroups } };
    if (w.reason === 'conflict') return this.settleConfig(shardGroups);
    return { ok: false, message: w.message };
  }

  readGroup(g: number): Promise<ReadOutcome<OwnershipRecord>> {
    return this.read(this.names.groupSubject(g), decodeRecord);
  }

  readDrains(): Promise<ReadOutcome<DrainingNode[]>> {
    return this.read(this.names.drainsSubject, decodeDrains);
  }

  /** Compare-and-append `record` after the record at `expectSeq` (0: the group's first). */
  writeGroup(record: OwnershipRecord, expectSeq: number): Promise<WriteOutcome> {
    return this.append(this.names.groupSubject(record.group), encodeRecord(record), expectSeq);
  }

  writeDrains(nodes: readonly DrainingNode[], expectSeq: number): Promise<WriteOutcome> {
    return this.append(this.names.drainsSubject, utf8.encode(JSON.stringify({ nodes })), expectSeq);
  }

  /** The control stream's last sequence (cheap: tells a reload whether anything changed). */
  async lastSeq(): Promise<number | null> {
    const r = await this.streams.info(this.names.ctlStream, STREAM_READ_TIMEOUT_MS);
    return r.ok ? r.lastSeq : null;
  }

  /** Read every group record and the drains into `table`. */
  async load(table: OwnershipTable): Promise<{ ok: true } | { ok: false; message: string }> {
    const reads = await Promise.all(Array.from({ length: table.groups }, (_, g) => this.readGroup(g)));
    for (const r of reads) {
      if (!r.ok) return r;
      if (r.value !== undefined) table.apply(r.value, r.seq);
    }
    const d = await this.readDrains();
    if (!d.ok) return d;
    if (d.value !== undefined) table.applyDrains(d.value, d.seq);
    return { ok: true };
  }

  private async read<T>(subject: string, decode: (b: Uint8Array) => T | null): Promise<ReadOutcome<T>> {
    const r = await this.streams.lastOnSubject(this.names.ctlStream, subject, STREAM_READ_TIMEOUT_MS);
    if (!r.ok) return r.reason === 'not_found' ? { ok: true, value: undefined, seq: 0 } : { ok: false, message: `${subject}: ${r.reason}: ${r.message}` };
    let value: T | null;
    try {
      value = decode(r.entry.data);
    } catch {
      value = null;
    }
    if (value === null) return { ok: false, message: `${subject}: the record at ${r.entry.seq} is unreadable (corrupt?)` };
    return { ok: true, value, seq: r.entry.seq };
  }

  private async append(subject: string, data: Uint8Array, expectSeq: number): Promise<WriteOutcome> {
    const r = await this.streams.append(this.names.ctlStream, subject, data, {
      expectLastSubjectSeq: expectSeq,
      ...(canary('kv_update_lease') ? {} : { msgId: `${subject}@${expectSeq}` }),
      timeoutMs: STREAM_READ_TIMEOUT_MS,
    });
    if (r.ok) return r.duplicate ? this.ownDuplicate(r.seq, data) : { ok: true, seq: r.seq };
    if (r.reason === 'wrong_last_subject_seq') return { ok: false, reason: 'conflict', message: r.message };
    return { ok: false, reason: 'unavailable', message: `${r.reason}: ${r.message}` };
  }

  /**
   * The record after the one we read is already in at `seq`: ours (an append of ours whose
   * answer was lost) or a racing writer's. A replica a few ms behind may not have it yet, so a
   * `not_found` is asked again; an entry that cannot be read leaves the outcome unknown.
   */
  private async ownDuplicate(seq: number, data: Uint8Array): Promise<WriteOutcome> {
    for (let i = 0; i < CONTROL_DUPLICATE_READS; i++) {
      const e = await this.streams.get(this.names.ctlStream, seq, { timeoutMs: STREAM_READ_TIMEOUT_MS });
      if (e.ok) return sameBytes(e.entry.data, data) ? { ok: true, seq } : { ok: false, reason: 'conflict', message: `another writer's record is at ${seq}` };
      if (e.reason !== 'not_found') return { ok: false, reason: 'unavailable', message: `${e.reason}: ${e.message}` };
    }
    return { ok: false, reason: 'unavailable', message: `the record at ${seq} could not be read` };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
