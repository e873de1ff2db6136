/**
 * One client connection speaking protocol v1: a small state machine (`login` → `online` →
 * `closed`) that decodes packets, answers every refusal with a clear frame, writes
 * deliveries as RELIABLE_MSG and keeps each one until the client ACKs it (retransmitting
 * after a timeout), and pushes back on the socket when the client stops reading.
 * It never touches sockets directly: the link events arrive as messages, and it writes
 * through the ClientLink, so the simulator can drive it with virtual links.
 */
import { isExitMessage, type ExitReason } from '../runtime/ExitReason.js';
import type { Pid, Ref } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { Inbox } from '../core/Inbox.js';
import type { PresenceTable } from '../core/Presence.js';
import type { RouterRelay, RouterRoute, RouteRefused } from '../core/RouterShard.js';
import { sessionActor, type SessionToConnection } from '../core/SessionActor.js';
import type { GroupsReply, GroupsRequest } from '../core/Groups.js';
import type { KeyDirectoryReply, KeyDirectoryRequest } from '../core/KeyDirectory.js';
import { describeUser, userKey, type UserKey } from '../core/UserId.js';
import type { ClientLink } from './ClientLink.js';
import { V1Decoder } from './protocol/V1Decoder.js';
import {
  encodeAuthFailedText,
  encodeE2eeDeliveryFrame,
  encodeErrorFrame,
  encodeGroupJoinFrame,
  encodeGroupLeaveOkFrame,
  encodeGroupRosterFrame,
  encodePrekeyResponseFrame,
  encodeLoginOkFrame,
  encodeRateLimitedFrame,
  encodeReadReceiptRelayFrame,
  encodeReliableMsgFrame,
  encodeStatusFrame,
  encodeTypingFrame,
} from './protocol/V1Encoder.js';
import type { ClientPacket } from './protocol/V1Packets.js';
import { prekeyBundleMap, prekeyStatusMap } from './protocol/V1Prekeys.js';
import { canary } from '../core/Canaries.js';

/** Link events, sent to the connection process by the listener. */
export type LinkEvent = { t: 'link_data'; bytes: Uint8Array } | { t: 'link_drain' } | { t: 'link_closed' };

export type LoginCheck = { ok: true } | { ok: false; code: string };

export interface ConnectionDeps {
  /** The router shard owning `user` (a pid or a registered name). */
  shardFor(user: UserKey): Pid | string;
  presence: PresenceTable;
  inbox: Inbox;
  /** Checks a login (token rules, limits); only called with a well-formed user. */
  authenticate(user: Uint8Array, token: Uint8Array | null, remoteAddress: string): LoginCheck;
  /** The groups service and the key directory (pids or registered names). */
  groups: Pid | string;
  keys: Pid | string;
  /** Per-user message rate; a refused send is answered RATE_LIMITED and not routed. */
  messageAllowed(user: Uint8Array, count: number): { ok: true } | { ok: false; retryAfterMs: number };
  retransmitMs: number;
  /** Close a connection that has not logged in by then. */
  loginTimeoutMs: number;
  /** Disconnect a client whose output stays backed up this long (its messages stay stored). */
  slowClientTimeoutMs: number;
  maxInputBufferBytes: number;
  inboxCap: number;
}

interface Unacked {
  id: Uint8Array;
  frame: Uint8Array;
  sentAt: number;
}

const RETRANSMIT = { t: 'retransmit' } as const;
const LOGIN_TIMEOUT = { t: 'login_timeout' } as const;
interface SlowCheck {
  t: 'slow_check';
  epoch: number;
}

const encoder = new TextEncoder();
const gidDecoder = new TextDecoder('utf-8', { fatal: true });

/** Group ids are 36-char UUID text; anything else names no group. */
function groupId(bytes: Uint8Array): string | null {
  if (bytes.length !== 36) return null;
  try {
    return gidDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/** A message id as a Map key (one char per byte; flat, cheap). */
function idKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1');
}

export function connectionActor(link: ClientLink, deps: ConnectionDeps): ProcessBody {
  return (ctx: ProcessContext) => {
    ctx.trapExit(true);
    ctx.sendAfter(deps.loginTimeoutMs, LOGIN_TIMEOUT);
    const decoder = new V1Decoder({ inputBufferCap: deps.maxInputBufferBytes });
    let state: 'login' | 'online' | 'closed' = 'login';
    let user: Uint8Array | null = null;
    let session: Pid | null = null;
    const unacked = new Map<string, Unacked>();
    let retransmitTimer: Ref | null = null;
    /**
     * Output backpressure: while the link is over its high-water mark, reading from the client
     * is paused, new deliveries are held (not written) until `drain`, and retransmission waits.
     * A client that stays backed up for slowClientTimeoutMs is disconnected: everything it has
     * not acknowledged is stored and comes back at its next login.
     */
    let paused = false;
    let pausedEpoch = 0;
    const held: Array<{ id: Uint8Array; payload: Uint8Array }> = [];
    const heldIds = new Set<string>();

    const write = (bytes: Uint8Array): void => {
      if (state === 'closed') return;
      if (link.write(bytes) || paused) return;
      paused = true;
      link.pause();
      ctx.sendAfter(deps.slowClientTimeoutMs, { t: 'slow_check', epoch: ++pausedEpoch });
    };

    const drained = (): void => {
      if (!paused) return;
      paused = false;
      link.resume();
      while (held.length > 0 && !paused && state !== 'closed') {
        const h = held.shift()!;
        heldIds.delete(idKey(h.id));
        deliver(h.id, h.payload);
      }
    };

    /** End the link, the session (so the user goes offline) and this process. */
    const close = (reason: ExitReason, now = false): void => {
      if (state === 'closed') return;
      state = 'closed';
      // A graceful end waits for queued output to flush, which never happens for a client
      // that does not read: such a link is destroyed.
      if (now) link.destroy();
      else link.end();
      if (session !== null) ctx.sendExit(session, 'shutdown');
      if (canary('drop_unacked_on_disconnect') && user !== null) for (const u of unacked.values()) void deps.inbox.ack(userKey(user), u.id);
      ctx.exit(reason);
    };

    const refuse = (code: string): void => write(encodeErrorFrame(code));

    /** Context on every log line of this connection: peer, transport, user once logged in. */
    const logContext = (fields: object): object =>
      user === null ? { remote: link.remoteAddress, transport: link.transport, ...fields } : { remote: link.remoteAddress, transport: link.transport, user: describeUser(userKey(user)), ...fields };

    const route = (to: Uint8Array, payload: Uint8Array, seq?: bigint): void => {
      const key = userKey(to);
      const m: RouterRoute = { t: 'route', from: user as Uint8Array, to: key, payload, replyTo: ctx.self };
      if (seq !== undefined) m.seq = seq;
      ctx.send(deps.shardFor(key), m);
    };

    const armRetransmit = (): void => {
      if (retransmitTimer === null && unacked.size > 0) retransmitTimer = ctx.sendAfter(deps.retransmitMs, RETRANSMIT);
    };

    const deliver = (id: Uint8Array, payload: Uint8Array): void => {
      const k = idKey(id);
      if (unacked.has(k) || heldIds.has(k)) return;
      if (paused) {
        held.push({ id, payload });
        heldIds.add(k);
        return;
      }
      const frame = encodeReliableMsgFrame(id, payload);
      unacked.set(k, { id, frame, sentAt: ctx.env.clock.monotonicMs() });
      write(frame);
      armRetransmit();
    };

    const retransmit = (): void => {
      retransmitTimer = null;
      // The client is not reading (the link is over its high-water mark): copies written now
      // would only queue behind the unsent ones. Look again after another timeout.
      if (paused) {
        armRetransmit();
        return;
      }
      const now = ctx.env.clock.monotonicMs();
      for (const u of unacked.values()) {
        if (now - u.sentAt < deps.retransmitMs) break; // insertion order = send order
        u.sentAt = now;
        write(u.frame);
      }
      // Re-sent entries move to the back so the map stays ordered by last send.
      for (const [k, u] of [...unacked]) {
        if (u.sentAt === now) {
          unacked.delete(k);
          unacked.set(k, u);
        }
      }
      armRetransmit();
    };

    const login = (p: Extract<ClientPacket, { op: 'login' }>): void => {
      const check = deps.authenticate(p.user, p.token, link.remoteAddress);
      if (!check.ok) {
        ctx.env.log.info(logContext({ code: check.code, login_user: describeUser(userKey(p.user)) }), 'login refused');
        write(check.code === 'rate_limited' ? new TextEncoder().encode('RATE_LIMITED') : encodeAuthFailedText());
        close('normal');
        return;
      }
      user = p.user;
      const key = userKey(p.user);
      session = ctx.spawnLink(
        sessionActor({ user: key, connection: ctx.self, shard: deps.shardFor(key), inbox: deps.inbox, loadLimit: deps.inboxCap }),
        { label: 'Session' },
      );
      state = 'online';
      ctx.env.log.debug(logContext({}), 'logged in');
      write(encodeLoginOkFrame());
    };

    /** Sending packets pass the user's rate limit first; a refusal keeps the connection open. */
    const rateOk = (me: Uint8Array, count: number): boolean => {
      const r = deps.messageAllowed(me, count);
      if (r.ok) return true;
      write(encodeRateLimitedFrame(r.retryAfterMs));
      return false;
    };

    const online = (p: ClientPacket, me: Uint8Array): void => {
      switch (p.op) {
        case 'send':
        case 'send_seq':
        case 'cbor_msg':
        case 'e2ee_msg':
          if (!rateOk(me, 1)) return;
          break;
        case 'batch_send':
          if (!rateOk(me, p.items.length)) return;
          break;
        default:
          break;
      }
      switch (p.op) {
        case 'login':
          refuse('already_logged_in');
          return;
        case 'send':
          route(p.target, p.msg);
          return;
        case 'batch_send':
          for (const item of p.items) route(p.target, item);
          return;
        case 'send_seq':
          // Dedup and order per (sender, target) are kept by the target's shard, durably.
          route(p.target, p.msg, p.seq);
          return;
        case 'cbor_msg':
          route(p.target, p.cbor);
          return;
        case 'e2ee_msg':
          route(p.recipient, encodeE2eeDeliveryFrame(me, p.header, p.ciphertext));
          return;
        case 'ack': {
          const k = idKey(p.msgId);
          const u = unacked.get(k);
          if (u === undefined) return;
          unacked.delete(k);
          void deps.inbox.ack(userKey(me), u.id);
          return;
        }
        case 'get_status':
          status(p.target);
          return;
        case 'typing_start':
        case 'typing_stop': {
          const key = userKey(p.target);
          const frame = encodeTypingFrame(me, p.op === 'typing_start');
          ctx.send(deps.shardFor(key), { t: 'relay', to: key, frame, store: false, from: me } satisfies RouterRelay);
          return;
        }
        case 'read_receipt': {
          const key = userKey(p.originalSender);
          const frame = encodeReadReceiptRelayFrame(p.msgId, me, Math.floor(ctx.env.clock.wallMs()));
          ctx.send(deps.shardFor(key), { t: 'relay', to: key, frame, store: true, from: me } satisfies RouterRelay);
          return;
        }
        case 'upload_prekeys':
          if (!p.upload.ok) {
            write(encodePrekeyResponseFrame(prekeyStatusMap('error', p.upload.reason)));
            return;
          }
          ctx.send(deps.keys, { t: 'upload', user: userKey(me), upload: p.upload.upload, replyTo: ctx.self } satisfies KeyDirectoryRequest);
          return;
        case 'fetch_prekeys':
          ctx.send(deps.keys, { t: 'fetch', target: userKey(p.user), replyTo: ctx.self } satisfies KeyDirectoryRequest);
          return;
        case 'group_create':
          ctx.send(deps.groups, { t: 'create', user: userKey(me), name: p.name, replyTo: ctx.self } satisfies GroupsRequest);
          return;
        case 'group_leave':
        case 'group_roster':
        case 'group_msg':
        case 'sender_key_dist': {
          const gid = groupId(p.gid);
          if (gid === null) {
            refuse('not_member');
            return;
          }
          const base = { user: userKey(me), gid, replyTo: ctx.self };
          const req: GroupsRequest =
            p.op === 'group_leave' ? { t: 'leave', ...base }
            : p.op === 'group_roster' ? { t: 'roster', ...base }
            : p.op === 'group_msg' ? { t: 'msg', ...base, header: p.header, ciphertext: p.ciphertext }
            : { t: 'sender_key', ...base, keydata: p.keydata };
          ctx.send(deps.groups, req);
          return;
        }
      }
    };

    const onServiceReply = (m: GroupsReply | KeyDirectoryReply): void => {
      switch (m.t) {
        case 'prekeys':
          write(encodePrekeyResponseFrame(m.status === 'bundle' ? prekeyBundleMap(m.bundle) : m.status === 'error' ? prekeyStatusMap('error', m.reason) : prekeyStatusMap(m.status)));
          return;
        case 'group_created':
          write(encodeGroupJoinFrame(encoder.encode(m.gid), user as Uint8Array));
          return;
        case 'group_left':
          write(encodeGroupLeaveOkFrame());
          return;
        case 'group_roster':
          write(encodeGroupRosterFrame(encoder.encode(m.gid), m.members));
          return;
        case 'group_error':
          refuse(m.code);
          return;
        case 'group_done':
          return;
      }
    };

    const status = (target: Uint8Array): void => {
      const s = deps.presence.status(userKey(target));
      write(encodeStatusFrame(target, s.online, s.lastSeen));
    };

    const onData = (bytes: Uint8Array): void => {
      decoder.push(bytes);
      for (;;) {
        if (state === 'closed') return;
        const r = decoder.next();
        if (r.kind === 'need_more') return;
        if (r.kind === 'error') {
          if (r.opcode === 0x01 && state === 'login') {
            write(encodeAuthFailedText());
            close('normal');
            return;
          }
          refuse(r.code);
          if (r.fatal) {
            ctx.env.log.info(logContext({ code: r.code }), 'closing connection on unrecoverable input');
            close('normal');
            return;
          }
          continue;
        }
        const p = r.packet;
        if (state === 'login') {
          if (p.op === 'login') login(p);
          else if (p.op === 'get_status') status(p.target);
          else refuse('not_logged_in');
        } else online(p, user as Uint8Array);
      }
    };

    return (raw) => {
      if (isExitMessage(raw)) {
        // The session ended (replaced by a newer login, or failed): this connection ends too.
        close(raw.reason === 'normal' ? 'normal' : { shutdown: 'session_ended' });
        return;
      }
      const m = raw as LinkEvent | SessionToConnection | RouteRefused | typeof RETRANSMIT | typeof LOGIN_TIMEOUT | SlowCheck | GroupsReply | KeyDirectoryReply;
      switch (m.t) {
        case 'link_data':
          onData(m.bytes);
          return;
        case 'link_drain':
          drained();
          return;
        case 'slow_check':
          if (paused && m.epoch === pausedEpoch) {
            ctx.env.log.info(logContext({ buffered: link.bufferedBytes(), held: held.length }), 'disconnecting a client that does not read');
            close('normal', true);
          }
          return;
        case 'link_closed':
          close('normal');
          return;
        case 'deliver':
          deliver(m.id, m.payload);
          return;
        case 'frame':
          write(m.frame);
          return;
        case 'route_refused':
          refuse(m.code);
          return;
        case 'retransmit':
          retransmit();
          return;
        case 'login_timeout':
          if (state === 'login') {
            refuse('login_timeout');
            close('normal');
          }
          return;
        default:
          onServiceReply(m);
      }
    };
  };
}
