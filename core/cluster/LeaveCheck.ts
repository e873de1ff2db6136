/**
 * Whether a node may leave the cluster on purpose (a drain, or a SIGTERM that would drain) without
 * taking the cluster down with it: a pure function of the membership as this node sees it, the
 * nodes already being drained, `expected_cluster_nodes` and the durability level. It never
 * decides anything about failures: a node that dies is not asked.
 *
 * A leave is refused `would_lose_quorum` when, once this node is gone:
 * - the nodes still up and not draining (any role) would be fewer than a majority of
 *   `expected_cluster_nodes`: every remaining node would enter safe mode and refuse writes;
 * - this node is a core node and the core nodes still up and not draining would be too few to
 *   keep every shard group writable: one owner and, at durability `quorum`, one standby that
 *   confirms each write (MIN_CORE_NODES). The shard streams' own replicas live on the NATS
 *   servers, which a leave does not touch;
 * - this node is in safe mode now: it sees no majority, so nothing could be handed off.
 * Draining nodes are left out of "remaining" (two drains at once are judged together).
 */
import type { NodeMember } from '../../runtime/Membership.js';
import type { DrainingNode } from './OwnershipTable.js';
import type { Durability } from './ReplicatedStorage.js';

/** Core nodes a cluster needs to keep every shard group writable, by durability level: an owner, and at `quorum` a standby that confirms each write. */
export const MIN_CORE_NODES: Readonly<Record<Durability, number>> = { local: 1, quorum: 2 };

export interface LeaveView {
  /** The node that would leave. */
  readonly self: NodeMember;
  /** Nodes up now as this node sees them, itself included. */
  readonly members: readonly NodeMember[];
  /** Nodes being drained (name and incarnation), from the control stream. */
  readonly draining: readonly DrainingNode[];
  /** expected_cluster_nodes. */
  readonly expectedNodes: number;
  readonly durability: Durability;
  /** The partition guard's state now. */
  readonly safeMode: boolean;
  /** The role that owns shard groups. */
  readonly coreRole: string;
}

export type LeaveCheckResult =
  | { readonly ok: true; readonly remaining: number; readonly remainingCore: number; readonly needed: number }
  | { readonly ok: false; readonly code: 'would_lose_quorum'; readonly message: string };

/** Whether `view.self` may leave now; a refusal says what is missing, in numbers. */
export function leaveCheck(view: LeaveView): LeaveCheckResult {
  const needed = Math.floor(view.expectedNodes / 2) + 1;
  const draining = (m: NodeMember): boolean => view.draining.some((d) => d.name === m.name && d.incarnation === m.incarnation);
  const others = view.members.filter((m) => m.name !== view.self.name && !draining(m));
  const remaining = others.length;
  const remainingCore = others.filter((m) => m.roles.includes(view.coreRole)).length;
  const refuse = (message: string): LeaveCheckResult => ({ ok: false, code: 'would_lose_quorum', message });
  if (view.safeMode) {
    return refuse(`this node is in safe mode: it sees ${view.members.length} of the ${view.expectedNodes} expected nodes (a majority is ${needed}), so it could not hand anything off; bring the missing nodes back first`);
  }
  if (remaining < needed) {
    return refuse(
      `after this node leaves, ${remaining} of the ${view.expectedNodes} expected nodes would remain up and not draining; a majority is ${needed}, so the cluster would refuse writes (safe mode); start another node first, or lower expected_cluster_nodes on every node if the cluster is meant to be smaller`,
    );
  }
  const minCore = MIN_CORE_NODES[view.durability];
  if (view.self.roles.includes(view.coreRole) && remainingCore < minCore) {
    return refuse(
      `after this node leaves, ${remainingCore} core node(s) would remain; durability ${view.durability} needs ${minCore} to keep every shard group writable (an owner${minCore > 1 ? ' and a standby that confirms each write' : ''}); start another core node first`,
    );
  }
  return { ok: true, remaining, remainingCore, needed };
}
