/**
 * One shard group's life on one node: a process per (group, node) where the node is the
 * group's owner or a standby (or the successor of a hand-off), started and stopped by the
 * node's ControlPlane. Phases:
 *
 * - **standby**: keeps the node's copy of the group (GroupStore) at the stream's head: applies
 *   the entries the owner publishes on `iris.<c>.grp.<g>.entry` when they are next in line,
 *   fills any gap (or a head beat ahead of it) with `StreamStore.get`, and reports what it
 *   applied (fsync'd) on `iris.<c>.grp.<g>.applied`. Applying a hand-off entry that names this
 *   node starts a takeover by itself.
 * - **taking over** (told by the control plane: failover; or the hand-off entry): catch up to
 *   the stream's end (its `info`, from the stream leader), claim the group on the control
 *   stream (compare-and-append, epoch + 1; `mayClaim` re-checks the record first), append the
 *   marker `<epoch>.0` expecting the last applied Msg-Id (refused: someone appended since —
 *   catch up and retry, or give up if the record shows another owner), then start the group's
 *   services on a ReplicatedStorage. At most TAKEOVER_ATTEMPTS rounds; a failed takeover goes
 *   back to standby and the control plane decides again.
 * - **owner**: the services (core/cluster/GroupServices.ts) run; standbys' reports feed the
 *   storage's quorum; an idle head beat goes out every REPLICA_HEAD_BEAT_MS; with `trim`, every
 *   `trim.intervalMs` the shard stream is purged below `trimPoint` (what the owner and every
 *   recorded standby applied, less `trim.keepEntries`; nothing while one has not reported). When the storage
 *   is fenced (or told by the control plane that the table shows another owner) the services
 *   are stopped at once (exit `not_owner`), writes in flight settle, and it turns standby.
 * - **handing off** (told by the control plane, after it recorded the successor): the storage
 *   stops taking writes (refused `unavailable`), in-flight writes settle, the services stop,
 *   the hand-off entry naming the successor is appended; then **handed off**: a standby that
 *   waits for the successor's claim (the control plane takes the group back after
 *   HANDOFF_TIMEOUT_MS, or at once if the successor goes down).
 *
 * It never applies an entry out of order, never serves a group it has not claimed and marked,
 * never keeps serving after a fencing, and never follows or serves a copy the stream does not
 * continue (entries after it gone from the stream, or another entry where it applied one: a
 * stale restored backup, a trimmed or recreated stream): the replica fails and says why. The one
 * exception: a copy whose next entries were trimmed away (or a missing copy while the stream no
 * longer starts at 1) is replaced by a peer replica's snapshot (core/cluster/GroupSnapshot.ts,
 * the record's owner first, then its standbys) when one can send it; and every phase answers
 * peers' snapshot requests from a copy it knows the stream continues. Its phase and positions are in a `ReplicaStatus`
 * object the control plane reads directly (same scheduler, no call).
 */
import { isExitMessage } from '../../runtime/ExitReason.js';
import { canary } from '../Canaries.js';
import type { ClusterTransport, StorageEngine, StreamStore } from '../../runtime/Env.js';
import type { NodeMember } from '../../runtime/Membership.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../../runtime/ProcessContext.js';
import { CATCHUP_PARALLEL_GETS, REPLICA_HEAD_BEAT_MS, SHARD_APPEND_TIMEOUT_MS, SHARD_RETRY_MS, STREAM_READ_TIMEOUT_MS, TAKEOVER_ATTEMPTS } from '../defaults.js';
import type { ClusterNames } from './ClusterNames.js';
import { startGroupServices, type GroupServicesDeps, type StartGroupServicesResult } from './GroupServices.js';
import { GroupStore } from './GroupStore.js';
import { encodeNotice, type ControlStream, type OwnershipReason, type OwnershipRecord, type OwnershipTable } from './OwnershipTable.js';
import { PLACEMENT_REPLICAS } from './Placement.js';
import { fetchSnapshot, refusal, SnapshotServer, takeSnapshot } from './GroupSnapshot.js';
import { ReplicatedStorage, type Durability } from './ReplicatedStorage.js';
import { decodeApplied, decodeEntry, decodeReplication, encodeApplied, encodeEntry, encodeReplication, entryMsgId, parseMsgId, type LoggedEntry, type ShardEntry } from './ShardStream.js';

export type ReplicaPhase = 'standby' | 'taking_over' | 'owner' | 'handing_off' | 'handed_off' | 'failed';

/** A replica's state, shared with the control plane (read without a call, written only here). */
export interface ReplicaStatus {
  readonly group: number;
  phase: ReplicaPhase;
  /** When the phase last changed (monotonic ms). */
  since: number;
  /** Last entry applied (and fsync'd) here. */
  appliedSeq: number;
  /** Highest stream sequence heard of. */
  headSeq: number;
  /** While owner: the epoch it serves and what each standby last reported. */
  epoch: number | null;
  standbyApplied: ReadonlyMap<string, number>;
  /** Why the last takeover or the copy failed, if it did. */
  lastError: string | null;
  /** When the last takeover was given up (monotonic ms; the control plane waits before the next). */
  takeoverFailedAt: number | null;
}

export function newReplicaStatus(group: number, now: number): ReplicaStatus {
  return { group, phase: 'standby', since: now, appliedSeq: 0, headSeq: 0, epoch: null, standbyApplied: new Map(), lastError: null, takeoverFailedAt: null };
}

/** Why a replica takes its group over (the claim's record reason). */
export type TakeoverReason = Extract<OwnershipReason, 'bootstrap' | 'failover' | 'handoff'>;

/** What the control plane tells a replica. */
export type ReplicaCommand =
  | { readonly t: 'take_over'; readonly reason: TakeoverReason }
  | { readonly t: 'hand_off'; readonly to: string }
  /** The table shows another owner: stop serving. */
  | { readonly t: 'demote' }
  /** The group's record changed. */
  | { readonly t: 'record'; readonly record: OwnershipRecord }
  /** This node is no longer owner nor standby: stop. */
  | { readonly t: 'stop' };

/** What a replica tells its control plane. */
export interface ReplicaChanged {
  readonly t: 'replica_changed';
  readonly group: number;
  readonly phase: ReplicaPhase;
}

export interface GroupReplicaOptions {
  group: number;
  self: NodeMember;
  names: ClusterNames;
  streams: StreamStore;
  transport: ClusterTransport;
  /** The node's storage engine (holds every group's copy). */
  local: StorageEngine;
  table: OwnershipTable;
  control: ControlStream;
  durability: Durability;
  status: ReplicaStatus;
  /** Told of every phase change. */
  controlPlane: Pid;
  /** Writes and claims are refused while false (the partition guard). */
  writable: () => boolean;
  /** Whether this node may claim the group over `record` for `reason` now (the control plane's view). */
  mayClaim: (record: OwnershipRecord | undefined, reason: OwnershipReason) => boolean;
  /** Live core nodes that may be standbys (not draining), for the claim's record. */
  standbyCandidates: () => ReadonlySet<string>;
  services: GroupServicesDeps;
  /**
   * Trimming of the shard stream while owner (absent: never): every `intervalMs` the entries
   * below min(own applied, each recorded standby's reported applied) − `keepEntries` are purged.
   */
  trim?: StreamTrimSettings;
  /** Starts the services (default startGroupServices). */
  startServices?: (ctx: ProcessContext, group: number, storage: StorageEngine, deps: GroupServicesDeps) => Promise<StartGroupServicesResult>;
}

/** How an owner trims its shard stream (core/CoreSettings.ts `stream_trim_interval_ms`, `stream_keep_entries`). */
export interface StreamTrimSettings {
  readonly intervalMs: number;
  readonly keepEntries: number;
}

/**
 * The first sequence an owner may keep when trimming: entries below it are applied (and
 * fsync'd) by the owner and by every recorded standby, `keep` entries back; never above the
 * lowest of them, and 0 (nothing to trim) while a recorded standby has not reported, or when no
 * standby is recorded (the owner's disk would then be the only full copy of the group).
 */
export function trimPoint(ownerApplied: number, standbys: readonly string[], reported: ReadonlyMap<string, number>, keep: number): number {
  if (standbys.length === 0) return 0;
  let floor = ownerApplied;
  if (!canary('trim_above_standby')) for (const s of standbys) floor = Math.min(floor, reported.get(s) ?? 0);
  return Math.max(0, floor - keep);
}

/** The process body of a group replica. */
export function groupReplica(o: GroupReplicaOptions): ProcessBody {
  return (ctx) => {
    const opened = GroupStore.open(o.local, o.group);
    if (!opened.ok) {
      o.status.lastError = opened.message;
      o.status.phase = 'failed';
      ctx.env.log.error({ group: o.group, message: opened.message }, 'group replica cannot open its local copy');
      ctx.exit({ error: opened.message });
      return;
    }
    const r = new Replica(ctx, o, opened.store);
    r.start();
    return (m) => r.handle(m);
  };
}

type Internal =
  | { t: 'rep'; data: Uint8Array }
  | { t: 'report'; data: Uint8Array }
  | { t: 'lost'; reason: string }
  | { t: 'beat' }
  | { t: 'job_done' }
  | { t: 'copy_failed'; message: string }
  | { t: 'snapshot_req'; data: Uint8Array; reply: string }
  | { t: 'trim' }
  | { t: 'trim_done'; keptFrom: number };

class Replica {
  private readonly stream: string;
  private readonly subject: string;
  /** Entries heard from the owner ahead of the local copy, by sequence. */
  private readonly buffer = new Map<number, LoggedEntry>();
  private subs: Array<{ unsubscribe(): void }> = [];
  private job: Promise<void> | null = null;
  private storage: ReplicatedStorage | null = null;
  private services: Pid | null = null;
  private lastReported = 0;
  private stopped = false;
  /** A takeover asked for while another job ran. */
  private pendingTakeover: TakeoverReason | null = null;
  /** Set once the stream was seen to hold the copy's applied entry under the same Msg-Id. */
  private continuityChecked = false;
  /** The phase a finishing job leaves the replica in (set inside the job, applied by the handler). */
  private pendingStandby: 'standby' | 'handed_off' | null = null;
  /** Answers peers' snapshot requests for the life of the replica. */
  private snapshotSub: { unsubscribe(): void } | null = null;
  private readonly snapshots: SnapshotServer;
  /** A purge is in flight; the stream is known trimmed below `trimmedTo`. */
  private trimming = false;
  private trimmedTo = 0;

  constructor(
    private readonly ctx: ProcessContext,
    private readonly o: GroupReplicaOptions,
    private readonly store: GroupStore,
  ) {
    this.stream = o.names.groupStream(o.group);
    this.subject = o.names.groupStreamSubject(o.group);
    o.status.appliedSeq = store.appliedSeq;
    o.status.headSeq = Math.max(o.status.headSeq, store.appliedSeq);
    this.snapshots = new SnapshotServer(() => takeSnapshot(store), () => ctx.env.clock.monotonicMs());
  }

  start(): void {
    this.ctx.trapExit(true);
    this.becomeStandby('standby');
    this.ctx.sendAfter(REPLICA_HEAD_BEAT_MS, { t: 'beat' } satisfies Internal);
    this.snapshotSub = this.o.transport.subscribe(this.o.names.snapshotRequest(this.o.group, this.o.self.name), (d, _s, reply) => {
      if (reply !== undefined) this.ctx.send(this.ctx.self, { t: 'snapshot_req', data: d, reply } satisfies Internal);
    });
    if (this.o.trim !== undefined) this.ctx.sendAfter(this.o.trim.intervalMs, { t: 'trim' } satisfies Internal);
  }

  handle(raw: unknown): void {
    if (this.stopped) return;
    if (isExitMessage(raw)) {
      if (this.services !== null && raw.from.key === this.services.key) {
        this.services = null;
        if (this.o.status.phase === 'owner') {
          this.ctx.env.log.error({ group: this.o.group, reason: raw.reason }, 'group services stopped; giving the group up');
          this.loseOwnership('services stopped');
        }
        return;
      }
      // The control plane (our parent) is gone, or a link we did not make: stop with it.
      return this.stop(raw.reason);
    }
    const m = raw as ReplicaCommand | Internal;
    switch (m.t) {
      case 'rep':
        return this.onReplication(m.data);
      case 'report': {
        const r = decodeApplied(m.data);
        if (r !== null && this.storage !== null) {
          this.storage.standbyReport(r.node, r.seq);
          this.o.status.standbyApplied = this.storage.standbyPositions();
          this.o.status.appliedSeq = this.store.appliedSeq;
          this.o.status.headSeq = this.storage.headSeq;
        }
        return;
      }
      case 'beat':
        this.ctx.sendAfter(REPLICA_HEAD_BEAT_MS, { t: 'beat' } satisfies Internal);
        // While handing off too: in-flight writes may wait for a standby's report, which a
        // standby that missed entries sends only once a head beat tells it it is behind.
        if ((this.o.status.phase === 'owner' || this.o.status.phase === 'handing_off') && this.storage !== null) {
          this.o.status.appliedSeq = this.store.appliedSeq;
          this.o.status.headSeq = this.storage.headSeq;
          this.publish({ t: 'head', seq: this.storage.headSeq });
        }
        else if (this.o.status.headSeq > this.store.queuedSeq) this.runJob(() => this.sync(this.o.status.headSeq));
        return;
      case 'job_done': {
        this.job = null;
        const next = this.pendingStandby;
        this.pendingStandby = null;
        if (next !== null) return this.becomeStandby(next);
        if (this.pendingTakeover !== null) {
          const reason = this.pendingTakeover;
          this.pendingTakeover = null;
          return this.takeOver(reason);
        }
        this.drainBuffer();
        return;
      }
      case 'snapshot_req':
        return this.serveSnapshot(m.data, m.reply);
      case 'trim':
        if (this.o.trim !== undefined) this.ctx.sendAfter(this.o.trim.intervalMs, { t: 'trim' } satisfies Internal);
        return this.trim();
      case 'trim_done':
        this.trimming = false;
        if (m.keptFrom > this.trimmedTo) this.trimmedTo = m.keptFrom;
        return;
      case 'copy_failed':
        this.o.status.lastError = m.message;
        this.ctx.env.log.error({ group: this.o.group, message: m.message }, 'the local copy of the group failed; the replica stops');
        this.setPhase('failed');
        return this.stop({ error: m.message });
      case 'lost':
        return this.loseOwnership(m.reason);
      case 'take_over':
        return this.takeOver(m.reason);
      case 'hand_off':
        if (this.o.status.phase !== 'owner' || this.job !== null) return;
        this.setPhase('handing_off');
        this.runJob(() => this.handOff(m.to));
        return;
      case 'demote':
        if (this.o.status.phase === 'owner') this.loseOwnership('the table shows another owner');
        return;
      case 'record':
        if (this.storage !== null && m.record.owner === this.o.self.name) this.storage.setStandbys(m.record.standbys);
        return;
      case 'stop':
        if (this.o.status.phase === 'owner' || this.o.status.phase === 'taking_over' || this.o.status.phase === 'handing_off') return;
        return this.stop('normal');
    }
  }

  // ---- standby ---------------------------------------------------------------------------

  /** Follow the owner (from the handler, with no job running): subscribe, then sync to the stream's end. */
  private becomeStandby(phase: 'standby' | 'handed_off'): void {
    this.unsubscribe();
    this.subs.push(this.o.transport.subscribe(this.o.names.entrySubject(this.o.group), (d) => this.ctx.send(this.ctx.self, { t: 'rep', data: d } satisfies Internal)));
    this.setPhase(phase);
    this.o.status.headSeq = Math.max(this.o.status.headSeq, this.store.appliedSeq);
    this.runJob(() => this.syncToStreamEnd());
  }

  private onReplication(data: Uint8Array): void {
    const m = decodeReplication(data);
    if (m === null) return;
    if (m.seq > this.o.status.headSeq) this.o.status.headSeq = m.seq;
    if (m.t === 'head') {
      // Tell the owner where this copy is (it may be waiting for a standby's report).
      if (this.store.appliedSeq > 0) this.report(this.store.appliedSeq, true);
      if (this.job === null && m.seq > this.store.queuedSeq && this.isFollowing()) this.runJob(() => this.sync(m.seq));
      return;
    }
    if (!this.isFollowing() || m.seq <= this.store.queuedSeq) return;
    const entry = decodeEntry(m.data);
    if (entry === null) return;
    this.buffer.set(m.seq, { seq: m.seq, msgId: m.msgId, entry });
    if (this.job === null) this.drainBuffer();
  }

  /** Standby-like phases take entries from the owner. */
  private isFollowing(): boolean {
    const p = this.o.status.phase;
    return p === 'standby' || p === 'handed_off';
  }

  /** Apply buffered entries that are next in line; a gap starts a sync from the stream. */
  private drainBuffer(): void {
    if (!this.isFollowing() || this.job !== null) return;
    for (;;) {
      const next = this.buffer.get(this.store.queuedSeq + 1);
      if (next === undefined) break;
      this.buffer.delete(next.seq);
      this.applyOne(next);
    }
    for (const s of this.buffer.keys()) if (s <= this.store.queuedSeq) this.buffer.delete(s);
    if (this.buffer.size > 0) this.runJob(() => this.sync(Math.max(...this.buffer.keys())));
  }

  private applyOne(e: LoggedEntry): Promise<boolean> {
    return this.store.apply(e).then((r) => {
      if (!r.ok) {
        this.failCopy(r.message);
        return false;
      }
      this.o.status.appliedSeq = this.store.appliedSeq;
      this.report(this.store.appliedSeq, false);
      if (e.entry.t === 'handoff' && e.entry.to === this.o.self.name && this.isFollowing()) this.ctx.send(this.ctx.self, { t: 'take_over', reason: 'handoff' } satisfies ReplicaCommand);
      return true;
    });
  }

  private report(seq: number, force: boolean): void {
    if (!force && seq <= this.lastReported) return;
    this.lastReported = Math.max(this.lastReported, seq);
    this.o.transport.publish(this.o.names.appliedSubject(this.o.group), encodeApplied({ node: this.o.self.name, seq }));
  }

  /** The copy cannot go on (a failed transaction, a corrupt entry): the replica stops. */
  private failCopy(message: string): void {
    this.ctx.send(this.ctx.self, { t: 'copy_failed', message } satisfies Internal);
  }

  /** Catch up to the stream's last entry (from its leader's `info`). */
  private async syncToStreamEnd(): Promise<void> {
    const at = this.store.queuedSeq;
    const info = await this.o.streams.info(this.stream, STREAM_READ_TIMEOUT_MS);
    if (!info.ok) return;
    const broken = await this.continuityOrSnapshot(info, at);
    if (broken !== null) return this.failCopy(broken);
    if (info.lastSeq > this.o.status.headSeq) this.o.status.headSeq = info.lastSeq;
    await this.sync(info.lastSeq);
  }

  /**
   * Whether the stream continues the local copy, which is the stream's prefix up to the entry it
   * applied last: only if the stream still holds every entry after it, and holds that entry under
   * the same Msg-Id. A copy restored from a backup, or a node back after a long time, may find
   * the entries it misses removed (a stream trimmed or purged by an operator), or a stream that
   * is not the one it copied (recreated, another cluster's). Such a copy cannot be brought up to
   * date and must not be served or followed: null when it can, else why not (the copy is kept).
   * `at` is the copy's last queued entry from before `info` was asked. A stream that seems to
   * end before the copy proves nothing (a lagging replica or a leader cut off from its quorum
   * may answer `info`; the simulator's seeds found it): such a copy simply waits, and a marker
   * on it would be refused by the Msg-Id chain.
   */
  private async continuity(info: { firstSeq: number; lastSeq: number }, at: number): Promise<string | null> {
    const fix = `; the group's local copy was kept and is not used: restore a more recent backup of this node, or start it with an empty data directory if the stream still holds the group from its first entry`;
    if (info.lastSeq > at && info.firstSeq > at + 1) return `group ${this.o.group}: the local copy ends at entry ${at} but stream ${this.stream} now starts at ${info.firstSeq}: entries ${at + 1}..${info.firstSeq - 1} are gone from the stream${fix}`;
    const seq = this.store.appliedSeq;
    const msgId = this.store.appliedMsgId;
    if (seq === 0 && info.firstSeq <= 1) {
      // An empty copy the stream holds from its first entry: all it will hold comes from here.
      this.continuityChecked = true;
      return null;
    }
    if (this.continuityChecked || seq === 0 || msgId === null || seq < info.firstSeq) return null;
    const r = await this.o.streams.get(this.stream, seq, { timeoutMs: STREAM_READ_TIMEOUT_MS });
    if (!r.ok) return null; // not known now: the next catch-up asks again
    if (r.entry.msgId !== msgId) return `group ${this.o.group}: entry ${seq} of stream ${this.stream} is ${r.entry.msgId ?? 'without a Msg-Id'} but the local copy applied ${msgId} there (the copy does not come from this stream: another cluster's backup, or a recreated stream)${fix}`;
    this.continuityChecked = true;
    return null;
  }

  /**
   * `continuity`, except that a copy the stream no longer continues because the entries after it
   * were trimmed (or a copy missing while the stream no longer starts at 1) is replaced by a
   * peer's snapshot first when one can send it; then the new copy is checked the same way.
   */
  private async continuityOrSnapshot(info: { firstSeq: number; lastSeq: number }, at: number): Promise<string | null> {
    if (!(info.lastSeq > at && info.firstSeq > at + 1)) return this.continuity(info, at);
    const failed = await this.bootstrapFromPeer(info.firstSeq);
    if (failed === null) return this.continuity(info, this.store.queuedSeq);
    const gone = await this.continuity(info, at);
    return gone === null ? null : `${gone}; no peer could send a snapshot of the group (${failed})`;
  }

  /**
   * Replace the local copy with a snapshot from a peer replica (the owner first, then the
   * standbys of the group's record) whose applied entry the stream continues (at or after
   * `firstSeq` − 1). Null once installed; else why no peer could.
   */
  private async bootstrapFromPeer(firstSeq: number): Promise<string | null> {
    // Whatever is queued settles first: the install replaces the copy in one transaction.
    await this.store.durableAt(this.store.queuedSeq);
    if (this.store.failure !== null) return `local copy: ${this.store.failure.message}`;
    const rec = this.o.table.get(this.o.group);
    const peers = [...new Set([rec?.owner, ...(rec?.standbys ?? [])])].filter((n): n is string => n !== undefined && n !== this.o.self.name);
    if (peers.length === 0) return 'no other replica recorded';
    const why: string[] = [];
    for (const peer of peers) {
      if (this.stopped) return 'stopped';
      // The copy may have reached the stream meanwhile (a previous life of this replica, still
      // settling, applied or installed up to it): then no snapshot is needed.
      if (this.store.appliedSeq + 1 >= firstSeq) return null;
      const got = await fetchSnapshot(this.o.transport, this.o.names.snapshotRequest(this.o.group, peer), this.o.self.name);
      if (this.stopped) return 'stopped';
      if (this.store.appliedSeq + 1 >= firstSeq) return null;
      if (!got.ok) {
        why.push(`${peer}: ${got.message}`);
        continue;
      }
      const snap = got.snapshot;
      if (snap.seq + 1 < firstSeq) {
        why.push(`${peer}: its copy ends at ${snap.seq}, before the stream's first entry ${firstSeq}`);
        continue;
      }
      if (snap.seq <= this.store.appliedSeq) {
        why.push(`${peer}: its copy (${snap.seq}) is not ahead of this one (${this.store.appliedSeq})`);
        continue;
      }
      const r = await this.store.install(snap.records, snap.seq, snap.msgId);
      if (!r.ok) return `installing ${peer}'s snapshot: ${r.message}`;
      this.continuityChecked = false;
      this.o.status.appliedSeq = this.store.appliedSeq;
      if (snap.seq > this.o.status.headSeq) this.o.status.headSeq = snap.seq;
      for (const s of this.buffer.keys()) if (s <= snap.seq) this.buffer.delete(s);
      this.ctx.env.log.info({ group: this.o.group, from: peer, seq: snap.seq, records: snap.records.length, bytes: snap.bytes }, 'local copy of the group replaced by a peer snapshot');
      this.report(this.store.appliedSeq, true);
      return null;
    }
    return why.join('; ');
  }

  /** After entries could not be read: if the stream no longer holds the next one, replace the copy by a snapshot (or fail it). */
  private async recoverFromTrim(): Promise<void> {
    await this.store.durableAt(this.store.queuedSeq);
    const at = this.store.queuedSeq;
    const info = await this.o.streams.info(this.stream, STREAM_READ_TIMEOUT_MS);
    if (!info.ok || this.stopped || !(info.lastSeq > at && info.firstSeq > at + 1)) return;
    const broken = await this.continuityOrSnapshot(info, at);
    if (broken !== null) this.failCopy(broken);
  }

  /** Answer a peer's snapshot request, from a copy this stream is known to continue. */
  private serveSnapshot(data: Uint8Array, reply: string): void {
    const p = this.o.status.phase;
    const trusted = (p === 'owner' || this.continuityChecked) && p !== 'failed' && this.store.failure === null;
    const answer = trusted ? this.snapshots.answer(data) : refusal(`the copy on ${this.o.self.name} is not known to match the stream`);
    this.o.transport.publish(reply, answer);
  }

  // ---- trimming (owner) ----------------------------------------------------------------------

  /** Purge the shard stream below the trim point, if it moved on. */
  private trim(): void {
    const t = this.o.trim;
    const storage = this.storage;
    if (t === undefined || storage === null || this.trimming || this.o.status.phase !== 'owner' || !this.o.writable()) return;
    const record = this.o.table.get(this.o.group);
    const standbys = record?.owner === this.o.self.name ? record.standbys : null;
    if (standbys === null) return;
    const keepFrom = trimPoint(this.store.appliedSeq, standbys, storage.standbyPositions(), t.keepEntries);
    if (keepFrom <= this.trimmedTo + 1 || keepFrom <= 1) return;
    this.trimming = true;
    void this.o.streams.purge(this.stream, { keepFromSeq: keepFrom, timeoutMs: STREAM_READ_TIMEOUT_MS }).then((r) => {
      if (r.ok) this.ctx.env.log.debug({ group: this.o.group, keepFrom, purged: r.purged }, 'shard stream trimmed');
      this.ctx.send(this.ctx.self, { t: 'trim_done', keptFrom: r.ok ? keepFrom : 0 } satisfies Internal);
    });
  }

  /**
   * Apply every entry up to `target` (buffered ones, the rest read from the stream with up to
   * CATCHUP_PARALLEL_GETS gets in flight), in order; resolves true once all are durable here.
   */
  private async sync(target: number): Promise<boolean> {
    let last: Promise<boolean> = Promise.resolve(true);
    for (let round = 0; !this.stopped; round++) {
      if (this.store.failure !== null) {
        // A failed transaction stopped the copy: only a new replica resumes it (GroupStore.open
        // resets it to its durable position), so this one stops rather than retry for ever.
        this.failCopy(this.store.failure.message);
        return false;
      }
      if (this.store.queuedSeq >= target) break;
      const from = this.store.queuedSeq + 1;
      const to = Math.min(target, from + CATCHUP_PARALLEL_GETS - 1);
      const got = await Promise.all(Array.from({ length: to - from + 1 }, (_, i) => this.read(from + i)));
      for (const e of got) {
        if (e === null || this.stopped) {
          // Unreadable now: the next beat or command tries again, unless the stream was trimmed
          // past this copy meanwhile (it fell behind while running): then a snapshot, or the
          // copy fails loudly.
          if (!this.stopped && this.store.failure === null) await this.recoverFromTrim();
          return false;
        }
        if (e.seq !== this.store.queuedSeq + 1) continue; // applied meanwhile from the owner's publication
        last = this.applyOne(e);
      }
    }
    return last;
  }

  /** Entry `seq`, buffered or read from the stream (a lagging replica's not_found is retried). */
  private async read(seq: number): Promise<LoggedEntry | null> {
    const buffered = this.buffer.get(seq);
    if (buffered !== undefined) {
      this.buffer.delete(seq);
      return buffered;
    }
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS && !this.stopped; attempt++) {
      const r = await this.o.streams.get(this.stream, seq, { timeoutMs: STREAM_READ_TIMEOUT_MS });
      if (r.ok) {
        const entry = decodeEntry(r.entry.data);
        if (entry === null || r.entry.msgId === null) {
          this.failCopy(`entry ${seq} of ${this.stream} is unreadable (corrupt?); it was not skipped`);
          return null;
        }
        return { seq, msgId: r.entry.msgId, entry };
      }
      if (r.reason === 'closed') return null;
      await this.sleep(SHARD_RETRY_MS);
    }
    return null;
  }

  // ---- taking over -----------------------------------------------------------------------

  private takeOver(reason: TakeoverReason): void {
    const p = this.o.status.phase;
    if (p === 'owner' || p === 'taking_over' || p === 'handing_off' || p === 'failed') return;
    if (this.job !== null) {
      this.pendingTakeover = reason;
      return;
    }
    this.setPhase('taking_over');
    this.runJob(async () => {
      const done = await this.claimAndMark(reason);
      if (done === null) return;
      this.o.status.lastError = done;
      this.o.status.takeoverFailedAt = this.ctx.env.clock.monotonicMs();
      this.ctx.env.log.warn({ group: this.o.group, reason, why: done }, 'takeover given up');
      this.pendingStandby = 'standby';
    });
  }

  /** Catch up, claim, mark, serve. Null when serving; otherwise why it gave up. */
  private async claimAndMark(reason: TakeoverReason): Promise<string | null> {
    this.unsubscribe();
    this.buffer.clear();
    let claimed: OwnershipRecord | null = null;
    let why = 'no attempt made';
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS && !this.stopped; attempt++) {
      if (attempt > 0) await this.sleep(SHARD_RETRY_MS);
      if (!this.o.writable()) return 'safe mode';
      // 1. The stream's end, from its leader, and everything up to it applied here.
      const at = this.store.queuedSeq;
      const info = await this.o.streams.info(this.stream, STREAM_READ_TIMEOUT_MS);
      if (!info.ok) {
        why = `stream info: ${info.reason}`;
        continue;
      }
      const broken = await this.continuityOrSnapshot(info, at);
      if (broken !== null) {
        this.failCopy(broken);
        return broken;
      }
      if (!(await this.sync(info.lastSeq)) || this.store.appliedSeq < info.lastSeq) {
        why = 'catch-up incomplete';
        continue;
      }
      // 2. The claim, once: compare-and-append over the record read now.
      if (claimed === null) {
        const cur = await this.o.control.readGroup(this.o.group);
        if (!cur.ok) {
          why = cur.message;
          continue;
        }
        if (cur.value !== undefined) this.o.table.apply(cur.value, cur.seq);
        if (!this.o.mayClaim(cur.value, reason)) return `the record no longer allows a ${reason} claim`;
        const next = this.claimRecord(cur.value, reason);
        const w = await this.o.control.writeGroup(next, cur.seq);
        if (!w.ok) {
          why = `claim: ${w.reason}: ${w.message}`;
          continue;
        }
        claimed = next;
        this.o.table.apply(next, w.seq);
        this.o.transport.publish(this.o.names.ctlNotice, encodeNotice({ t: 'group', seq: w.seq, record: next }));
      }
      // 3. The marker, expecting the last entry applied here.
      const marker: ShardEntry = { t: 'marker', epoch: claimed.epoch, owner: this.o.self.name };
      const msgId = entryMsgId(claimed.epoch, 0);
      const data = encodeEntry(marker);
      const expect = this.store.appliedMsgId;
      // The catch-up may have applied a newer epoch's entries (its owner claimed after us; the
      // record we re-read can come from a lagging replica): a marker on top of them would
      // bring an older epoch back into the stream.
      const newer = parseMsgId(expect);
      if (newer !== null && newer.epoch > claimed.epoch) return `the stream holds epoch ${newer.epoch}, newer than this claim (${claimed.epoch})`;
      const m = await this.o.streams.append(this.stream, this.subject, data, expect === null ? { msgId, expectLastSubjectSeq: 0, timeoutMs: SHARD_APPEND_TIMEOUT_MS } : { msgId, expectLastMsgId: expect, timeoutMs: SHARD_APPEND_TIMEOUT_MS });
      if (!m.ok) {
        why = `marker: ${m.reason}: ${m.message}`;
        if (m.reason === 'wrong_last_msg_id' || m.reason === 'wrong_last_subject_seq') {
          // Someone appended after what we applied (an old owner still writing): catch up again,
          // unless the record moved on to another owner.
          const cur = await this.o.control.readGroup(this.o.group);
          if (cur.ok && cur.value !== undefined) {
            this.o.table.apply(cur.value, cur.seq);
            if (cur.value.epoch !== claimed.epoch || cur.value.owner !== this.o.self.name) return 'another node claimed the group';
          }
        }
        continue;
      }
      // A duplicate answer means our marker landed on an earlier attempt (a lost ack); a
      // catch-up since may have applied it already.
      if (this.store.appliedMsgId !== msgId) {
        if (m.seq > this.store.queuedSeq + 1 && !(await this.sync(m.seq - 1))) continue;
        if (m.seq !== this.store.queuedSeq + 1) return `marker at ${m.seq} does not follow the local copy (${this.store.appliedSeq})`;
        const applied = await this.store.apply({ seq: m.seq, msgId, entry: marker });
        if (!applied.ok) return `local copy: ${applied.message}`;
        this.publish({ t: 'entry', seq: m.seq, msgId, data });
      }
      this.o.status.appliedSeq = this.store.appliedSeq;
      return this.serve(claimed);
    }
    return why;
  }

  /** The record of this node's claim over `cur`. */
  private claimRecord(cur: OwnershipRecord | undefined, reason: OwnershipReason): OwnershipRecord {
    const candidates = this.o.standbyCandidates();
    const me = this.o.self.name;
    const prefer = [...(reason === 'handoff' && cur !== undefined ? [cur.owner] : []), ...(cur?.standbys ?? []), ...(cur !== undefined ? [cur.owner] : [])];
    const standbys: string[] = [];
    for (const s of prefer) if (s !== me && candidates.has(s) && !standbys.includes(s) && standbys.length < PLACEMENT_REPLICAS - 1) standbys.push(s);
    return { group: this.o.group, epoch: (cur?.epoch ?? 0) + 1, owner: me, ownerIncarnation: this.o.self.incarnation, standbys, successor: null, reason };
  }

  /** Start serving epoch `record.epoch`: the replicated storage and the services. */
  private async serve(record: OwnershipRecord): Promise<string | null> {
    const storage = new ReplicatedStorage({
      env: this.ctx.env,
      streams: this.o.streams,
      stream: this.stream,
      subject: this.subject,
      store: this.store,
      epoch: record.epoch,
      durability: this.o.durability,
      standbys: this.o.table.get(this.o.group)?.standbys ?? record.standbys,
      publish: (seq, msgId, data) => this.publish({ t: 'entry', seq, msgId, data }),
      writable: this.o.writable,
      onLost: (reason) => this.ctx.send(this.ctx.self, { t: 'lost', reason } satisfies Internal),
    });
    this.storage = storage;
    this.subs.push(this.o.transport.subscribe(this.o.names.appliedSubject(this.o.group), (d) => this.ctx.send(this.ctx.self, { t: 'report', data: d } satisfies Internal)));
    const start = this.o.startServices ?? startGroupServices;
    const started = await start(this.ctx, this.o.group, storage, this.o.services);
    if (!started.ok) {
      this.storage = null;
      await storage.close();
      this.unsubscribe();
      return started.message;
    }
    this.services = started.pid;
    this.o.status.epoch = record.epoch;
    this.setPhase('owner');
    this.ctx.env.log.info({ group: this.o.group, epoch: record.epoch, reason: record.reason, seq: this.store.appliedSeq }, 'serving shard group');
    return null;
  }

  // ---- owner -----------------------------------------------------------------------------

  /** Stop serving (fenced, demoted, services gone): services stop at once, writes settle, then standby. */
  private loseOwnership(reason: string): void {
    const p = this.o.status.phase;
    if (p !== 'owner' && p !== 'handing_off') return;
    this.ctx.env.log.warn({ group: this.o.group, reason }, 'shard group no longer served here');
    this.stopServices();
    const storage = this.storage;
    this.storage = null;
    this.o.status.epoch = null;
    this.setPhase('standby');
    const close = async (): Promise<void> => {
      await storage?.close();
      this.pendingStandby = 'standby';
    };
    // A running job (a hand-off) holds the storage and ends in standby by itself.
    if (this.job === null) this.runJob(close);
  }

  private async handOff(to: string): Promise<void> {
    const storage = this.storage;
    if (storage === null) return;
    const still = await storage.freeze();
    this.stopServices();
    if (!still) {
      this.storage = null;
      this.o.status.epoch = null;
      this.pendingStandby = 'standby';
      return;
    }
    const r = await storage.appendHandoff(to);
    this.storage = null;
    this.o.status.epoch = null;
    await storage.close();
    this.o.status.appliedSeq = this.store.appliedSeq;
    if (!r.ok) {
      this.o.status.lastError = `hand-off: ${r.reason}`;
      this.ctx.env.log.warn({ group: this.o.group, to, reason: r.reason }, 'hand-off failed');
      this.pendingStandby = 'standby';
      return;
    }
    this.ctx.env.log.info({ group: this.o.group, to, seq: r.seq }, 'shard group handed off');
    this.pendingStandby = 'handed_off';
  }


  private stopServices(): void {
    if (this.services === null) return;
    const sup = this.services;
    this.services = null;
    this.ctx.unlink(sup);
    this.ctx.sendExit(sup, 'not_owner');
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private runJob(work: () => Promise<unknown>): void {
    if (this.job !== null || this.stopped) return;
    const job = (async () => {
      try {
        await work();
      } catch (err) {
        this.ctx.env.log.error({ group: this.o.group, err: err instanceof Error ? err.message : String(err) }, 'group replica job failed');
        const p = this.o.status.phase;
        if (p === 'taking_over' || p === 'handing_off') {
          this.o.status.takeoverFailedAt = this.ctx.env.clock.monotonicMs();
          this.pendingStandby = 'standby';
        }
      }
      this.ctx.send(this.ctx.self, { t: 'job_done' } satisfies Internal);
    })();
    this.job = job;
  }

  private publish(m: Parameters<typeof encodeReplication>[0]): void {
    this.o.transport.publish(this.o.names.entrySubject(this.o.group), encodeReplication(m));
  }

  private setPhase(p: ReplicaPhase): void {
    if (this.o.status.phase === p) return;
    this.o.status.phase = p;
    this.o.status.since = this.ctx.env.clock.monotonicMs();
    this.ctx.send(this.o.controlPlane, { t: 'replica_changed', group: this.o.group, phase: p } satisfies ReplicaChanged);
  }

  private unsubscribe(): void {
    for (const s of this.subs.splice(0)) s.unsubscribe();
  }

  private stop(reason: Parameters<ProcessContext['exit']>[0]): void {
    if (this.stopped) return;
    this.stopped = true;
    this.snapshotSub?.unsubscribe();
    this.snapshotSub = null;
    this.stopServices();
    const storage = this.storage;
    this.storage = null;
    void storage?.close();
    this.unsubscribe();
    this.ctx.exit(reason);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.ctx.env.timers.setTimer(ms, r));
  }
}
