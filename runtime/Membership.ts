/**
 * Cluster membership as the rest of the system sees it: who the nodes are (name, incarnation,
 * roles, addresses), the up/down events, and the messages a process gets from
 * `ctx.monitorNodes(true)`. The distribution layer (runtime/Distribution.ts) produces them;
 * this file holds only the shapes, so actor code and the next layers depend on nothing else.
 */

/**
 * One node process of the cluster. `incarnation` changes every time a node process starts
 * (a restarted node is a new member even under the same name) and grows from one start to the
 * next; pids of an earlier incarnation never reach the new one.
 */
export interface NodeMember {
  readonly name: string;
  readonly incarnation: number;
  /** What the node does (for example `edge`, `core`); free-form, given at start. */
  readonly roles: readonly string[];
  /** Where the node can be reached by clients or operators (`tcp`, `http`, …), free-form. */
  readonly addresses: Readonly<Record<string, string>>;
  /** Schedulers the node runs (ids 0..schedulers-1), for placing remote spawns. */
  readonly schedulers: number;
}

/**
 * Why a node is down, from this node's point of view:
 * - `silence`: no heartbeat (nor anything else) from it for the configured down-after time;
 * - `left`: it said goodbye (an orderly stop);
 * - `restarted`: a newer incarnation of it appeared;
 * - `link_lost`: this node lost its own link to NATS (every other node is down for it);
 * - `reset`: it told us it had declared us down (after a partition it noticed and we did
 *   not); both sides drop links and monitors and it comes back up at once as a new view.
 */
export type NodeDownCause = 'silence' | 'left' | 'restarted' | 'link_lost' | 'reset';

export type MembershipEvent =
  | { readonly type: 'up'; readonly member: NodeMember }
  | { readonly type: 'down'; readonly member: NodeMember; readonly cause: NodeDownCause };

/** The membership API a node offers outside processes (control code, the next layers). */
export interface Membership {
  /** This node. */
  readonly self: NodeMember;
  /** The other nodes that are up now, by name. */
  peers(): NodeMember[];
  /** Every node that is up now, this one included, by name. */
  members(): NodeMember[];
  /**
   * Call `listener` for every up and down, in the order this node saw them (a node's down
   * always comes before its next up); returns a function that stops it.
   */
  subscribe(listener: (event: MembershipEvent) => void): () => void;
}

/** Sent to processes that called `ctx.monitorNodes(true)` when a node comes up. */
export interface NodeUpMessage {
  readonly type: 'NODE_UP';
  readonly node: string;
  readonly member: NodeMember;
}

/**
 * Sent to processes that called `ctx.monitorNodes(true)` when a node goes down. It is an
 * ordinary message, queued after everything that node sent before it went down (the
 * `noconnection` EXIT and DOWN messages of links and monitors come first, in the system lane).
 */
export interface NodeDownMessage {
  readonly type: 'NODE_DOWN';
  readonly node: string;
  readonly member: NodeMember;
  readonly cause: NodeDownCause;
}

export function isNodeUpMessage(m: unknown): m is NodeUpMessage {
  return typeof m === 'object' && m !== null && (m as NodeUpMessage).type === 'NODE_UP';
}

export function isNodeDownMessage(m: unknown): m is NodeDownMessage {
  return typeof m === 'object' && m !== null && (m as NodeDownMessage).type === 'NODE_DOWN';
}

/** A node or cluster name: 1-255 characters, no spaces or control characters (escaped for NATS subjects). */
export function validNodeName(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}
