/**
 * What a client connection of any protocol needs from the node: where users' shards and the
 * state services are, presence, the inbox, the login decision, the abuse limits and the edge's
 * settings. The composition root (server/IrisService.ts) builds one and hands it to every
 * connection; the simulator builds the same.
 */
import type { Inbox } from '../core/Inbox.js';
import type { PresenceTable } from '../core/Presence.js';
import type { UserKey } from '../core/UserId.js';
import type { Pid } from '../runtime/Pid.js';
import type { LiveTokens } from './auth/LiveTokens.js';
import type { ClientLink } from './ClientLink.js';
import type { RateLimits } from './limits/RateLimits.js';
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

export interface ConnectionDeps {
  /** The router shard owning `user` (a pid or a registered name). */
  shardFor(user: UserKey): Pid | string;
  presence: PresenceTable;
  inbox: Inbox;
  /** The groups server and the key directory (pids or registered names). */
  groups: Pid | string;
  keys: Pid | string;
  /** Decides a login; only called with a well-formed user. */
  authenticate(user: Uint8Array, token: Uint8Array | null, link: ClientLink): LoginCheck;
  limits: RateLimits;
  rates: UserRates;
  /** Where a session holding a token registers, so a revocation of its jti ends it. */
  liveTokens: LiveTokens;
  settings: ConnectionSettings;
}
