/**
 * Planted bugs that prove the simulator's checkers work (SIM5). Each flag, when set, makes
 * one piece of production code misbehave in a known way; the simulator's canary tests switch
 * one on for a run and assert the checkers catch it within a bounded number of seeds. Every
 * flag is off unless a test plants it, and nothing outside the simulator does.
 */

export type CanaryName =
  /** The inbox reports a message durable before its write is on stable storage. */
  | 'ack_before_fsync'
  /** SEND_SEQ dedup keyed by recipient only, so one sender's seq suppresses another's. */
  | 'dedup_wrong_key'
  /** A connection that closes removes its unacknowledged deliveries as if they were ACKed. */
  | 'drop_unacked_on_disconnect'
  /** The router now and then holds a message back and routes it after the next one. */
  | 'router_reorder'
  /** A session that ends leaves its user shown online. */
  | 'presence_leak'
  // ---- the clustered core (core/cluster/), caught by the cluster simulation ----
  /**
   * Ownership records written as JetStream KV updates, whose compare-and-set races on
   * nats-server 2.9.10 (both of two racing updates can win): the control stream's
   * compare-and-append leaves out its Msg-Id and relies on the expected subject sequence alone,
   * which is what a KV update sends.
   */
  | 'kv_update_lease'
  /** Shard-stream entries fenced only by an expected stream sequence, pipelined (no Msg-Id chain). */
  | 'pipelined_expected_seq'
  /** A write acknowledged to its caller as soon as its entry is sent, before JetStream's PubAck. */
  | 'ack_before_puback'
  /** A stale owner whose append is refused picks up the stream's new end and keeps writing. */
  | 'stale_owner_keeps_writing'
  /** The partition guard never enters safe mode: a node that sees a minority keeps taking writes. */
  | 'minority_writes'
  /** Writes that reach a group frozen for its hand-off are answered done and dropped. */
  | 'handoff_drops_writes'
  /** The owner trims its shard stream up to its own applied entry, past what its standbys applied. */
  | 'trim_above_standby';

/** The planted bugs of the single-node service (the single-node simulation catches them). */
export const NODE_CANARY_NAMES: readonly CanaryName[] = ['ack_before_fsync', 'dedup_wrong_key', 'drop_unacked_on_disconnect', 'router_reorder', 'presence_leak'];
/** The planted bugs of the clustered core (the cluster simulation catches them). */
export const CLUSTER_CANARY_NAMES: readonly CanaryName[] = ['kv_update_lease', 'pipelined_expected_seq', 'ack_before_puback', 'stale_owner_keeps_writing', 'minority_writes', 'handoff_drops_writes', 'trim_above_standby'];
export const CANARY_NAMES: readonly CanaryName[] = [...NODE_CANARY_NAMES, ...CLUSTER_CANARY_NAMES];

const planted = new Set<CanaryName>();

/** Whether `name` is planted; production code asks this at the one place each bug lives. */
export function canary(name: CanaryName): boolean {
  return planted.size !== 0 && planted.has(name);
}

/** Plant exactly `name` (or none with null). Test-only. */
export function plantCanary(name: CanaryName | null): void {
  planted.clear();
  if (name !== null) planted.add(name);
}
