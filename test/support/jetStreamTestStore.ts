/**
 * A minimal `StreamStore` (runtime/Env.ts) on real JetStream, for the cluster's integration
 * tests only, until the production binding (runtime/node/JetStreamStore.ts) lands: the lead
 * swaps it in by changing `openTestStreamStore` below (the only place tests get a store from).
 * It speaks the JetStream wire API directly over one core NATS connection (the only client
 * package installed is @nats-io/transport-node): stream create and info
 * (`$JS.API.STREAM.CREATE|INFO.<stream>`), publish with the Nats-Msg-Id and expectation
 * headers (the PubAck or its error is the reply), and direct get (`$JS.API.DIRECT.GET.<stream>`,
 * answered by any replica, so streams are created with `allow_direct`). No consumer is ever
 * created. It never throws: every outcome is a typed result.
 */
import { connect, headers, NoRespondersError, RequestError, TimeoutError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { AppendOptions, AppendOutcome, GetOutcome, StreamOutcome, StreamSpec, StreamStore } from '../../runtime/Env.js';

/** Wait for a JetStream API answer this long unless the caller says otherwise. */
const DEFAULT_TIMEOUT_MS = 5_000;
/** JetStream error codes (nats-server's errors.json) that the interface names. */
const JS_WRONG_LAST_MSG_ID = 10070;
const JS_WRONG_LAST_SEQUENCE = 10071;
const JS_MESSAGE_TOO_LARGE = 10054;
const JS_STREAM_NOT_FOUND = 10059;
const NS_PER_MS = 1_000_000;

const utf8 = new TextEncoder();
const text = new TextDecoder();

export interface TestStreamStore extends StreamStore {
  close(): Promise<void>;
}

/** The StreamStore the cluster tests use, connected to `servers` (through the node's proxy). */
export async function openTestStreamStore(servers: readonly string[], name: string): Promise<TestStreamStore> {
  const nc = await connect({ servers: [...servers], name: `${name}-js`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 50, ignoreClusterUpdates: true, pingInterval: 60_000 });
  return new JetStreamTestStore(nc);
}

interface ApiError {
  code: number;
  err_code?: number;
  description?: string;
}

class JetStreamTestStore implements TestStreamStore {
  constructor(private readonly nc: NatsConnection) {}

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.close();
  }

  async ensureStream(spec: StreamSpec): Promise<StreamOutcome<{ created: boolean }>> {
    const config = {
      name: spec.name,
      subjects: [...spec.subjects],
      retention: 'limits',
      storage: 'file',
      num_replicas: spec.replicas,
      duplicate_window: spec.duplicateWindowMs * NS_PER_MS,
      max_age: (spec.maxAgeMs ?? 0) * NS_PER_MS,
      max_msg_size: spec.maxEntryBytes ?? -1,
      discard: 'old',
      allow_direct: true,
    };
    const info = await this.api(`$JS.API.STREAM.INFO.${spec.name}`, {}, DEFAULT_TIMEOUT_MS);
    if (info.ok) return { ok: true, created: false };
    if (info.reason !== 'invalid' || info.error?.err_code !== JS_STREAM_NOT_FOUND) return failed(info);
    const r = await this.api(`$JS.API.STREAM.CREATE.${spec.name}`, config, DEFAULT_TIMEOUT_MS);
    if (r.ok) return { ok: true, created: true };
    return failed(r);
  }

  async append(stream: string, subject: string, data: Uint8Array, opts: AppendOptions = {}): Promise<AppendOutcome> {
    const h = headers();
    if (opts.msgId !== undefined) h.set('Nats-Msg-Id', opts.msgId);
    if (opts.expectLastMsgId !== undefined) h.set('Nats-Expected-Last-Msg-Id', opts.expectLastMsgId);
    if (opts.expectLastSubjectSeq !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(opts.expectLastSubjectSeq));
    h.set('Nats-Expected-Stream', stream);
    let m: Msg;
    try {
      m = await this.nc.request(subject, data, { timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, headers: h });
    } catch (err) {
      return this.requestFailure(err);
    }
    if (m.headers?.code === 503) return { ok: false, reason: 'unavailable', message: 'no responders (no stream leader)' };
    let ack: { seq?: number; duplicate?: boolean; error?: ApiError };
    try {
      ack = JSON.parse(text.decode(m.data)) as typeof ack;
    } catch {
      return { ok: false, reason: 'unavailable', message: 'unreadable PubAck' };
    }
    if (ack.error !== undefined) {
      const e = ack.error;
      const message = `${e.code} ${e.err_code ?? ''} ${e.description ?? ''}`;
      if (e.err_code === JS_WRONG_LAST_MSG_ID) return { ok: false, reason: 'wrong_last_msg_id', message };
      if (e.err_code === JS_WRONG_LAST_SEQUENCE) return { ok: false, reason: 'wrong_last_subject_seq', message };
      if (e.err_code === JS_MESSAGE_TOO_LARGE) return { ok: false, reason: 'too_large', message };
      return { ok: false, reason: 'unavailable', message };
    }
    if (typeof ack.seq !== 'number') return { ok: false, reason: 'unavailable', message: 'PubAck without a sequence' };
    return { ok: true, seq: ack.seq, duplicate: ack.duplicate === true };
  }

  get(stream: string, seq: number, opts: { next?: boolean; subject?: string; timeoutMs?: number } = {}): Promise<GetOutcome> {
    const req = opts.next === true ? { seq, next_by_subj: opts.subject ?? '>' } : { seq };
    return this.direct(stream, req, opts.timeoutMs);
  }

  lastOnSubject(stream: string, subject: string, timeoutMs?: number): Promise<GetOutcome> {
    return this.direct(stream, { last_by_subj: subject }, timeoutMs);
  }

  async info(stream: string, timeoutMs?: number): Promise<StreamOutcome<{ firstSeq: number; lastSeq: number }>> {
    const r = await this.api(`$JS.API.STREAM.INFO.${stream}`, {}, timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if (!r.ok) return failed(r);
    const state = (r.body as { state?: { first_seq?: number; last_seq?: number } }).state ?? {};
    return { ok: true, firstSeq: state.first_seq ?? 0, lastSeq: state.last_seq ?? 0 };
  }

  // ---- internal ----------------------------------------------------------------------------

  private async direct(stream: string, req: object, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<GetOutcome> {
    let m: Msg;
    try {
      m = await this.nc.request(`$JS.API.DIRECT.GET.${stream}`, utf8.encode(JSON.stringify(req)), { timeout: timeoutMs });
    } catch (err) {
      return this.requestFailure(err);
    }
    const h = m.headers;
    if (h === undefined) return { ok: false, reason: 'unavailable', message: 'direct get answered without headers' };
    if (h.code === 404) return { ok: false, reason: 'not_found', message: h.description };
    if (h.code !== 0 && h.code !== 200) return { ok: false, reason: 'unavailable', message: `${h.code} ${h.description}` };
    const seq = Number(h.get('Nats-Sequence'));
    const msgId = h.get('Nats-Msg-Id');
    return { ok: true, entry: { seq, subject: h.get('Nats-Subject'), data: m.data, msgId: msgId === '' ? null : msgId } };
  }

  private async api(subject: string, body: object, timeoutMs: number): Promise<{ ok: true; body: unknown } | { ok: false; reason: 'unavailable' | 'timeout' | 'closed' | 'invalid'; message: string; error?: ApiError }> {
    let m: Msg;
    try {
      m = await this.nc.request(subject, utf8.encode(JSON.stringify(body)), { timeout: timeoutMs });
    } catch (err) {
      return this.requestFailure(err);
    }
    let parsed: { error?: ApiError };
    try {
      parsed = JSON.parse(text.decode(m.data)) as typeof parsed;
    } catch {
      return { ok: false, reason: 'unavailable', message: 'unreadable JetStream API answer' };
    }
    if (parsed.error !== undefined) {
      const e = parsed.error;
      const reason = e.code === 503 ? 'unavailable' : 'invalid';
      return { ok: false, reason, message: `${e.code} ${e.err_code ?? ''} ${e.description ?? ''}`, error: e };
    }
    return { ok: true, body: parsed };
  }

  private requestFailure(err: unknown): { ok: false; reason: 'unavailable' | 'timeout' | 'closed'; message: string } {
    const message = err instanceof Error ? err.message : String(err);
    if (this.nc.isClosed()) return { ok: false, reason: 'closed', message };
    if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) return { ok: false, reason: 'unavailable', message };
    if (err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError)) return { ok: false, reason: 'timeout', message };
    return { ok: false, reason: 'timeout', message };
  }
}

function failed(r: { reason: 'unavailable' | 'timeout' | 'closed' | 'invalid'; message: string }): { ok: false; reason: 'unavailable' | 'timeout' | 'closed' | 'invalid'; message: string } {
  return { ok: false, reason: r.reason, message: r.message };
}
