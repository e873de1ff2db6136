/**
 * An in-memory core-NATS hub for unit tests ONLY: `ClusterTransport`s of several nodes in one
 * test process, with wildcard subjects, request/reply (no responders when nobody listens) and
 * delivery on a later macrotask (never inside the publisher's call), in publish order. A test
 * can drop messages (`drop`), as core NATS may. Integration tests use real NATS instead.
 */
import type { ClusterTransport, TransportLinkState, TransportReply } from '../../runtime/Env.js';
import { subjectMatches } from '../../sim/SimNats.js';

interface Sub {
  tokens: string[];
  fn: (data: Uint8Array, subject: string, reply: string | undefined) => void;
  active: boolean;
}

export class MemoryHub {
  /** @internal */
  readonly subs = new Set<Sub>();
  /** @internal */
  inbox = 0;
  /** Messages on subjects for which this returns true are dropped (at most once). */
  drop: (subject: string) => boolean = () => false;
  published = 0;

  connect(): ClusterTransport {
    return this.transport(this);
  }

  private transport(hub: MemoryHub): ClusterTransport {
    return {
      publish(subject, data, reply) {
        hub.publish(subject, data, reply);
      },
      subscribe(subject, onMessage) {
        const s: Sub = { tokens: subject.split('.'), fn: onMessage, active: true };
        hub.subs.add(s);
        return {
          unsubscribe() {
            s.active = false;
            hub.subs.delete(s);
          },
        };
      },
      request(subject, data, timeoutMs): Promise<TransportReply> {
        const inbox = `_INBOX.${++hub.inbox}`;
        if (![...hub.subs].some((s) => subjectMatches(s.tokens, subject))) return Promise.resolve({ ok: false, reason: 'no_responders' });
        return new Promise((resolve) => {
          const s: Sub = {
            tokens: inbox.split('.'),
            active: true,
            fn: (d) => {
              hub.subs.delete(s);
              clearTimeout(timer);
              resolve({ ok: true, data: d });
            },
          };
          const timer = setTimeout(() => {
            hub.subs.delete(s);
            resolve({ ok: false, reason: 'timeout' });
          }, timeoutMs);
          hub.subs.add(s);
          hub.publish(subject, data, inbox);
        });
      },
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
      linkState: 'up' as TransportLinkState,
      onLinkState: () => () => undefined,
      maxPayload: 1024 * 1024,
    };
  }

  /** @internal */
  publish(subject: string, data: Uint8Array, reply: string | undefined): void {
    this.published++;
    if (this.drop(subject)) return;
    const copy = Uint8Array.from(data);
    const targets = [...this.subs].filter((s) => subjectMatches(s.tokens, subject));
    setImmediate(() => {
      for (const s of targets) if (s.active) s.fn(copy, subject, reply);
    });
  }
}
