/**
 * The partition guard (requirement C5): a node that sees fewer than a majority of
 * `expected_cluster_nodes` (itself included) for `partition_grace_ms` enters *safe mode* and
 * leaves it by itself as soon as a majority is visible again. In safe mode writers refuse
 * writes at once (`cluster_unavailable` for clients; ReplicatedStorage fails them
 * `unavailable`) instead of letting clients wait out JetStream's timeouts on a minority, and
 * the control plane makes no ownership claims; reads and live presence go on.
 *
 * Visibility comes from the membership (runtime/Membership.ts): every node that is up,
 * whatever its roles. The guard starts in safe mode (a node that has not yet seen a majority
 * must not claim anything) and leaves it when it first sees one; a node expected alone
 * (expected_cluster_nodes = 1) is never in safe mode. One log line on entering, one on
 * leaving. It reads time only through the Env's timers and never blocks or throws.
 */
import type { Env } from '../../runtime/Env.js';
import type { Membership } from '../../runtime/Membership.js';
import { canary } from '../Canaries.js';

export interface PartitionGuardOptions {
  env: Env;
  membership: Membership;
  /** expected_cluster_nodes. */
  expectedNodes: number;
  /** partition_grace_ms. */
  graceMs: number;
}

/** What `/health` shows. */
export interface QuorumStatus {
  safeMode: boolean;
  /** Nodes visible now, this one included. */
  visible: number;
  /** Nodes needed for a majority. */
  needed: number;
  expected: number;
}

export class PartitionGuard {
  private safe: boolean;
  /** A grace timer runs (a majority was lost and not yet for long enough). */
  private timer: unknown = null;
  private readonly listeners = new Set<(safeMode: boolean) => void>();
  private readonly stopMembership: () => void;
  private stopped = false;
  readonly needed: number;

  constructor(private readonly o: PartitionGuardOptions) {
    this.needed = Math.floor(o.expectedNodes / 2) + 1;
    this.safe = this.visible() < this.needed;
    this.stopMembership = o.membership.subscribe(() => this.check());
  }

  /** True while writes must be refused (no majority seen for `graceMs`, or not yet seen). */
  safeMode(): boolean {
    return this.safe && !canary('minority_writes');
  }

  status(): QuorumStatus {
    return { safeMode: this.safe, visible: this.visible(), needed: this.needed, expected: this.o.expectedNodes };
  }

  /** Hear every entry into and exit from safe mode; returns a function that stops it. */
  subscribe(listener: (safeMode: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    this.stopMembership();
    this.cancelTimer();
  }

  private visible(): number {
    return this.o.membership.members().length;
  }

  private check(): void {
    if (this.stopped) return;
    const visible = this.visible();
    if (visible >= this.needed) {
      this.cancelTimer();
      if (this.safe) this.set(false, visible);
      return;
    }
    if (this.safe || this.timer !== null) return;
    this.timer = this.o.env.timers.setTimer(this.o.graceMs, () => {
      this.timer = null;
      if (!this.stopped && !this.safe && this.visible() < this.needed) this.set(true, this.visible());
    });
  }

  private cancelTimer(): void {
    if (this.timer === null) return;
    this.o.env.timers.clearTimer(this.timer);
    this.timer = null;
  }

  private set(safe: boolean, visible: number): void {
    this.safe = safe;
    const fields = { node: this.o.membership.self.name, visible, needed: this.needed, expected: this.o.expectedNodes };
    if (safe) this.o.env.log.warn(fields, 'safe mode: fewer than a majority of the expected nodes are visible; writes are refused');
    else this.o.env.log.info(fields, 'safe mode left: a majority of the expected nodes is visible');
    for (const fn of [...this.listeners]) fn(safe);
  }
}
