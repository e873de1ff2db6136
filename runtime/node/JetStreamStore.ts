/**
 * The production StreamStore: replicated logs on NATS JetStream (`@nats-io/jetstream`, v3), on
 * the node's own NATS connection. Appends are JetStream publishes with Nats-Msg-Id and the
 * expectation headers; reads are direct gets (`$JS.API.DIRECT.GET.<stream>`), answered by any
 * replica without the stream leader or the meta leader. sim/SimJetStream.ts is its twin; both
 * pass test/support/streamRules.ts.
 *
 * It must never create a JetStream consumer, never throw at a caller for an expected outcome
 * (every server answer becomes a typed result: runtime/Env.ts), and never retry an append by
 * itself (an append's outcome may be unknown; only the caller knows whether its Msg-Id makes a
 * retry safe).
 *
 * Server answers, as nats-server 2.9.10 gives them (measured in test/runtime/JetStreamStore.test.ts):
 *
 * | answer | result |
 * |---|---|
 * | PubAck `{seq, duplicate}` | `{ok: true, seq, duplicate}` |
 * | API error 10070 "wrong last msg ID" | `wrong_last_msg_id` |
 * | API error 10071 "wrong last sequence" (subject or stream) | `wrong_last_subject_seq` / `wrong_last_seq` (which one the append expected) |
 * | API error 10054 "message size exceeds maximum allowed" (the stream's max_msg_size) | `too_large` |
 * | client refusal over the server's max_payload (nothing is sent) | `too_large` |
 * | no responders (503; the v3 client calls it `JetStreamNotEnabled`): no stream leader, no quorum, or no stream | `unavailable` |
 * | no answer within timeoutMs (a leader without quorum keeps the entry and may commit it later) | `timeout` |
 * | API error 10060 "expected stream does not match": `subject` belongs to another stream | a bug of the caller: rejects |
 * | any other API error (resources, JetStream not ready) | `unavailable` with the server's text |
 * | direct get: status 404 | `not_found` (on the replica that answered: it may lag the ack by ms) |
 * | direct get: no answer (no replica serves it, or it is routed to a server just killed) | `timeout` |
 * | stream create: 10058 "already in use with a different configuration" | `invalid` |
 */
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { ClosedConnectionError, InvalidArgumentError, NoRespondersError, RequestError, TimeoutError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { AppendOptions, AppendOutcome, GetOutcome, Logger, StreamEntry, StreamOutcome, StreamSpec, StreamStore } from '../Env.js';
import { STREAM_API_TIMEOUT_MS, STREAM_APPEND_TIMEOUT_MS, STREAM_READ_TIMEOUT_MS } from '../defaults.js';

export interface JetStreamStoreOptions {
  /** An append's timeout when the caller gives none (STREAM_APPEND_TIMEOUT_MS). */
  appendTimeoutMs?: number;
  /** A get's or info's timeout when the caller gives none (STREAM_READ_TIMEOUT_MS). */
  readTimeoutMs?: number;
  /** ensureStream's timeout (STREAM_API_TIMEOUT_MS). */
  apiTimeoutMs?: number;
  log?: Logger;
}

/** JetStream API error codes this store tells apart (nats-server's errors.json). */
export const JS_ERR = {
  messageTooLarge: 10054,
  streamNameInUse: 10058,
  streamNotFound: 10059,
  streamMismatch: 10060,
  wrongLastMsgId: 10070,
  wrongLastSequence: 10071,
} as const;

/** Direct-get status codes (message headers, no payload). */
const STATUS_NOT_FOUND = 404;

/** Managers kept per distinct timeout (the client's API timeout is fixed per manager). */
const MAX_CACHED_MANAGERS = 8;

const NANOS_PER_MS = 1_000_000;

export class JetStreamStore implements StreamStore {
  private readonly js: JetStreamClient;
  private readonly managers = new Map<number, Promise<JetStreamManager>>();
  private readonly appendTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly apiTimeoutMs: number;
  private readonly log: Logger | undefined;

  constructor(
    private readonly nc: NatsConnection,
    opts: JetStreamStoreOptions = {},
  ) {
    this.appendTimeoutMs = opts.appendTimeoutMs ?? STREAM_APPEND_TIMEOUT_MS;
    this.readTimeoutMs = opts.readTimeoutMs ?? STREAM_READ_TIMEOUT_MS;
    this.apiTimeoutMs = opts.apiTimeoutMs ?? STREAM_API_TIMEOUT_MS;
    this.log = opts.log;
    this.js = jetstream(nc, { timeout: this.appendTimeoutMs });
  }

  /**
   * Create the stream, or check that the existing one has this exact configuration (the
   * server compares the whole config: a difference answers `invalid`). Needs the JetStream
   * meta leader: `timeout` or `unavailable` while it is elected. The configuration:
   * R`replicas`, file storage, limits retention, discard old, `allow_direct` (reads from any
   * replica), `deny_delete` (a log never loses an entry in its middle: fencing and replay rely
   * on it), purge allowed (trimming below a snapshot), no per-subject limit, no rollups.
   */
  async ensureStream(spec: StreamSpec): Promise<StreamOutcome<{ created: boolean }>> {
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message: 'the NATS connection is closed' };
    const invalid = checkSpec(spec);
    if (invalid !== null) return { ok: false, reason: 'invalid', message: invalid };
    const config: Partial<StreamConfig> & { name: string } = {
      name: spec.name,
      subjects: [...spec.subjects],
      num_replicas: spec.replicas,
      storage: 'file' as StreamConfig['storage'],
      retention: 'limits' as StreamConfig['retention'],
      discard: 'old' as StreamConfig['discard'],
      duplicate_window: spec.duplicateWindowMs * NANOS_PER_MS,
      max_age: (spec.maxAgeMs ?? 0) * NANOS_PER_MS,
      max_msg_size: spec.maxEntryBytes ?? -1,
      allow_direct: true,
      deny_delete: true,
      deny_purge: false,
      allow_rollup_hdrs: false,
    };
    try {
      const jsm = await this.manager(this.apiTimeoutMs);
      const info = await jsm.streams.add(config);
      // nats-server 2.9 says whether this request created it; an identical config is not an error.
      const created = (info as { did_create?: boolean }).did_create === true;
      return { ok: true, created };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JS_ERR.streamNameInUse) {
        return { ok: false, reason: 'invalid', message: `stream ${spec.name} exists with another configuration: ${err.message}` };
      }
      return this.failure(err, `ensureStream ${spec.name}`);
    }
  }

  async append(stream: string, subject: string, data: Uint8Array, opts: AppendOptions = {}): Promise<AppendOutcome> {
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message: 'the NATS connection is closed' };
    const expect: { streamName: string; lastMsgID?: string; lastSubjectSequence?: number; lastSequence?: number } = { streamName: stream };
    if (opts.expectLastMsgId !== undefined) expect.lastMsgID = opts.expectLastMsgId;
    if (opts.expectLastSubjectSeq !== undefined) expect.lastSubjectSequence = opts.expectLastSubjectSeq;
    if (opts.expectLastSeq !== undefined) expect.lastSequence = opts.expectLastSeq;
    try {
      const ack = await this.js.publish(subject, data, {
        msgID: opts.msgId,
        expect,
        timeout: opts.timeoutMs ?? this.appendTimeoutMs,
      });
      return { ok: true, seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      if (err instanceof JetStreamApiError) {
        switch (err.code) {
          case JS_ERR.wrongLastMsgId:
            return { ok: false, reason: 'wrong_last_msg_id', message: err.message };
          case JS_ERR.wrongLastSequence:
            // One code for both expectations; an append that sets both is told the subject's.
            return { ok: false, reason: opts.expectLastSubjectSeq !== undefined ? 'wrong_last_subject_seq' : 'wrong_last_seq', message: err.message };
          case JS_ERR.messageTooLarge:
            return { ok: false, reason: 'too_large', message: err.message };
          case JS_ERR.streamMismatch:
            throw new Error(`append to ${stream}: subject ${subject} is captured by another stream (${err.message})`);
          default:
            return { ok: false, reason: 'unavailable', message: `JetStream error ${err.code}: ${err.message}` };
        }
      }
      if (err instanceof InvalidArgumentError && /max_payload/.test(err.message)) {
        return { ok: false, reason: 'too_large', message: `${data.length} bytes: ${err.message}` };
      }
      const f = this.transportFailure(err);
      return { ok: false, reason: f.reason, message: `append to ${stream}: ${f.message}` };
    }
  }

  async get(stream: string, seq: number, opts: { next?: boolean; subject?: string; timeoutMs?: number } = {}): Promise<GetOutcome> {
    const next = opts.next === true;
    if (!next && seq < 1) return { ok: false, reason: 'not_found', message: `no entry ${seq} in ${stream}` };
    // `subject` narrows a `next` search only ('>' matches every subject).
    const query = next ? { seq: Math.max(1, seq), next_by_subj: opts.subject ?? '>' } : { seq };
    return this.directGet(stream, query, opts.timeoutMs);
  }

  async lastOnSubject(stream: string, subject: string, timeoutMs?: number): Promise<GetOutcome> {
    return this.directGet(stream, { last_by_subj: subject }, timeoutMs);
  }

  /**
   * First and last sequence from the stream's info. Only the stream leader answers it (the
   * meta leader answers for a stream that does not exist), so it is `timeout` during an
   * election and on a minority, unlike `get`.
   */
  async info(stream: string, timeoutMs?: number): Promise<StreamOutcome<{ firstSeq: number; lastSeq: number }>> {
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message: 'the NATS connection is closed' };
    try {
      const jsm = await this.manager(timeoutMs ?? this.readTimeoutMs);
      const si = await jsm.streams.info(stream);
      return { ok: true, firstSeq: si.state.first_seq, lastSeq: si.state.last_seq };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JS_ERR.streamNotFound) return { ok: false, reason: 'invalid', message: `no stream ${stream}` };
      return this.failure(err, `info ${stream}`);
    }
  }

  /**
   * JetStream's purge with `seq` (`$JS.API.STREAM.PURGE`): removes every entry below
   * `keepFromSeq`. The stream leader proposes it to the stream's Raft group, so replicas purge
   * at the same point in the stream's order. Like `info`, `timeout` without a stream leader.
   */
  async purge(stream: string, opts: { keepFromSeq: number; timeoutMs?: number }): Promise<StreamOutcome<{ purged: number }>> {
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message: 'the NATS connection is closed' };
    if (!Number.isSafeInteger(opts.keepFromSeq) || opts.keepFromSeq < 1) return { ok: false, reason: 'invalid', message: `purge ${stream}: keepFromSeq must be a sequence (got ${opts.keepFromSeq})` };
    try {
      const jsm = await this.manager(opts.timeoutMs ?? this.readTimeoutMs);
      const r = await jsm.streams.purge(stream, { seq: opts.keepFromSeq });
      return { ok: true, purged: r.purged };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JS_ERR.streamNotFound) return { ok: false, reason: 'invalid', message: `no stream ${stream}` };
      return this.failure(err, `purge ${stream}`);
    }
  }

  // ---- internal ---------------------------------------------------------------------------

  /**
   * One direct get. Any replica may answer (they share a queue group), so an entry acked a
   * moment ago can be `not_found` on a replica that has not applied it yet.
   */
  private async directGet(stream: string, query: object, timeoutMs: number | undefined): Promise<GetOutcome> {
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message: 'the NATS connection is closed' };
    let m: Msg;
    try {
      m = await this.nc.request(`$JS.API.DIRECT.GET.${stream}`, JSON.stringify(query), { timeout: timeoutMs ?? this.readTimeoutMs });
    } catch (err) {
      const f = this.transportFailure(err);
      return { ok: false, reason: f.reason, message: `direct get ${stream} ${JSON.stringify(query)}: ${f.message}` };
    }
    const h = m.headers;
    const code = h?.code ?? 0;
    if (code === STATUS_NOT_FOUND) return { ok: false, reason: 'not_found', message: `no entry ${JSON.stringify(query)} in ${stream}` };
    if (h === undefined || code !== 0) {
      return { ok: false, reason: 'unavailable', message: `direct get ${stream} ${JSON.stringify(query)}: status ${code} ${h?.description ?? ''}`.trim() };
    }
    const entry: StreamEntry = {
      seq: Number(h.get('Nats-Sequence')),
      subject: h.get('Nats-Subject'),
      data: m.data,
      msgId: h.has('Nats-Msg-Id') ? h.get('Nats-Msg-Id') : null,
    };
    return { ok: true, entry };
  }

  private manager(timeoutMs: number): Promise<JetStreamManager> {
    let m = this.managers.get(timeoutMs);
    if (m === undefined) {
      // checkAPI false: no request at creation, so this never waits on the meta leader.
      m = jetstreamManager(this.nc, { timeout: timeoutMs, checkAPI: false });
      if (this.managers.size < MAX_CACHED_MANAGERS) this.managers.set(timeoutMs, m);
    }
    return m;
  }

  private failure(err: unknown, what: string): { ok: false; reason: 'unavailable' | 'timeout' | 'closed'; message: string } {
    if (err instanceof JetStreamApiError) return { ok: false, reason: 'unavailable', message: `${what}: JetStream error ${err.code}: ${err.message}` };
    const f = this.transportFailure(err);
    return { ok: false, reason: f.reason, message: `${what}: ${f.message}` };
  }

  /** No responders → unavailable; a closed connection → closed; anything else leaves the outcome unknown → timeout. */
  private transportFailure(err: unknown): { reason: 'unavailable' | 'timeout' | 'closed'; message: string } {
    const message = err instanceof Error ? err.message : String(err);
    if (this.nc.isClosed() || hasCause(err, ClosedConnectionError)) return { reason: 'closed', message };
    if (hasCause(err, NoRespondersError) || (err instanceof RequestError && err.isNoResponders())) return { reason: 'unavailable', message: `no responders (${message})` };
    if (!hasCause(err, TimeoutError)) this.log?.warn({ err: message }, 'JetStream request failed; outcome unknown');
    return { reason: 'timeout', message };
  }
}

function hasCause(err: unknown, kind: abstract new (...args: never[]) => Error): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8; depth++) {
    if (e instanceof kind) return true;
    if (!(e instanceof Error)) return false;
    e = e.cause;
  }
  return false;
}

/** Why a spec cannot become a stream (null: it can); the server would refuse it less clearly. */
function checkSpec(spec: StreamSpec): string | null {
  if (!/^[^\s.*>/\\]+$/.test(spec.name)) return `stream name ${JSON.stringify(spec.name)} may not hold spaces, '.', '*', '>', '/' or '\\'`;
  if (spec.subjects.length === 0) return `stream ${spec.name} captures no subject`;
  if (!Number.isInteger(spec.replicas) || spec.replicas < 1 || spec.replicas > 5) return `stream ${spec.name}: replicas must be 1 to 5`;
  if (!(spec.duplicateWindowMs > 0)) return `stream ${spec.name}: the duplicate window must be positive`;
  if (spec.maxAgeMs !== undefined && spec.maxAgeMs > 0 && spec.maxAgeMs < spec.duplicateWindowMs) {
    return `stream ${spec.name}: max age ${spec.maxAgeMs} ms is shorter than the duplicate window`;
  }
  return null;
}
