/**
 * An in-memory fake of the Env's `StreamStore` (runtime/Env.ts), for unit tests of the cluster
 * logic ONLY: one process, no replicas, no elections. It checks what JetStream checks, in the
 * same order (Msg-Id dedup first, then `expectLastMsgId`, then `expectLastSubjectSeq`), and
 * lets a test inject the faults the real one has: a stream without a leader (`available =
 * false`: appends answer `unavailable`, nothing is appended), an append whose answer is lost
 * (`timeout`, with the entry appended or not), and appends held back so a test decides when
 * they are processed (`hold()` / `release()`). Integration tests use real JetStream instead
 * (runtime/node/JetStreamStore.ts).
 */
import type { AppendOptions, AppendOutcome, GetOutcome, StreamEntry, StreamOutcome, StreamSpec, StreamStore } from '../../runtime/Env.js';

/** What the next append does instead of answering normally. */
export type AppendFault =
  /** The entry is appended but the answer is lost: the caller sees `timeout`. */
  | 'timeout_landed'
  /** The entry never reaches the stream: the caller sees `timeout`. */
  | 'timeout_lost'
  /** No leader: `unavailable`, nothing appended. */
  | 'unavailable';

interface FakeStream {
  spec: StreamSpec;
  entries: StreamEntry[];
  dedup: Map<string, number>;
}

interface HeldAppend {
  run: () => void;
}

export class MemoryStreams implements StreamStore {
  /** False: no stream leader (appends `unavailable`, reads `unavailable`). */
  available = true;
  /** Faults for the next appends, in order (consumed one per append). */
  readonly faults: AppendFault[] = [];
  /** Every append outcome, in processing order (for assertions). */
  readonly log: Array<{ stream: string; msgId: string | undefined; outcome: AppendOutcome }> = [];
  /** Every purge asked for, in order. */
  readonly purges: Array<{ stream: string; keepFromSeq: number }> = [];
  private readonly streams = new Map<string, FakeStream>();
  private held: HeldAppend[] | null = null;

  // ---- test controls -----------------------------------------------------------------------

  /** Queue appends from now on until `release`. */
  hold(): void {
    this.held ??= [];
  }

  /** Process the held appends in order (and stop holding). */
  release(): void {
    const h = this.held ?? [];
    this.held = null;
    for (const a of h) a.run();
  }

  /** Appends waiting in `hold`. */
  heldCount(): number {
    return this.held?.length ?? 0;
  }

  /**
   * Remove the entries of `stream` below `seq` (a purge up to it, as an operator's `nats stream
   * purge --seq`); the last entry always stays, so sequences go on from it.
   */
  trim(stream: string, seq: number): void {
    const s = this.streams.get(stream);
    if (s === undefined) throw new Error(`no stream ${stream}`);
    if (seq > (s.entries.at(-1)?.seq ?? 0)) throw new Error('trim keeps the last entry');
    s.entries = s.entries.filter((e) => e.seq >= seq);
  }

  /** The entries of `stream` (a copy). */
  entries(stream: string): StreamEntry[] {
    return [...(this.streams.get(stream)?.entries ?? [])];
  }

  // ---- StreamStore ---------------------------------------------------------------------------

  async ensureStream(spec: StreamSpec): Promise<StreamOutcome<{ created: boolean }>> {
    if (this.streams.has(spec.name)) return { ok: true, created: false };
    this.streams.set(spec.name, { spec, entries: [], dedup: new Map() });
    return { ok: true, created: true };
  }

  append(stream: string, subject: string, data: Uint8Array, opts: AppendOptions = {}): Promise<AppendOutcome> {
    return new Promise<AppendOutcome>((resolve) => {
      const run = (): void => {
        const outcome = this.process(stream, subject, data, opts);
        this.log.push({ stream, msgId: opts.msgId, outcome });
        queueMicrotask(() => resolve(outcome));
      };
      if (this.held !== null) this.held.push({ run });
      else run();
    });
  }

  async get(stream: string, seq: number, opts: { next?: boolean; subject?: string } = {}): Promise<GetOutcome> {
    if (!this.available) return { ok: false, reason: 'unavailable', message: 'no leader (fake)' };
    const s = this.streams.get(stream);
    if (s === undefined) return { ok: false, reason: 'not_found', message: 'no such stream' };
    const found = opts.next === true ? s.entries.find((e) => e.seq >= seq && (opts.subject === undefined || e.subject === opts.subject)) : s.entries.find((e) => e.seq === seq);
    return found === undefined ? { ok: false, reason: 'not_found', message: 'no such entry' } : { ok: true, entry: copy(found) };
  }

  async lastOnSubject(stream: string, subject: string): Promise<GetOutcome> {
    if (!this.available) return { ok: false, reason: 'unavailable', message: 'no leader (fake)' };
    const s = this.streams.get(stream);
    const found = s?.entries.filter((e) => e.subject === subject).at(-1);
    return found === undefined ? { ok: false, reason: 'not_found', message: 'no such entry' } : { ok: true, entry: copy(found) };
  }

  /** JetStream's purge with `seq`; the fake always keeps the last entry (it cannot hold an empty stream's sequence). */
  async purge(stream: string, opts: { keepFromSeq: number }): Promise<StreamOutcome<{ purged: number }>> {
    if (!this.available) return { ok: false, reason: 'unavailable', message: 'no leader (fake)' };
    const s = this.streams.get(stream);
    if (s === undefined) return { ok: false, reason: 'invalid', message: `no stream ${stream}` };
    const before = s.entries.length;
    const keepFrom = Math.min(opts.keepFromSeq, s.entries.at(-1)?.seq ?? 0);
    s.entries = s.entries.filter((e) => e.seq >= keepFrom);
    this.purges.push({ stream, keepFromSeq: opts.keepFromSeq });
    return { ok: true, purged: before - s.entries.length };
  }

  async info(stream: string): Promise<StreamOutcome<{ firstSeq: number; lastSeq: number }>> {
    if (!this.available) return { ok: false, reason: 'unavailable', message: 'no leader (fake)' };
    const s = this.streams.get(stream);
    if (s === undefined) return { ok: false, reason: 'invalid', message: 'stream not found' };
    return { ok: true, firstSeq: s.entries[0]?.seq ?? 0, lastSeq: s.entries.at(-1)?.seq ?? 0 };
  }

  // ---- internal ------------------------------------------------------------------------------

  private process(stream: string, subject: string, data: Uint8Array, opts: AppendOptions): AppendOutcome {
    const fault = this.faults.shift();
    if (!this.available || fault === 'unavailable') return { ok: false, reason: 'unavailable', message: 'no leader (fake)' };
    const s = this.streams.get(stream);
    if (s === undefined) return { ok: false, reason: 'unavailable', message: 'no such stream (fake)' };
    if (fault === 'timeout_lost') return { ok: false, reason: 'timeout', message: 'answer lost (fake)' };
    const outcome = this.check(s, subject, data, opts);
    return fault === 'timeout_landed' ? { ok: false, reason: 'timeout', message: 'answer lost after the append (fake)' } : outcome;
  }

  private check(s: FakeStream, subject: string, data: Uint8Array, opts: AppendOptions): AppendOutcome {
    if (opts.msgId !== undefined) {
      const dup = s.dedup.get(opts.msgId);
      if (dup !== undefined) return { ok: true, seq: dup, duplicate: true };
    }
    const last = s.entries.at(-1);
    if (opts.expectLastMsgId !== undefined && (last === undefined || last.msgId !== opts.expectLastMsgId)) {
      return { ok: false, reason: 'wrong_last_msg_id', message: `wrong last msg ID: ${last?.msgId ?? ''}` };
    }
    if (opts.expectLastSubjectSeq !== undefined) {
      const lastOnSubject = s.entries.filter((e) => e.subject === subject).at(-1)?.seq ?? 0;
      if (lastOnSubject !== opts.expectLastSubjectSeq) return { ok: false, reason: 'wrong_last_subject_seq', message: `wrong last sequence: ${lastOnSubject}` };
    }
    const seq = (last?.seq ?? 0) + 1;
    s.entries.push({ seq, subject, data: Uint8Array.from(data), msgId: opts.msgId ?? null });
    if (opts.msgId !== undefined) s.dedup.set(opts.msgId, seq);
    return { ok: true, seq, duplicate: false };
  }
}

function copy(e: StreamEntry): StreamEntry {
  return { ...e, data: Uint8Array.from(e.data) };
}
