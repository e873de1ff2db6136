/**
 * Carries envelopes between the schedulers of one node: one MessagePort per scheduler pair,
 * envelopes batched per destination and flushed once per microtask checkpoint (or when a
 * batch is full), msgpackr-encoded into one transferred buffer. One port per pair keeps
 * per-(sender, receiver) FIFO across threads.
 */
import type { MessagePort } from 'node:worker_threads';
import { decodeBatch, encodeBatch, type Envelope } from '../Envelope.js';
import type { ProcessBody, ModuleSpec } from '../ProcessContext.js';
import type { Scheduler, SchedulerHost } from '../Scheduler.js';
import { CROSS_BATCH_MAX } from '../defaults.js';

/** Something that accepts envelopes for other nodes (the distribution layer). */
export type RemoteNodeRoute = (node: string, sched: number, env: Envelope) => void;

export class ThreadHost implements SchedulerHost {
  private readonly ports: (MessagePort | undefined)[] = [];
  private readonly batches: (Envelope[] | undefined)[] = [];
  private flushScheduled = false;
  private scheduler: Scheduler | null = null;
  /** Envelopes for other nodes; dropped until distribution is attached. */
  remoteNode: RemoteNodeRoute | null = null;
  batchesSent = 0;
  envelopesSent = 0;

  constructor(private readonly node: string) {}

  bind(s: Scheduler): void {
    this.scheduler = s;
  }

  /** Use `port` for scheduler `id` (replacing a port of an earlier incarnation). */
  attach(id: number, port: MessagePort): void {
    const old = this.ports[id];
    if (old !== undefined) {
      old.removeAllListeners('message');
      old.close();
    }
    this.batches[id] = undefined;
    this.ports[id] = port;
    port.on('message', (bytes: Uint8Array) => this.onBatch(bytes));
  }

  detach(id: number): void {
    const old = this.ports[id];
    if (old !== undefined) {
      old.removeAllListeners('message');
      old.close();
    }
    this.ports[id] = undefined;
    this.batches[id] = undefined;
  }

  route(node: string, sched: number, env: Envelope): void {
    if (node !== this.node) {
      this.remoteNode?.(node, sched, env);
      return;
    }
    if (this.ports[sched] === undefined) return; // no such scheduler (or it is restarting)
    let b = this.batches[sched];
    if (b === undefined) b = this.batches[sched] = [];
    b.push(env);
    if (b.length >= CROSS_BATCH_MAX) this.flushOne(sched);
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    for (let i = 0; i < this.batches.length; i++) if (this.batches[i] !== undefined) this.flushOne(i);
  };

  private flushOne(id: number): void {
    const b = this.batches[id];
    const port = this.ports[id];
    this.batches[id] = undefined;
    if (b === undefined || b.length === 0 || port === undefined) return;
    const bytes = encodeBatch(b);
    this.batchesSent++;
    this.envelopesSent += b.length;
    port.postMessage(bytes, [bytes.buffer as ArrayBuffer]);
  }

  private onBatch(bytes: Uint8Array): void {
    const s = this.scheduler;
    if (s === null) return;
    const batch = decodeBatch(bytes);
    for (let i = 0; i < batch.length; i++) s.receiveEnvelope(batch[i] as Envelope);
  }

  async loadBody(spec: ModuleSpec): Promise<ProcessBody> {
    const mod = (await import(spec.module)) as Record<string, (...a: unknown[]) => ProcessBody>;
    const factory = mod[spec.fn];
    if (typeof factory !== 'function') throw new Error(`${spec.module} has no export named ${spec.fn}`);
    return factory(...(spec.args ?? []));
  }
}
