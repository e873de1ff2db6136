/**
 * Exit reasons and the system messages that carry them (OTP semantics).
 *
 * Reasons are plain serialisable values so they cross threads and nodes unchanged.
 * `normal` does not kill a linked process; `kill` is untrappable and is seen by others as
 * `killed`; `noproc` is the reason of a monitor on a pid that was already dead;
 * `noconnection` is the reason when the scheduler or node hosting a pid is lost.
 */
import type { Pid, Ref } from './Pid.js';

export type ExitReason =
  | 'normal'
  | 'shutdown'
  | 'kill'
  | 'killed'
  | 'noproc'
  | 'noconnection'
  | 'mailbox_overflow'
  | { shutdown: unknown }
  | CrashReason
  | string
  | { [k: string]: unknown };

/** What a process that threw dies with. */
export interface CrashReason {
  error: string;
  name?: string;
  stack?: string;
}

/** Delivered (in the system lane) to a process that traps exits. */
export interface ExitMessage {
  type: 'EXIT';
  from: Pid;
  reason: ExitReason;
}

/** Delivered (in the system lane) when a monitored process goes away. */
export interface DownMessage {
  type: 'DOWN';
  ref: Ref;
  pid: Pid;
  reason: ExitReason;
}

/** Sent back to a sender whose message was refused by a bounded mailbox with policy `reject`. */
export interface MailboxFullMessage {
  type: 'MAILBOX_FULL';
  to: Pid;
  message: unknown;
}

export function isExitMessage(m: unknown): m is ExitMessage {
  return typeof m === 'object' && m !== null && (m as ExitMessage).type === 'EXIT' && 'from' in m;
}

export function isDownMessage(m: unknown): m is DownMessage {
  return typeof m === 'object' && m !== null && (m as DownMessage).type === 'DOWN' && 'ref' in m;
}

/** Reasons after which a `transient` child is not restarted and no crash is reported. */
export function isNormalExit(reason: ExitReason): boolean {
  return (
    reason === 'normal' ||
    reason === 'shutdown' ||
    (typeof reason === 'object' && reason !== null && 'shutdown' in reason && Object.keys(reason).length === 1)
  );
}

/** Throw this from process code to exit with `reason` without it being reported as a crash. */
export class ProcessExit extends Error {
  constructor(readonly reason: ExitReason) {
    super(`process exit: ${describeReason(reason)}`);
    this.name = 'ProcessExit';
  }
}

export function crashReason(err: unknown): ExitReason {
  if (err instanceof ProcessExit) return err.reason;
  if (err instanceof Error) return { error: err.message, name: err.name, stack: err.stack };
  return { error: String(err) };
}

export function describeReason(reason: ExitReason): string {
  if (typeof reason === 'string') return reason;
  try {
    return JSON.stringify(reason, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return String(reason);
  }
}
