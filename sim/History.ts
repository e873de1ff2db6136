/**
 * What happened, as the checkers read it: client operations as invoke/ok/fail/info entries
 * (Jepsen style), and the service's white-box events (what it reported durable, which ACKs
 * it made durable, what it refused). Everything is plain data with virtual timestamps, so a
 * witness can be printed and a run compared with its replay.
 */

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

export interface HistoryEntry {
  at: number;
  client: number;
  type: OpType;
  op: 'login' | 'send' | 'resend' | 'deliver' | 'ack' | 'status' | 'disconnect' | 'refused' | 'group_create' | 'group_add';
  /** Operation details (payload key, message id, status...). */
  value: string;
  /** The client's connection number. */
  conn: number;
}

export interface Sent {
  at: number;
  client: number;
  conn: number;
  target: number;
  kind: 0 | 1;
  seq: number;
  key: string;
  payloadHex: string;
  /** Sent after the heal, when every message must get through. */
  liveness: boolean;
}

export interface Delivered {
  at: number;
  client: number;
  conn: number;
  /** Time the client's login on that connection completed. */
  loginAt: number;
  msgId: string;
  /** The RELIABLE_MSG payload as delivered. */
  payloadHex: string;
  /** The client's own payload inside it (the ciphertext of a GROUP_MSG, else the same). */
  innerHex: string;
  /** For a group message: the `sender` the server stamped into its header (-1 if none). */
  stampedSender: number;
}

export interface Claim {
  at: number;
  node: string;
  user: number;
  msgId: string;
  payloadHex: string;
  /** Whether the inbox key was on the disk when the service said so. */
  onDisk: boolean;
}

export class History {
  readonly entries: HistoryEntry[] = [];
  readonly sent: Sent[] = [];
  readonly delivered: Delivered[] = [];
  /** Messages the service reported durable (the acknowledgement of storage). */
  readonly claims: Claim[] = [];
  /** Messages whose write the service reported failed. */
  readonly storeFailed: { at: number; user: number; msgId: string }[] = [];
  /** ACKs the service made durable: (user, msgId) → time. */
  readonly ackDurable = new Map<string, number>();
  /** Connections on which the client saw an ERROR or RATE_LIMITED frame. */
  readonly refusedConns = new Set<string>();
  /** Payloads a client sent again on a later connection (their arrival says nothing about the first one's connection). */
  readonly resent = new Set<string>();
  /** Group members the operator has confirmed, with the time of confirmation. */
  readonly groupMembers = new Map<number, number>();
  /** Presence answers: when the question was asked (answers come in request order), observer, subject, online. */
  readonly statuses: { at: number; observer: number; subject: number; online: boolean }[] = [];

  add(e: HistoryEntry): void {
    this.entries.push(e);
  }
}
