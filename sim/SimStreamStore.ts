/**
 * The Env's StreamStore of one simulated node, bound to the JetStream model
 * (sim/SimJetStream.ts) through the node's client connection: each call is a request to the
 * node's NATS server and waits for its answer or its timeout (the caller's, else the model's
 * default), so a lost request or reply is a `timeout` whose outcome is unknown, exactly as
 * with the production binding. A call while the node's link is down answers `unavailable` at
 * once (nothing was sent). A crashed node's pending calls never settle.
 */
import type { AppendOptions, AppendOutcome, GetOutcome, StreamOutcome, StreamSpec, StreamStore } from '../runtime/Env.js';
import type { JsRequest, SimJetStream } from './SimJetStream.js';
import type { SimNatsClient } from './SimNatsClient.js';
import type { SimWorld } from './SimWorld.js';

type Failure = { ok: false; reason: 'unavailable' | 'timeout' | 'closed'; message: string };

export class SimStreamStore implements StreamStore {
  /** Requests sent and answers received (timeouts are the difference, less those in flight). */
  readonly stats = { requests: 0, answers: 0, timeouts: 0 };

  constructor(
    private readonly js: SimJetStream,
    private readonly client: SimNatsClient,
    private readonly world: SimWorld,
    private readonly defaultTimeoutMs: number,
  ) {}

  ensureStream(spec: StreamSpec): Promise<StreamOutcome<{ created: boolean }>> {
    return this.call({ type: 'create', spec }, undefined);
  }

  append(stream: string, subject: string, data: Uint8Array, opts: AppendOptions = {}): Promise<AppendOutcome> {
    return this.call({ type: 'append', stream, subject, data: data.slice(), opts: { ...opts } }, opts.timeoutMs);
  }

  get(stream: string, seq: number, opts: { next?: boolean; subject?: string; timeoutMs?: number } = {}): Promise<GetOutcome> {
    return this.call({ type: 'get', stream, seq, next: opts.next === true, subject: opts.subject }, opts.timeoutMs);
  }

  lastOnSubject(stream: string, subject: string, timeoutMs?: number): Promise<GetOutcome> {
    return this.call({ type: 'last', stream, subject }, timeoutMs);
  }

  info(stream: string, timeoutMs?: number): Promise<StreamOutcome<{ firstSeq: number; lastSeq: number }>> {
    return this.call({ type: 'info', stream }, timeoutMs);
  }

  purge(stream: string, opts: { keepFromSeq: number; timeoutMs?: number }): Promise<StreamOutcome<{ purged: number }>> {
    return this.call({ type: 'purge', stream, keepFromSeq: opts.keepFromSeq }, opts.timeoutMs);
  }

  private call<T>(req: JsRequest, timeoutMs: number | undefined): Promise<T> {
    if (this.client.state === 'closed') return Promise.resolve(fail('closed', 'the NATS connection is closed') as T);
    this.stats.requests++;
    return new Promise<T>((resolve) => {
      let done = false;
      const settle = (outcome: unknown): void => {
        if (done) return;
        done = true;
        this.world.cancel(timer);
        resolve(outcome as T);
      };
      const timer = this.world.after(timeoutMs ?? this.defaultTimeoutMs, 'js_timeout', () => {
        this.stats.timeouts++;
        settle(fail('timeout', `no answer from JetStream within ${timeoutMs ?? this.defaultTimeoutMs} ms`));
      }, this.client.owner, 0);
      const sent = this.js.send(this.client, req, {
        client: this.client,
        deliver: (outcome) => {
          if (done) return;
          this.stats.answers++;
          settle(outcome);
        },
      });
      if (!sent) settle(fail('unavailable', 'not connected to NATS'));
    });
  }
}

function fail(reason: Failure['reason'], message: string): Failure {
  return { ok: false, reason, message };
}
