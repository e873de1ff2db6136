/**
 * The load generator's control surface: the JSON config it takes on its command line and the
 * one JSON result line it prints, shared by the generator process and the benches driving it.
 */
import type { LatencySummaryMs } from './histogram.js';

export type LoadgenMode =
  /** Connect and log in `conns` connections, report, then hold them idle until told to stop. */
  | 'hold'
  /** 1:1 v1 traffic: connection i sends to the user of connection i+1 (a ring); every delivery is ACKed. */
  | 'deliver'
  /** Raw WebSocket echo: each connection sends payloads to an echo server and counts them back. */
  | 'echo'
  /**
   * Reconnect and resume: log in, send oneself `unacked` messages and keep them unacknowledged,
   * report `{"event":"primed"}`; every connection the server then closes logs in again on one
   * of `reconnectPorts` and must get exactly those messages back (acknowledged this time).
   */
  | 'resume';

/** Who sends to whom in `deliver` mode. */
export type DeliverShape =
  /** Connection i sends to the user of connection i+1; every connection sends and receives. */
  | 'ring'
  /**
   * The first half of the connections send, the second half receive: connection i sends to the
   * user of connection conns/2 + i. The receiving half connects to `recipientPort`.
   */
  | 'pairs';

export interface LoadgenConfig {
  mode: LoadgenMode;
  transport: 'tcp' | 'ws';
  host: string;
  port: number;
  /** WebSocket path (default '/ws'). */
  wsPath?: string;
  conns: number;
  /** Users are `${userPrefix}${userOffset + i}`. */
  userPrefix: string;
  userOffset?: number;
  /** File with one JWT per line; line userOffset + i is the token of connection i. */
  tokensFile?: string;
  /** Connection attempts in flight (default 200). */
  connectConcurrency?: number;
  /** LOGIN packets in flight (default 2,000). */
  loginConcurrency?: number;
  /** Payload bytes per message, at least 16 (default 128). */
  msgBytes?: number;
  /** Closed loop: messages in flight per sending connection (default 16). */
  window?: number;
  /** Open loop: total messages per second (0 = closed loop with `window`). */
  rate?: number;
  /** Open loop: a sender with this many unreceived messages is skipped (default 1,000). */
  maxOutstandingPerSender?: number;
  /** Traffic before the measured window (default 1,000 ms). */
  warmupMs?: number;
  /** The measured window (default 5,000 ms). */
  durationMs?: number;
  /** After the window: how long to wait for messages still in flight (default 3,000 ms). */
  drainMs?: number;
  /** Stop sending after this many messages in total (default unbounded). */
  maxMessages?: number;
  /** WebSocket: put every packet queued for a connection in one tick into one frame (default false: one packet per frame). */
  wsCoalesce?: boolean;
  /**
   * TCP: bind connection sockets to explicit source ports from here up (0 = let the kernel pick).
   * Past ~10,000 connections to one address the kernel's ephemeral port search gets slow; a
   * disjoint range per generator process keeps connects cheap.
   */
  localPortBase?: number;
  /**
   * TCP with `localPortBase`: the source address to bind (default `host`). Generators with
   * different loopback addresses (127.0.0.2, 127.0.0.3, …) each have the whole port range, so
   * one machine can open more connections to one server port than one address has ports.
   */
  localAddress?: string;
  /** Hard stop for the whole process (default 120,000 ms). */
  maxRuntimeMs?: number;
  /** deliver: who sends to whom (default 'ring'). */
  shape?: DeliverShape;
  /** deliver with shape 'pairs': the port of the receiving half (default `port`). */
  recipientPort?: number;
  /**
   * deliver: report, per receiving connection, the longest time between two deliveries from the
   * start of the measured window to the end of the drain (`TrafficResult.recipient_gaps`).
   */
  trackGaps?: boolean;
  /** resume: messages each connection sends itself and leaves unacknowledged (default 2, at most 32). */
  unacked?: number;
  /** resume: ports to log in again on; connection i uses reconnectPorts[i mod length]. */
  reconnectPorts?: number[];
  /** resume: how long the priming may take (default 60,000 ms). */
  primeDeadlineMs?: number;
  /** resume: after the first close, how long to wait for every connection to resume (default 60,000 ms). */
  resumeDeadlineMs?: number;
}

export interface PhaseResult {
  ok: number;
  failed: number;
  ms: number;
  per_s: number;
}

export interface TrafficResult {
  sent: number;
  received: number;
  /** Messages received inside the measured window. */
  received_in_window: number;
  window_ms: number;
  /** received_in_window per second of the window. */
  delivered_per_s: number;
  sent_in_window: number;
  sent_per_s: number;
  /** Sends the server refused with RATE_LIMITED (0xFF). */
  rate_limited: number;
  /** ERROR frames received (reasons below). */
  errors: number;
  error_reasons: string[];
  /** A payload whose per-sender sequence was not above the last one seen (duplicate or reorder). */
  dup_or_reordered: number;
  /** Of those: delivered a second time (not counted as received again). */
  duplicates: number;
  /** Of those: delivered once, after a later message of the same sender (counted as received). */
  reordered: number;
  /** The first few duplicates and reorders: [sender index, its sequence, the highest sequence seen before, wall ms]. */
  disorder_samples: Array<[number, number, number, number]>;
  /** Sent, not refused, and still not received when the drain ended. */
  missing_after_drain: number;
  /** Open loop: sends skipped because the sender had too many messages outstanding. */
  skipped: number;
  latency_ms: LatencySummaryMs;
  latency_sparse_us: Array<[number, number]>;
  /** Wall-clock start and end of the measured window (ms since the epoch). */
  measure_wall_ms: [number, number];
  /**
   * trackGaps: per receiving connection `[user, longest gap ms, its start, its end]` (wall ms
   * since the epoch; end null: nothing was delivered to it after that start and before the
   * drain ended, although messages to it were still being sent after the window).
   */
  recipient_gaps?: Array<[string, number, number, number | null]>;
}

export interface ResumeResult {
  clients: number;
  unacked_per_client: number;
  /** Clients that had all their messages delivered (and left unacknowledged) before the report. */
  primed: number;
  prime_ms: number;
  /** Connections the server closed after priming. */
  closed: number;
  first_close_wall_ms: number | null;
  last_close_wall_ms: number | null;
  /** Wall times (ms since the epoch) of each successful login after a close, ascending. */
  login_wall_ms: number[];
  /** Wall times at which each client had every unacknowledged message back, ascending. */
  resumed_wall_ms: number[];
  /** A message delivered twice after the new login, or one that was never left unacknowledged. */
  duplicates: number;
  unexpected: number;
  /** Connects or logins after a close that failed and were tried again. */
  retries: number;
  /** ERROR frames seen after the close (reasons below). */
  errors: number;
  error_reasons: string[];
}

export interface LoadgenResult {
  ok: boolean;
  error?: string;
  mode: LoadgenMode;
  transport: 'tcp' | 'ws';
  conns: number;
  connect: PhaseResult;
  login: PhaseResult;
  /** Wall-clock start and end of the login phase (ms since the epoch), to combine processes. */
  login_wall_ms: [number, number];
  /** hold: connections still open when told to stop; others: when the traffic ended. */
  open_at_end: number;
  /** Connections the far side closed while they were expected to stay open. */
  closed_by_peer: number;
  protocol_errors: number;
  traffic?: TrafficResult;
  resume?: ResumeResult;
  /** The generator's own CPU time (user + system) over the whole run, ms, and its peak RSS, MB. */
  cpu_ms: number;
  rss_mb: number;
}
