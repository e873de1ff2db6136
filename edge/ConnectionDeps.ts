/**
 * What a client connection of any protocol needs from the node: where users' shards and the
 * state services are (addresses per key: local names on a single node, names on the owner node
 * in a cluster), presence, the inbox, the login decision, the abuse limits and the edge's
 * settings, and in a cluster what routing with retries needs (ClusterRouting). The composition
 * root (server/IrisService.ts) builds one and hands it to every connection; the simulator
 * builds the same.
 */
import type { Inbox } from '../core/Inbox.js';
import type { PresenceTable } from '../core/Presence.js';
import type { ServiceAddress } from '../core/Router.js';
import type { ShardFollowing } from '../core/SessionActor.js';
import type { UserKey } from '../core/UserId.js';
import type { Pid } from '../runtime/Pid.js';
import type { LiveTokens } from './auth/LiveTokens.js';
import type { ClientLink } from './ClientLink.js';
import type { RateLimits } from './limits/RateLimits.js';
import type { RouteTiming } from './RouteLedger.js';
import type { UserRates } from './limits/UserRates.js';

/** A login decision: in, with what ends the session; or refused with the text the client sees. */
export type LoginCheck =
  | {
      ok: true;
      /** When the token expires (wall-clock ms): the session ends then. */
      expiresAtMs?: number;
      /** The token's id, so a revocation can end the session. */
      jti?: string;
    }
  | { ok: false; code: 'auth_failed' | 'rate_limited' };

/** The settings a connection reads (edge and core keys, resolved by the node configuration). */
export interface ConnectionSettings {
  loginTimeoutMs: number;
  slowClientTimeoutMs: number;
  maxInputBufferBytes: number;
  windowMessages: number;
  windowBytes: number;
  pageMessages: number;
  pageBytes: number;
  noticeLimit: number;
  /** A request waiting longer for its service is answered request_timeout. */
  requestTimeoutMs: number;
  /** GET_STATUS before login is answered (dev mode); production requires a login. */
  statusBeforeLogin: boolean;
}

/** How the edge routes into a cluster (server/ClusterCore.ts builds it); null on a single node. */
export interface ClusterRouting {
  /** The shard group of `user`. */
  groupOf(user: UserKey): number;
  /** The owner node of group `g` now (undefined before the cluster's bootstrap). */
  ownerOf(g: number): string | undefined;
  /** Group `g`'s router shard on its owner now (null: no owner known). */
  shardOfGroup(g: number): ServiceAddress | null;
  /** The partition guard's safe mode: writes are refused `cluster_unavailable` at once. */
  safeMode(): boolean;
  /** Send `{t: 'owners_changed'}` to `conn` whenever the ownership table changes, until `unwatch`. */
  watch(conn: Pid): void;
  unwatch(conn: Pid): void;
  /** How sessions follow their shard. */
  following: ShardFollowing;
  /** route_retry_ms, route_window, route_in_flight, route_horizon_ms. */
  retryMs: number;
  window: number;
  inFlight: number;
  horizonMs: number;
  /** The node's answer-time estimate, shared by its connections' ledgers (edge/RouteLedger.ts). */
  readonly timing: RouteTiming;
  /** For /metrics: routes and acknowledgements sent again, and routes given up. */
  readonly stats: RoutingStats;
}

export interface RoutingStats {
  routesResent: number;
  routesGivenUp: number;
  acksResent: number;
}

/** What a connection is told when the ownership table changed (ClusterRouting.watch). */
export interface OwnersChanged {
  t: 'owners_changed';
}

export interface ConnectionDeps {
  /** The router shard owning `user`: a pid or a local name, or in a cluster its name on the owner node. */
  shardFor(user: UserKey): ServiceAddress;
  /** The groups server holding group `gid`. */
  groupsFor(gid: string): ServiceAddress;
  /** The groups server that creates `user`'s new groups (in a cluster, in the user's shard group). */
  groupsForNewGroup(user: UserKey): ServiceAddress;
  /** The key directory holding `user`'s prekeys. */
  keysFor(user: UserKey): ServiceAddress;
  presence: PresenceTable;
  /** The stored inbox, read and acknowledged directly (a single node); null in a cluster (through the owner's shard). */
  inbox: Inbox | null;
  /** Routing into a cluster; null on a single node (local sends are never lost). */
  cluster: ClusterRouting | null;
  /** Decides a login; only called with a well-formed user. */
  authenticate(user: Uint8Array, token: Uint8Array | null, link: ClientLink): LoginCheck;
  limits: RateLimits;
  rates: UserRates;
  /** Where a session holding a token registers, so a revocation of its jti ends it. */
  liveTokens: LiveTokens;
  settings: ConnectionSettings;
}
