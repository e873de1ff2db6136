/**
 * The admin API's view of a node's drain (`POST /admin/drain` starts it, `GET /admin/drain`
 * follows it): the shapes the API answers with and the door it calls. The drain itself is the
 * node's (server/NodeDrain.ts); this file only says what the operator sees.
 *
 * States, in order: `serving` (no drain), `handing_off` (new clients are refused; the node's
 * shard groups move to the other core nodes), `closing_clients` (connected clients are told
 * `node_draining` and leave), `done` (the node has left and its process exits in a moment).
 */

export type DrainState = 'serving' | 'handing_off' | 'closing_clients' | 'done';

/** Who started the drain: the admin API, or a stop signal (SIGTERM/SIGINT) of a cluster node. */
export type DrainTrigger = 'admin' | 'signal';

/** The body of GET /admin/drain (and of POST /admin/drain when it starts or is under way). */
export interface DrainStatus {
  node: string;
  state: DrainState;
  trigger: DrainTrigger | null;
  /** Since the drain started (null while serving). */
  elapsed_ms: number | null;
  /** Shard groups this node owns, stands by for or is taking over (null on a node without shard groups). */
  shard_groups_held: number | null;
  /** Client connections still open (or leaving) on this node. */
  connections: number;
  /** What went wrong but did not stop the drain (a hand-off that did not finish in time), else null. */
  error: string | null;
}

/** Why a drain is refused: the cluster would lose its majority (or its writable core), or the node runs alone. */
export type DrainRefusal = 'would_lose_quorum' | 'not_clustered';

export type DrainStartResult =
  | { readonly ok: true; readonly started: boolean; readonly status: DrainStatus }
  | { readonly ok: false; readonly code: DrainRefusal; readonly message: string };

export interface DrainAdmin {
  /** Start the drain (`started: false` if it was already under way); refused without changing anything. */
  start(): DrainStartResult;
  status(): DrainStatus;
}
