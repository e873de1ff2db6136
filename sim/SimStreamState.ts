/**
 * A JetStream stream's state on one replica, and the checks nats-server 2.9 makes when it
 * applies an entry from the stream's Raft log (processJetStreamMsg), in its order: Msg-Id
 * dedup within the duplicate window first (a duplicate answers the earlier sequence and adds
 * nothing), then Nats-Expected-Last-Subject-Sequence, then Nats-Expected-Last-Msg-Id (an
 * empty expected id is no check, as in nats-server). An accepted entry gets the next stream
 * sequence. Every replica applies the same entries in the same order with the leader's
 * timestamp, so replicas agree.
 *
 * The one exception is the 2.9.10 KV update race (`subjectSeqPrechecked`): the leader checked
 * a non-zero expected subject sequence against its applied state before proposing, and the
 * check is not made again here, so two racing updates can both pass.
 */
import type { AppendFailure, StreamEntry, StreamSpec } from '../runtime/Env.js';
import { subjectMatches } from './SimNats.js';
import type { SimNatsClient } from './SimNatsClient.js';

/** Where an outcome goes: a waiting request of a node's stream store, reached through its client connection. */
export interface PendingReply {
  readonly client: SimNatsClient;
  /** Settles the request (on the node, when the reply arrives). */
  readonly deliver: (outcome: unknown) => void;
}

/** One append as it travels through the stream's Raft log. */
export interface StreamAppend {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | null;
  readonly expectLastMsgId: string | undefined;
  readonly expectLastSubjectSeq: number | undefined;
  /** Nats-Expected-Last-Sequence: checked at apply against the stream's last seq (safe when racing). */
  readonly expectLastSeq: number | undefined;
  /** The leader already checked `expectLastSubjectSeq` before proposing (the 2.9.10 race). */
  readonly subjectSeqPrechecked: boolean;
  /** The leader's clock when it proposed: the entry's timestamp (dedup window, max age). */
  readonly ts: number;
  readonly reply: PendingReply | null;
  /** Not an entry: a purge of every entry below this sequence (JetStream's purge with `seq`). */
  readonly purgeBelow?: number;
}

export type ApplyResult = { ok: true; seq: number; duplicate: boolean } | { ok: false; reason: AppendFailure; message: string };

interface Stored {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | null;
  readonly ts: number;
}

export class SimStreamState {
  lastSeq = 0;
  /** Msg-Id of the last stored entry ('' when it had none, as nats-server's lmsgId). */
  lastMsgId = '';
  private readonly stored: Stored[] = [];
  /** Index in `stored` of the first entry still kept (older ones aged out). */
  private head = 0;
  private readonly lastBySubject = new Map<string, number>();
  private readonly dedup = new Map<string, { seq: number; ts: number }>();
  private readonly dedupOrder: { id: string; ts: number }[] = [];
  private dedupHead = 0;

  constructor(readonly spec: StreamSpec) {}

  /** Apply one entry in log order: its outcome, the same on every replica. */
  apply(e: StreamAppend): ApplyResult {
    this.expire(e.ts);
    if (e.msgId !== null) {
      const d = this.dedup.get(e.msgId);
      if (d !== undefined) return { ok: true, seq: d.seq, duplicate: true };
    }
    if (e.expectLastSeq !== undefined && e.expectLastSeq !== this.lastSeq) {
      return { ok: false, reason: 'wrong_last_seq', message: `last sequence is ${this.lastSeq}, expected ${e.expectLastSeq}` };
    }
    if (e.expectLastSubjectSeq !== undefined && !e.subjectSeqPrechecked) {
      const last = this.lastBySubject.get(e.subject) ?? 0;
      if (last !== e.expectLastSubjectSeq) return { ok: false, reason: 'wrong_last_subject_seq', message: `last sequence on ${e.subject} is ${last}, expected ${e.expectLastSubjectSeq}` };
    }
    if (e.expectLastMsgId !== undefined && e.expectLastMsgId !== '' && e.expectLastMsgId !== this.lastMsgId) {
      return { ok: false, reason: 'wrong_last_msg_id', message: `last Msg-Id is '${this.lastMsgId}', expected '${e.expectLastMsgId}'` };
    }
    const max = this.spec.maxEntryBytes;
    if (max !== undefined && e.data.length > max) return { ok: false, reason: 'too_large', message: `entry of ${e.data.length} bytes exceeds ${max}` };
    const seq = ++this.lastSeq;
    this.stored.push({ seq, subject: e.subject, data: e.data, msgId: e.msgId, ts: e.ts });
    this.lastBySubject.set(e.subject, seq);
    this.lastMsgId = e.msgId ?? '';
    if (e.msgId !== null) {
      this.dedup.set(e.msgId, { seq, ts: e.ts });
      this.dedupOrder.push({ id: e.msgId, ts: e.ts });
    }
    return { ok: true, seq, duplicate: false };
  }

  /**
   * Remove every entry below `keepFrom` (in log order, like an append): how many went. Reads no
   * longer see them; the model keeps them for the checkers (`everStored`), which fold a stream
   * from its first entry.
   */
  purge(keepFrom: number): number {
    let n = 0;
    while (this.head < this.stored.length && this.stored[this.head]!.seq < keepFrom) {
      const s = this.stored[this.head++]!;
      if (this.lastBySubject.get(s.subject) === s.seq) this.lastBySubject.delete(s.subject);
      n++;
    }
    return n;
  }

  /** The entry stored at `seq`, purged or aged out or not (checkers only: no reader sees a purged entry). */
  everStored(seq: number): StreamEntry | null {
    const base = this.stored[0]?.seq;
    if (base === undefined) return null;
    const s = this.stored[seq - base];
    return s === undefined ? null : entryOf(s);
  }

  /** The leader's pre-check: the earlier sequence of `msgId` if it is within the window at `now`. */
  duplicateOf(msgId: string, now: number): number | null {
    const d = this.dedup.get(msgId);
    return d !== undefined && now - d.ts <= this.spec.duplicateWindowMs ? d.seq : null;
  }

  /** The last sequence on `subject` (0: none). */
  lastSeqOn(subject: string): number {
    return this.lastBySubject.get(subject) ?? 0;
  }

  /** First sequence still stored (0 for a stream that never had an entry). */
  get firstSeq(): number {
    if (this.lastSeq === 0) return 0;
    return this.head < this.stored.length ? this.stored[this.head]!.seq : this.lastSeq + 1;
  }

  /** The entry at `seq`, or with `next` the first at or after it (on `subject` if given). */
  get(seq: number, next: boolean, subject: string | undefined): StreamEntry | null {
    if (!next) {
      const s = this.at(seq);
      return s === null ? null : entryOf(s);
    }
    const tokens = subject?.split('.');
    const first = this.firstSeq;
    for (let q = Math.max(seq, first); q <= this.lastSeq; q++) {
      const s = this.at(q);
      if (s !== null && (tokens === undefined || subjectMatches(tokens, s.subject))) return entryOf(s);
    }
    return null;
  }

  lastOn(subject: string): StreamEntry | null {
    const seq = this.lastBySubject.get(subject);
    if (seq === undefined) return null;
    const s = this.at(seq);
    return s === null ? null : entryOf(s);
  }

  private at(seq: number): Stored | null {
    if (this.stored.length === 0) return null;
    const base = this.stored[0]!.seq;
    const i = seq - base;
    if (i < this.head || i >= this.stored.length) return null;
    return this.stored[i]!;
  }

  /** Drop dedup ids older than the window and entries older than max age, as of `now` (an entry's timestamp). */
  private expire(now: number): void {
    const window = this.spec.duplicateWindowMs;
    while (this.dedupHead < this.dedupOrder.length && now - this.dedupOrder[this.dedupHead]!.ts > window) {
      const { id, ts } = this.dedupOrder[this.dedupHead++]!;
      if (this.dedup.get(id)?.ts === ts) this.dedup.delete(id);
    }
    if (this.dedupHead > 1024 && this.dedupHead * 2 > this.dedupOrder.length) {
      this.dedupOrder.splice(0, this.dedupHead);
      this.dedupHead = 0;
    }
    const maxAge = this.spec.maxAgeMs ?? 0;
    if (maxAge > 0) {
      while (this.head < this.stored.length && now - this.stored[this.head]!.ts > maxAge) {
        const s = this.stored[this.head++]!;
        if (this.lastBySubject.get(s.subject) === s.seq) this.lastBySubject.delete(s.subject);
      }
    }
  }
}

function entryOf(s: Stored): StreamEntry {
  return { seq: s.seq, subject: s.subject, data: s.data.slice(), msgId: s.msgId };
}
