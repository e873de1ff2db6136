/**
 * Control messages between a node's main thread and its scheduler threads (not actor
 * traffic: that goes through ThreadHost ports as envelopes).
 */
import type { MessagePort } from 'node:worker_threads';

export interface SchedulerWorkerData {
  node: string;
  id: number;
  inc: number;
  heartbeat: SharedArrayBuffer;
  logLevel?: string;
}

export type ControlToWorker =
  | { t: 'connect'; id: number; port: MessagePort }
  | { t: 'detach'; id: number }
  | { t: 'peerDown'; node: string; sched: number | null; inc: number | null; reason: unknown }
  | { t: 'dirtyResult'; id: number; ok: true; value: unknown }
  | { t: 'dirtyResult'; id: number; ok: false; error: string }
  | { t: 'query'; id: number; what: 'metrics' | 'processes' }
  | { t: 'shutdown' };

export type ControlFromWorker =
  | { t: 'ready' }
  | { t: 'dirty'; id: number; module: string; fn: string; arg: unknown }
  | { t: 'reply'; id: number; value: unknown }
  | { t: 'stopped' };
