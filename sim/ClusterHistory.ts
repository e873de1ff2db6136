/**
 * What happened in a cluster run, as the cluster checkers read it: the workload's operations
 * (sends, deliveries, group and key-directory requests and their answers, presence reads) and
 * the clustered core's white-box events — every inbox append a group's owner issued, where and
 * when, whether the core reported it durable or failed, and what the disks held at that
 * instant, and every removal (ACK) an owner made durable. Plain data with virtual timestamps, so a witness can be printed and a run compared
 * with its replay. Nothing here looks at the world; the workload and the simulation fill it.
 */

/** A message a user sent: a direct one (plain or SEND_SEQ) or one to a chat group. */
export interface ClusterSent {
  at: number;
  /** Sender and recipient user indices (GROUP_TARGET for a group message). */
  sender: number;
  target: number;
  /** 0: plain route, 1: SEND_SEQ (its `n` is the sequence number). */
  kind: 0 | 1;
  /** Per (sender, target), increasing over the run. */
  n: number;
  /** The sender's session (agent incarnation) it left from. */
  session: number;
  /** Node the sender was connected through. */
  via: string;
  key: string;
  payloadHex: string;
  /** Sent after the heal, once the cluster had settled: it must get through. */
  liveness: boolean;
}

/** An inbox append an owner issued (white-box, from the group's wrapped inbox). */
export interface ClusterAppend {
  at: number;
  /** `<node>#<incarnation>` of the owner. */
  node: string;
  nodeName: string;
  group: number;
  user: number;
  msgId: string;
  payloadHex: string;
  /** User index of the message's sender (as the core knows it). */
  from: number;
  /** When the core reported the outcome (null: never, e.g. the node died first). */
  settledAt: number | null;
  durable: boolean | null;
  /** Whether the owner's disk held the message when it was reported durable. */
  onOwnerDisk: boolean | null;
  /** Whether another node's disk held it then (a standby, which durability quorum waits for). */
  onStandbyDisk: boolean | null;
  /** Whether a standby had to hold it (durability quorum with a standby recorded). */
  standbyRequired: boolean;
  /** How long the owner had seen fewer than a majority of the expected nodes when the append was issued (0: a majority). */
  minorityForMs: number;
  /** Whether the owner's partition guard was in safe mode when the append was issued. */
  safeMode: boolean;
  /** The owner's distribution incarnation and the majority its guard needs (to replay its view). */
  distIncarnation: number;
  majorityNeeded: number;
}

/** A delivery a user's session received from its router shard. */
export interface ClusterDelivered {
  at: number;
  user: number;
  session: number;
  msgId: string;
  payloadHex: string;
  /** User index of the sender the core stamped on the record. */
  from: number;
}

/** A request to a groups server or key directory, and its answer. */
export interface ClusterRequest {
  id: number;
  at: number;
  user: number;
  session: number;
  op: 'group_create' | 'group_msg' | 'group_add' | 'key_upload' | 'key_fetch';
  detail: string;
  liveness: boolean;
  answeredAt: number | null;
  answer: string | null;
}

/** A one-time prekey a fetch handed out. */
export interface PrekeyHandedOut {
  at: number;
  fetcher: number;
  target: number;
  keyHex: string;
}

/** A line of the run's log (what the workload and the nemesis did), for witnesses. */
export interface ClusterEvent {
  at: number;
  what: string;
}

export class ClusterHistory {
  readonly sent: ClusterSent[] = [];
  readonly appends: ClusterAppend[] = [];
  readonly delivered: ClusterDelivered[] = [];
  readonly requests: ClusterRequest[] = [];
  readonly prekeys: PrekeyHandedOut[] = [];
  /**
   * Messages whose removal (a client's ACK) an owner reported durable: `<user>/<msgId>` → when.
   * Such a message is gone from the final inbox by design. Empty in core-level runs (no ACKs).
   */
  readonly acked = new Map<string, number>();
  /**
   * Messages an owner was asked to remove (a client's ACK reached it), whatever the outcome:
   * `<user>/<msgId>`. A removal reported failed may still be in the shard stream (an owner that
   * could not apply its own acknowledged entry gives the group up, and the next owner applies it).
   */
  readonly removalsAsked = new Set<string>();
  /** Payloads a sender routed again (a SEND_SEQ resent with its number). */
  readonly resent = new Set<string>();
  /** Route refusals each user's sessions heard (code → count). */
  readonly refusals = new Map<string, number>();
  /** Chat group members the operator confirmed (gid → user → time). */
  readonly members = new Map<string, Map<number, number>>();
  /** Prekey uploads confirmed durable (user → one-time key hexes uploaded). */
  readonly uploaded = new Map<number, string[]>();
  /** Drain calls the nemesis made and their answers. */
  readonly drains: Array<{ at: number; node: string; answeredAt: number | null; ok: boolean | null; message: string }> = [];
  readonly log: ClusterEvent[] = [];

  note(at: number, what: string): void {
    this.log.push({ at, what });
  }
}
