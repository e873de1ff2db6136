/**
 * Counters of the core layer for /metrics: plain numbers, written by the one process that owns
 * each event (router shards, groups), read by the HTTP handler on the same thread. Monotonic.
 */
export interface CoreCounters {
  /** Messages made durable in an inbox. */
  stored: number;
  /** SEND_SEQ repeats dropped. */
  dedupHits: number;
  /** Messages refused because the recipient's inbox was full (the sender is told). */
  inboxFullRefusals: number;
  /** Group messages refused because the sender's fan-out budget was spent (the sender is told). */
  groupFanoutRefusals: number;
  /** In a cluster: routes sent again by their connection and answered as the first time (not stored twice). */
  routeDedupHits: number;
}

export function newCoreCounters(): CoreCounters {
  return { stored: 0, dedupHits: 0, inboxFullRefusals: 0, groupFanoutRefusals: 0, routeDedupHits: 0 };
}
