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
  | 'presence_leak';

export const CANARY_NAMES: readonly CanaryName[] = ['ack_before_fsync', 'dedup_wrong_key', 'drop_unacked_on_disconnect', 'router_reorder', 'presence_leak'];

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
