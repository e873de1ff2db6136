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
import { mailboxIdKey } from '../core/OfflineMailbox.js';
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
  encodeReliableMsgFrameShortLived,
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
  /** At first a short-lived slab frame; copied to its own bytes when first retransmitted. */
  frame: Uint8Array;
  owned: boolean;
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

/**
 * Shared empty stand-ins for the per-connection collections, replaced by a connection's own on
 * first use: most connections are idle, and an empty Map or Set still costs ~150 bytes.
 * Never written to.
 */
const NO_UNACKED: ReadonlyMap<string, Unacked> = new Map();
const NO_HELD: readonly Held[] = [];
const NO_HELD_IDS: ReadonlySet<string> = new Set();

interface Held {
  id: Uint8Array;
  payload: Uint8Array;
}

export function connectionActor(link: ClientLink, deps: ConnectionDeps): ProcessBody {
  return (ctx: ProcessContext) => handlerOf(new Connection(link, deps, ctx));
}

/** The handler of one connection (made here so that it closes over the connection only). */
function handlerOf(c: Connection): (raw: unknown) => void {
  return (raw) => c.handle(raw);
}

/**
 * The state and steps of one connection. A class rather than closures over locals: a node
 * holds tens of thousands of mostly idle connections, and one object with its fields costs a
 * fraction of a dozen closures and their shared context.
 */
class Connection {
  private state: 'login' | 'online' | 'closed' = 'login';
  private loginTimer: Ref | null;
  private readonly decoder: V1Decoder;
  private user: Uint8Array | null = null;
  /** `user` as a UserKey, set with it at login. */
  private meKey = '' as UserKey;
  private session: Pid | null = null;
  /** Deliveries written and not yet ACKed, by mailbox id key, in send order. */
  private unacked = NO_UNACKED as Map<string, Unacked>;
  private retransmitTimer: Ref | null = null;
  /**
   * Output backpressure: while the link is over its high-water mark, reading from the client
   * is paused, new deliveries are held (not written) until `drain`, and retransmission waits.
   * A client that stays backed up for slowClientTimeoutMs is disconnected: everything it has
   * not acknowledged is stored and comes back at its next login.
   */
  private paused = false;
  private pausedEpoch = 0;
  private held = NO_HELD as Held[];
  private heldIds = NO_HELD_IDS as Set<string>;

  constructor(
    private readonly link: ClientLink,
    private readonly deps: ConnectionDeps,
    private readonly ctx: ProcessContext,
  ) {
    ctx.trapExit(true);
    this.loginTimer = ctx.sendAfter(deps.loginTimeoutMs, LOGIN_TIMEOUT);
    this.decoder = new V1Decoder({ inputBufferCap: deps.maxInputBufferBytes });
  }

  handle(raw: unknown): void {
    if (isExitMessage(raw)) {
      // The session ended (replaced by a newer login, or failed): this connection ends too.
      this.close(raw.reason === 'normal' ? 'normal' : { shutdown: 'session_ended' });
      return;
    }
    const m = raw as LinkEvent | SessionToConnection | RouteRefused | typeof RETRANSMIT | typeof LOGIN_TIMEOUT | SlowCheck | GroupsReply | KeyDirectoryReply;
    switch (m.t) {
      case 'link_data':
        this.onData(m.bytes);
        return;
      case 'link_drain':
        this.drained();
        return;
      case 'slow_check':
        if (this.paused && m.epoch === this.pausedEpoch) {
          this.ctx.env.log.info(this.logContext({ buffered: this.link.bufferedBytes(), held: this.held.length }), 'disconnecting a client that does not read');
          this.close('normal', true);
        }
        return;
      case 'link_closed':
        this.close('normal');
        return;
      case 'deliver':
        this.deliver(m.id, m.payload);
        return;
      case 'frame':
        this.write(m.frame);
        return;
      case 'route_refused':
        this.refuse(m.code);
        return;
      case 'retransmit':
        this.retransmit();
        return;
      case 'login_timeout':
        if (this.state === 'login') {
          this.refuse('login_timeout');
          this.close('normal');
        }
        return;
      default:
        this.onServiceReply(m);
    }
  }

  private write(bytes: Uint8Array): void {
    if (this.state === 'closed') return;
    if (this.link.write(bytes) || this.paused) return;
    this.paused = true;
    this.link.pause();
    this.ctx.sendAfter(this.deps.slowClientTimeoutMs, { t: 'slow_check', epoch: ++this.pausedEpoch });
  }

  private drained(): void {
    if (!this.paused) return;
    this.paused = false;
    this.link.resume();
    while (this.held.length > 0 && !this.paused && this.state !== 'closed') {
      const h = this.held.shift()!;
      this.heldIds.delete(mailboxIdKey(h.id));
      this.deliver(h.id, h.payload);
    }
  }

  /** End the link, the session (so the user goes offline) and this process. */
  private close(reason: ExitReason, now = false): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    // A graceful end waits for queued output to flush, which never happens for a client
    // that does not read: such a link is destroyed.
    if (now) this.link.destroy();
    else this.link.end();
    if (this.session !== null) this.ctx.sendExit(this.session, 'shutdown');
    {
      // The planted bug's site (core/Canaries.ts), kept as the simulator's tests know it.
      const { user, unacked, deps } = this;
      if (canary('drop_unacked_on_disconnect') && user !== null) for (const u of unacked.values()) void deps.inbox.ack(userKey(user), u.id);
    }
    this.ctx.exit(reason);
  }

  private refuse(code: string): void {
    this.write(encodeErrorFrame(code));
  }

  /**
   * Context on every log line of this connection: peer, transport, user once logged in. The
   * user is described only if the line is written (a getter): logins log at debug level.
   */
  private logContext(fields: object): object {
    const { link, meKey } = this;
    return this.user === null
      ? { remote: link.remoteAddress, transport: link.transport, ...fields }
      : {
          remote: link.remoteAddress,
          transport: link.transport,
          get user() {
            return describeUser(meKey);
          },
          ...fields,
        };
  }

  private route(to: Uint8Array, payload: Uint8Array, seq?: bigint): void {
    const key = userKey(to);
    const m: RouterRoute = { t: 'route', from: this.user as Uint8Array, to: key, payload, replyTo: this.ctx.self };
    if (seq !== undefined) m.seq = seq;
    this.ctx.send(this.deps.shardFor(key), m);
  }

  private armRetransmit(): void {
    if (this.retransmitTimer === null && this.unacked.size > 0) this.retransmitTimer = this.ctx.sendAfter(this.deps.retransmitMs, RETRANSMIT);
  }

  private deliver(id: Uint8Array, payload: Uint8Array): void {
    const k = mailboxIdKey(id);
    if (this.unacked.has(k) || this.heldIds.has(k)) return;
    if (this.paused) {
      if (this.held === NO_HELD) {
        this.held = [];
        this.heldIds = new Set();
      }
      this.held.push({ id, payload });
      this.heldIds.add(k);
      return;
    }
    // Most deliveries are ACKed within a round trip: the frame shares a slab until then.
    const frame = encodeReliableMsgFrameShortLived(id, payload);
    if (this.unacked === NO_UNACKED) this.unacked = new Map();
    this.unacked.set(k, { id, frame, owned: false, sentAt: this.ctx.env.clock.monotonicMs() });
    this.write(frame);
    this.armRetransmit();
  }

  private retransmit(): void {
    this.retransmitTimer = null;
    // The client is not reading (the link is over its high-water mark): copies written now
    // would only queue behind the unsent ones. Look again after another timeout.
    if (this.paused) {
      this.armRetransmit();
      return;
    }
    const unacked = this.unacked;
    const now = this.ctx.env.clock.monotonicMs();
    for (const u of unacked.values()) {
      if (now - u.sentAt < this.deps.retransmitMs) break; // insertion order = send order
      u.sentAt = now;
      // Kept past a retransmit timeout: it gets its own bytes rather than pin a slab.
      if (!u.owned) {
        u.frame = u.frame.slice();
        u.owned = true;
      }
      this.write(u.frame);
    }
    // Re-sent entries move to the back so the map stays ordered by last send.
    for (const [k, u] of [...unacked]) {
      if (u.sentAt === now) {
        unacked.delete(k);
        unacked.set(k, u);
      }
    }
    this.armRetransmit();
  }

  private login(p: Extract<ClientPacket, { op: 'login' }>): void {
    const { ctx, deps } = this;
    const check = deps.authenticate(p.user, p.token, this.link.remoteAddress);
    if (!check.ok) {
      ctx.env.log.info(this.logContext({ code: check.code, login_user: describeUser(userKey(p.user)) }), 'login refused');
      this.write(check.code === 'rate_limited' ? new TextEncoder().encode('RATE_LIMITED') : encodeAuthFailedText());
      this.close('normal');
      return;
    }
    // A copy of just the user bytes: the login packet (with its token) is not kept alive.
    const user = p.user.slice();
    const key = userKey(user);
    this.user = user;
    this.meKey = key;
    if (this.loginTimer !== null) {
      ctx.cancelTimer(this.loginTimer);
      this.loginTimer = null;
    }
    this.session = ctx.spawnLink(
      sessionActor({ user: key, connection: ctx.self, shard: deps.shardFor(key), inbox: deps.inbox, loadLimit: deps.inboxCap }),
      { label: 'Session' },
    );
    this.state = 'online';
    ctx.env.log.debug(this.logContext({}), 'logged in');
    this.write(encodeLoginOkFrame());
    // Most connections idle after login: give back the mailbox storage until the next message.
    ctx.hibernate();
  }

  /** Sending packets pass the user's rate limit first; a refusal keeps the connection open. */
  private rateOk(me: Uint8Array, count: number): boolean {
    const r = this.deps.messageAllowed(me, count);
    if (r.ok) return true;
    this.write(encodeRateLimitedFrame(r.retryAfterMs));
    return false;
  }

  private online(p: ClientPacket, me: Uint8Array): void {
    const { ctx, deps, meKey } = this;
    switch (p.op) {
      case 'send':
      case 'send_seq':
      case 'cbor_msg':
      case 'e2ee_msg':
        if (!this.rateOk(me, 1)) return;
        break;
      case 'batch_send':
        if (!this.rateOk(me, p.items.length)) return;
        break;
      default:
        break;
    }
    switch (p.op) {
      case 'login':
        this.refuse('already_logged_in');
        return;
      case 'send':
        this.route(p.target, p.msg);
        return;
      case 'batch_send':
        for (const item of p.items) this.route(p.target, item);
        return;
      case 'send_seq':
        // Dedup and order per (sender, target) are kept by the target's shard, durably.
        this.route(p.target, p.msg, p.seq);
        return;
      case 'cbor_msg':
        this.route(p.target, p.cbor);
        return;
      case 'e2ee_msg':
        this.route(p.recipient, encodeE2eeDeliveryFrame(me, p.header, p.ciphertext));
        return;
      case 'ack': {
        const k = mailboxIdKey(p.msgId);
        const u = this.unacked.get(k);
        if (u === undefined) return;
        this.unacked.delete(k);
        void deps.inbox.ack(meKey, u.id);
        return;
      }
      case 'get_status':
        this.status(p.target);
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
          this.write(encodePrekeyResponseFrame(prekeyStatusMap('error', p.upload.reason)));
          return;
        }
        ctx.send(deps.keys, { t: 'upload', user: meKey, upload: p.upload.upload, replyTo: ctx.self } satisfies KeyDirectoryRequest);
        return;
      case 'fetch_prekeys':
        ctx.send(deps.keys, { t: 'fetch', target: userKey(p.user), replyTo: ctx.self } satisfies KeyDirectoryRequest);
        return;
      case 'group_create':
        ctx.send(deps.groups, { t: 'create', user: meKey, name: p.name, replyTo: ctx.self } satisfies GroupsRequest);
        return;
      case 'group_leave':
      case 'group_roster':
      case 'group_msg':
      case 'sender_key_dist': {
        const gid = groupId(p.gid);
        if (gid === null) {
          this.refuse('not_member');
          return;
        }
        const base = { user: meKey, gid, replyTo: ctx.self };
        const req: GroupsRequest =
          p.op === 'group_leave' ? { t: 'leave', ...base }
          : p.op === 'group_roster' ? { t: 'roster', ...base }
          : p.op === 'group_msg' ? { t: 'msg', ...base, header: p.header, ciphertext: p.ciphertext }
          : { t: 'sender_key', ...base, keydata: p.keydata };
        ctx.send(deps.groups, req);
        return;
      }
    }
  }

  private onServiceReply(m: GroupsReply | KeyDirectoryReply): void {
    switch (m.t) {
      case 'prekeys':
        this.write(encodePrekeyResponseFrame(m.status === 'bundle' ? prekeyBundleMap(m.bundle) : m.status === 'error' ? prekeyStatusMap('error', m.reason) : prekeyStatusMap(m.status)));
        return;
      case 'group_created':
        this.write(encodeGroupJoinFrame(encoder.encode(m.gid), this.user as Uint8Array));
        return;
      case 'group_left':
        this.write(encodeGroupLeaveOkFrame());
        return;
      case 'group_roster':
        this.write(encodeGroupRosterFrame(encoder.encode(m.gid), m.members));
        return;
      case 'group_error':
        this.refuse(m.code);
        return;
      case 'group_done':
        return;
    }
  }

  private status(target: Uint8Array): void {
    const s = this.deps.presence.status(userKey(target));
    this.write(encodeStatusFrame(target, s.online, s.lastSeen));
  }

  private onData(bytes: Uint8Array): void {
    const decoder = this.decoder;
    decoder.push(bytes);
    for (;;) {
      if (this.state === 'closed') return;
      const r = decoder.next();
      if (r.kind === 'need_more') return;
      if (r.kind === 'error') {
        if (r.opcode === 0x01 && this.state === 'login') {
          this.write(encodeAuthFailedText());
          this.close('normal');
          return;
        }
        this.refuse(r.code);
        if (r.fatal) {
          this.ctx.env.log.info(this.logContext({ code: r.code }), 'closing connection on unrecoverable input');
          this.close('normal');
          return;
        }
        continue;
      }
      const p = r.packet;
      if (this.state === 'login') {
        if (p.op === 'login') this.login(p);
        else if (p.op === 'get_status') this.status(p.target);
        else this.refuse('not_logged_in');
      } else this.online(p, this.user as Uint8Array);
    }
  }
}
