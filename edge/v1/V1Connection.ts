/**
 * One client connection speaking protocol v1, as a StateMachine (gen_statem) with a handler
 * per state: `login` (LOGIN, and GET_STATUS where the mode allows it; everything else is
 * refused `not_logged_in`; a state timeout closes a connection that never logs in) and
 * `online` (every other packet, through V1Dispatch). What the connection writes:
 *
 * - deliveries once each (V1Render), within its DeliveryWindow; what cannot be written now
 *   stays in the durable inbox and is read again page by page through the session, so a slow
 *   or silent client costs a bounded window, never a queue;
 * - answers in request order (ReplyQueue), refusals as ERROR frames with stable codes;
 * - notices (typing, receipts) only while the client keeps up: they are the first to drop.
 *
 * Reading stops (the link is paused) while the client does not read its output, while its
 * budget for what it sends is spent (shaping: slowed, never refused), while too many of
 * its requests await answers, and in a cluster while route_window of its routes await their
 * owner's answer.
 *
 * In a cluster every route is kept (RouteLedger) until the owner of the recipient's shard group
 * answers it; at most route_in_flight of a lane are sent and unanswered at a time, the rest wait
 * here in order (held, untimed). A route in flight is sent again, in order, when it waited the
 * retry wait (route_retry_ms at least, longer while the owners answer slowly: RouteLedger), when
 * the owner changed or when the owner said "not now"; a route still unanswered after
 * route_horizon_ms is given up with ERROR request_timeout. Acknowledgements go to the owner of the user's group and are sent
 * again the same way until confirmed. When the client closes, routes still held go out at once
 * (what it sent before closing is not lost with the connection); none is sent again after. A client that stays backed up for slow_client_timeout_ms is
 * disconnected; its session ends with the connection; its token's expiry ends both.
 *
 * When the node drains (`node_draining`, edge/ClientDrain.ts) the connection *leaves*: it writes
 * ERROR node_draining as its last frame and ends its session (so nothing more is delivered here;
 * what the client did not acknowledge stays in the inbox for its next login), keeps handling what
 * the client still sends (messages routed, ACKs applied; answers are no longer written) until the
 * client closes or stops sending, or the grace time passes (then it ends the link itself), and
 * exits only once every route and ACK it read is confirmed by its owner (or given up at the route
 * horizon). Only then does it end its side of the link: on TCP the server's FIN tells a client
 * that half-closed that everything it sent was taken.
 * It never touches sockets: link events arrive as messages and it writes through the
 * ClientLink, so the simulator drives it with virtual links.
 */
import * as StateMachine from '../../actors/StateMachine.js';
import { canary } from '../../core/Canaries.js';
import { isNotice, type Delivery, type Notice } from '../../core/Delivery.js';
import type { StoredItem } from '../../core/Inbox.js';
import type { GroupsReply } from '../../core/Groups.js';
import type { KeyDirectoryReply } from '../../core/KeyDirectory.js';
import { sendTo } from '../../core/Router.js';
import type { AckDone, RouteAccepted, RouteRefused, RouterInboxAck, RouterRoute } from '../../core/RouterShard.js';
import { sessionActor, type SessionFetch, type SessionToConnection } from '../../core/SessionActor.js';
import { describeUser, userKey, type UserKey } from '../../core/UserId.js';
import { isExitMessage, type ExitReason } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../../runtime/ProcessContext.js';
import type { LiveToken, TokenEnded } from '../auth/LiveTokens.js';
import { NODE_DRAINING_CLOSE, type NodeDraining } from '../ClientDrain.js';
import type { ClientLink, LinkClose } from '../ClientLink.js';
import type { ClusterRouting, ConnectionDeps, OwnersChanged } from '../ConnectionDeps.js';
import { INPUT_BACKLOG_BYTES, type LinkEvent } from '../EdgeAcceptor.js';
import { DeliveryWindow } from '../DeliveryWindow.js';
import { LOGIN_TEXT, type ClientErrorCode } from '../ErrorCodes.js';
import { ReplyQueue } from '../ReplyQueue.js';
import { RouteLedger, type PendingAck, type PendingRoute } from '../RouteLedger.js';
import { V1_MAX_LOGIN_BYTES } from '../protocol/v1Limits.js';
import { V1Decoder } from '../protocol/V1Decoder.js';
import { encodeErrorFrame, encodeLoginOkFrame, encodeStatusFrame } from '../protocol/V1Encoder.js';
import type { ClientPacket } from '../protocol/V1Packets.js';
import { dispatchV1, groupsAnswer, prekeysAnswer, type Step } from './V1Dispatch.js';
import { v1DeliveryFrame, v1NoticeFrame } from './V1Render.js';

/** Requests a connection may have awaiting answers before it stops reading more. */
export const V1_MAX_OPEN_REQUESTS = 64;
/** Shortest pause when a budget is spent: each wake-up then takes a few tokens, not one. */
export const SHAPING_MIN_PAUSE_MS = 20;
/** Output bytes queued beyond which a notice (typing, receipt) is dropped rather than written. */
export const NOTICE_DROP_BUFFERED_BYTES = 64 * 1024;

type State = 'login' | 'online';
type Result = StateMachine.EventReturn<State, V1Conn>;

const KEEP: Result = Object.freeze({ keepState: true }) as Result;
const PUMP = { t: 'pump' } as const;

/** Timer names (StateMachine generic timeouts). */
const SLOW_CLIENT = 'slow_client';
const SHAPED = 'shaped';
const TOKEN_EXPIRY = 'token_expiry';
const REQUEST_DEADLINE = 'request_deadline';
const ROUTE_RETRY = 'route_retry';
const DRAIN_GRACE = 'drain_grace';

/** The body of a v1 connection process for `link`; spawn it with label 'Connection'. */
export function v1Connection(link: ClientLink, deps: ConnectionDeps): ProcessBody {
  return StateMachine.body(behaviour, { link, deps });
}

interface Args {
  link: ClientLink;
  deps: ConnectionDeps;
}

/**
 * The state and steps of one connection. A class rather than closures: a node holds tens of
 * thousands of mostly idle connections, and one object costs a fraction of a dozen closures.
 */
export class V1Conn {
  readonly decoder = new V1Decoder();
  readonly window: DeliveryWindow;
  readonly replies: ReplyQueue;
  user: Uint8Array | null = null;
  /** `user` as a UserKey, set with it at login. */
  meKey = '' as UserKey;
  session: Pid | null = null;
  closed = false;
  /** The client does not read: its output is over the link's high-water mark. */
  private outputBlocked = false;
  /** A budget is spent: reading waits for the SHAPED timeout. */
  private shaped = false;
  /** Reading is paused at the link. */
  private linkPaused = false;
  /** A packet read but not yet allowed by its budget (handled first when reading resumes). */
  private pending: ClientPacket | null = null;
  /** The decoder has answered need_more since its last push: it may take the next chunk. */
  private decoderIdle = true;
  /**
   * Input that arrived while the decoder still held undecoded packets (reading was held), oldest
   * first: legal traffic the connection itself is slowing, decoded once reading resumes and never
   * counted against the input cap, which bounds a packet being assembled.
   */
  private queued: Uint8Array[] | null = null;
  private queuedBytes = 0;
  /** Items of the pending BATCH_SEND already routed. */
  batchDone = 0;
  /** The login token's entry in LiveTokens (a revocation of its jti ends this session). */
  private liveToken: LiveToken | null = null;
  /** Actions for the StateMachine collected while handling one event (timers). */
  private actions: StateMachine.Action[] | null = null;
  /** In a cluster: routes and acknowledgements awaiting their owner's answer (made at the first). */
  private ledger: RouteLedger | null = null;
  /** In a cluster: the retry timer runs, and the connection hears of ownership changes. */
  private retrying = false;
  /** The node drains: ERROR node_draining was written, nothing more is; the connection ends once what it read is confirmed. */
  leaving = false;
  /** Leaving, and the client will send nothing more (it closed, or the grace time passed). */
  private inputEnded = false;
  /** The link was ended already (by the drain's grace time). */
  private linkEnded = false;
  /** How the link is closed when the connection ends (a WebSocket's close code and reason). */
  private endWith: LinkClose | undefined = undefined;

  constructor(
    readonly link: ClientLink,
    readonly deps: ConnectionDeps,
    readonly ctx: ProcessContext,
  ) {
    const s = deps.settings;
    // Before login nothing longer than a LOGIN is legal (and never more than the configured cap).
    this.decoder.setInputBufferCap(Math.min(V1_MAX_LOGIN_BYTES, s.maxInputBufferBytes), true);
    this.window = new DeliveryWindow({ maxMessages: s.windowMessages, maxBytes: s.windowBytes });
    this.replies = new ReplyQueue((answer) => this.write(answer), V1_MAX_OPEN_REQUESTS);
  }

  // ---- results ------------------------------------------------------------------------

  /** Stay in the state, with the timers set while handling the event. */
  keep(): Result {
    const a = this.actions;
    if (a === null) return KEEP;
    this.actions = null;
    return { keepState: true, actions: a };
  }

  private act(a: StateMachine.Action): void {
    (this.actions ??= []).push(a);
  }

  // ---- output -------------------------------------------------------------------------

  /** Write `bytes`; a link over its high-water mark stops reading until `drain`. */
  write(bytes: Uint8Array): void {
    if (this.closed || this.leaving) return;
    if (this.link.write(bytes) || this.outputBlocked) return;
    this.outputBlocked = true;
    this.act({ genericTimeout: SLOW_CLIENT, ms: this.deps.settings.slowClientTimeoutMs });
    this.updateReading();
  }

  /** An ERROR not tied to a request's turn (the login timed out, a message was refused later). */
  refuse(code: ClientErrorCode): void {
    this.write(encodeErrorFrame(code));
  }

  /** Refuse the request just read: its ERROR waits for the answers to earlier requests (request order). */
  refuseRequest(code: ClientErrorCode): void {
    this.replies.now(encodeErrorFrame(code));
  }

  /** The link drained below its low-water mark. */
  drained(): void {
    if (!this.outputBlocked) return;
    this.outputBlocked = false;
    this.act({ genericTimeout: SLOW_CLIENT, ms: Infinity });
    this.updateReading();
    this.fetchIfBehind();
  }

  // ---- input --------------------------------------------------------------------------

  /**
   * Bytes from the link. While the decoder still holds packets not yet handled (reading is held:
   * output backed up, a budget spent, answers outstanding) they wait in arrival order. A paused
   * link delivers no more (TCP stops reading; a WebSocket link holds frames up to its own limit,
   * edge/listeners/UwsServer.ts), and the acceptor pauses a link whose mailbox falls behind
   * (INPUT_BACKLOG_BYTES), so what waits is what was on its way. Past QUEUED_INPUT_LIMIT (a
   * safety net that legal traffic never reaches) it returns false: the connection must close.
   */
  input(bytes: Uint8Array): boolean {
    if (this.decoderIdle && this.queued === null) {
      this.decoderIdle = false;
      this.decoder.push(bytes);
      return true;
    }
    (this.queued ??= []).push(bytes);
    this.queuedBytes += bytes.length;
    return this.queuedBytes <= queuedInputLimit(this.deps.settings.maxInputBufferBytes);
  }

  /** Input overflowed while reading was held (more than a paused link can have had on its way). */
  overflow(): Result {
    this.refuse('input_buffer_overflow');
    this.ctx.env.log.info(this.logContext({ code: 'input_buffer_overflow', queued: this.queuedBytes }), 'closing connection on unrecoverable input');
    return this.close('normal');
  }

  /** Pause or resume reading from the link to match why it must wait. */
  private updateReading(): void {
    const hold = this.outputBlocked || this.shaped || this.replies.full || this.routesFull();
    if (hold === this.linkPaused || this.closed) return;
    this.linkPaused = hold;
    if (hold) this.link.pause();
    else this.link.resume();
  }

  /**
   * Decode and handle buffered packets in `state` until none is left or reading must wait.
   * Returns the StateMachine result (a state change after LOGIN, or a stop).
   */
  pump(state: State): Result {
    for (;;) {
      if (this.closed) return { stop: 'normal' };
      if (this.outputBlocked || this.shaped || this.replies.full || this.routesFull()) {
        this.updateReading();
        return this.keep();
      }
      let p = this.pending;
      this.pending = null;
      if (p === null) {
        const r = this.decoder.next();
        if (r.kind === 'need_more') {
          const q = this.queued;
          if (q === null) {
            this.decoderIdle = true;
            return this.keep();
          }
          const chunk = q.shift()!;
          this.queuedBytes -= chunk.length;
          if (q.length === 0) this.queued = null;
          this.decoder.push(chunk);
          continue;
        }
        if (r.kind === 'error') {
          if (r.opcode === 0x01 && state === 'login') {
            this.write(loginText('auth_failed'));
            return this.close('normal');
          }
          if (!r.fatal) {
            // A refused packet is a request answered ERROR: in its turn.
            this.refuseRequest(r.code);
            continue;
          }
          this.refuse(r.code);
          this.ctx.env.log.info(this.logContext({ code: r.code }), 'closing connection on unrecoverable input');
          return this.close('normal');
        }
        p = r.packet;
      }
      const step: Step = state === 'login' ? this.loginPacket(p) : dispatchV1(this, p);
      if (step === 'next') continue;
      if (step === 'online') {
        this.act({ nextEvent: 'internal', event: PUMP });
        const a = this.actions!;
        this.actions = null;
        return { nextState: 'online', actions: a };
      }
      if (step === 'close') return this.close('normal');
      // A spent budget: keep the packet, stop reading, look again when it has refilled.
      this.pending = p;
      this.shaped = true;
      this.act({ genericTimeout: SHAPED, ms: Math.max(SHAPING_MIN_PAUSE_MS, step.waitMs) });
      this.updateReading();
      return this.keep();
    }
  }

  /** The SHAPED timeout: the budget has refilled. */
  unshape(): void {
    this.shaped = false;
    this.updateReading();
  }

  /** A tag for a request answered later by a service; the first one waiting arms its deadline. */
  openRequest(): number {
    const now = this.ctx.env.clock.monotonicMs();
    if (this.replies.oldestWaiting() === null) this.act({ genericTimeout: REQUEST_DEADLINE, ms: this.deps.settings.requestTimeoutMs });
    return this.replies.open(now);
  }

  /** The request deadline: answer what waited too long, in turn, and watch the next one. */
  requestDeadline(): void {
    const now = this.ctx.env.clock.monotonicMs();
    const timeout = this.deps.settings.requestTimeoutMs;
    const wasFull = this.replies.full;
    if (this.replies.expire(now - timeout + 1, encodeErrorFrame('request_timeout')) > 0) {
      this.ctx.env.log.warn(this.logContext({}), 'a request got no answer in time');
    }
    const next = this.replies.oldestWaiting();
    if (next !== null) this.act({ genericTimeout: REQUEST_DEADLINE, ms: Math.max(1, next + timeout - now) });
    if (wasFull && !this.replies.full) this.updateReading();
  }

  /** An answer's turn may have come: reading may resume. */
  answered(tag: number, answer: Uint8Array | null): void {
    const wasFull = this.replies.full;
    this.replies.settle(tag, answer);
    if (wasFull && !this.replies.full) this.updateReading();
  }

  // ---- login --------------------------------------------------------------------------

  private loginPacket(p: ClientPacket): Step {
    if (p.op === 'get_status' && this.deps.settings.statusBeforeLogin) return this.status(p.target, this.link.remoteAddress);
    if (p.op !== 'login') {
      this.refuseRequest('not_logged_in');
      return 'next';
    }
    const { ctx, deps } = this;
    const check = deps.authenticate(p.user, p.token, this.link);
    if (!check.ok) {
      ctx.env.log.info(this.logContext({ code: check.code, login_user: describeUser(userKey(p.user)) }), 'login refused');
      this.write(loginText(check.code));
      return 'close';
    }
    // A copy of just the user bytes: the login packet (with its token) is not kept alive.
    const user = p.user.slice();
    const key = userKey(user);
    this.user = user;
    this.meKey = key;
    const s = deps.settings;
    const cluster = deps.cluster;
    this.session = ctx.spawnLink(
      sessionActor({
        user: key,
        connection: ctx.self,
        shard: deps.shardFor(key),
        inbox: deps.inbox,
        ...(cluster !== null ? { follow: cluster.following, loginAtMs: ctx.env.clock.wallMs() } : {}),
        pageMessages: s.pageMessages,
        pageBytes: s.pageBytes,
        noticeLimit: s.noticeLimit,
      }),
      { label: 'Session' },
    );
    this.decoder.setInputBufferCap(s.maxInputBufferBytes);
    if (check.expiresAtMs !== undefined) this.act({ genericTimeout: TOKEN_EXPIRY, ms: Math.max(0, check.expiresAtMs - ctx.env.clock.wallMs()) });
    // Registered in the same turn as the login decision: a revocation in between still reaches it.
    if (check.jti !== undefined) this.liveToken = deps.liveTokens.register(ctx.self, check.jti);
    ctx.env.log.debug(this.logContext({}), 'logged in');
    this.write(encodeLoginOkFrame());
    // The stored inbox comes first, page by page, before any live delivery.
    this.fetchIfBehind();
    // Most connections idle after login: give back the mailbox storage until the next message.
    this.act({ hibernate: true });
    return 'online';
  }

  /** GET_STATUS of `target`, charged to `who` (the user, or the address before login). */
  status(target: Uint8Array, who: string): Step {
    const r = this.deps.rates.status(who);
    if (!r.ok) return { waitMs: r.retryAfterMs };
    const s = this.deps.presence.status(userKey(target));
    this.replies.now(encodeStatusFrame(target, s.online, s.lastSeen));
    return 'next';
  }

  // ---- deliveries ---------------------------------------------------------------------

  /** A live delivery from the session: written now, or left in the inbox for a later page. */
  deliver(id: Uint8Array, rec: Delivery, bytes: number): void {
    const w = this.window;
    if (w.behind || this.leaving) return;
    if (this.outputBlocked || !w.fits(bytes)) {
      if (!this.outputBlocked) w.blocked(bytes);
      w.behind = true;
      return;
    }
    this.write(v1DeliveryFrame(id, rec));
    w.wrote(id, bytes);
  }

  /** A page of the stored inbox, after the last id this connection wrote. */
  page(items: readonly StoredItem[], more: boolean): void {
    const w = this.window;
    w.fetching = false;
    if (this.leaving) return;
    let stopped = false;
    for (const it of items) {
      if (this.outputBlocked || this.closed) {
        stopped = true;
        break;
      }
      if (isNotice(it.rec)) {
        // A notice kept by a release that stored v1 frames: handed over once, then removed.
        this.write(v1NoticeFrame(it.rec));
        this.removeStored(it.id);
        continue;
      }
      if (!w.fits(it.bytes)) {
        w.blocked(it.bytes);
        stopped = true;
        break;
      }
      this.write(v1DeliveryFrame(it.id, it.rec));
      w.wrote(it.id, it.bytes);
    }
    w.behind = stopped || more;
    this.fetchIfBehind();
  }

  /** Ask the session for the next page when behind and there is room for it. */
  fetchIfBehind(): void {
    const w = this.window;
    if (!w.behind || w.fetching || this.outputBlocked || this.closed || this.session === null || !w.hasRoom()) return;
    w.fetching = true;
    this.ctx.send(this.session, { t: 'fetch', afterId: w.lastWritten } satisfies SessionFetch);
  }

  /** The client acknowledged `id`: remove it from the inbox, and read on if that made room. */
  ack(id: Uint8Array): void {
    if (!this.window.ack(id)) return;
    this.removeStored(id);
    this.fetchIfBehind();
  }

  /** Remove `id` from the user's inbox: directly, or in a cluster through the owner (kept until confirmed). */
  private removeStored(id: Uint8Array): void {
    const inbox = this.deps.inbox;
    if (inbox !== null) {
      void inbox.ack(this.meKey, id);
      return;
    }
    const cluster = this.deps.cluster!;
    const a = this.ledgerOf().addAck(id, this.ctx.env.clock.monotonicMs());
    this.sendAck(cluster, a);
    this.armRetry(cluster);
  }

  private sendAck(cluster: ClusterRouting, a: PendingAck): void {
    this.ledger!.ackSent(a, cluster.ownerOf(cluster.groupOf(this.meKey)) ?? '', this.ctx.env.clock.monotonicMs());
    if (a.sentTo === '') return;
    sendTo(this.ctx, this.deps.shardFor(this.meKey), { t: 'inbox_ack', user: this.meKey, id: a.id, replyTo: this.ctx.self } satisfies RouterInboxAck);
  }

  // ---- routing ------------------------------------------------------------------------

  /**
   * Route `rec` to `to`. On a single node: one local send (never lost). In a cluster: kept in
   * the ledger and sent to the owner of `to`'s group, after the lane's earlier routes if they
   * went to another owner (so one sender's order holds through an ownership move).
   */
  route(to: UserKey, rec: Delivery, seq?: bigint): void {
    const m: RouterRoute = { t: 'route', to, rec, replyTo: this.ctx.self };
    if (seq !== undefined) m.seq = seq;
    const cluster = this.deps.cluster;
    if (cluster === null) {
      this.ctx.send(this.deps.shardFor(to) as Pid | string, m);
      return;
    }
    const ledger = this.ledgerOf();
    const g = cluster.groupOf(to);
    const owner = cluster.ownerOf(g) ?? '';
    // A message to the user's own group goes after the acknowledgements sent before it (a client
    // that sends itself a marker after its ACKs knows they are durable once the marker is back).
    if (ledger.ackCount > 0 && g === cluster.groupOf(this.meKey)) {
      for (const a of ledger.acksMoved(owner)) {
        cluster.stats.acksResent++;
        this.sendAck(cluster, a);
      }
    }
    ledger.add(g, m, this.ctx.env.clock.monotonicMs());
    this.sendHeld(cluster, g);
    this.armRetry(cluster);
  }

  /**
   * Send the held routes of lane `g` that fit in flight (route_in_flight), in order; if the
   * lane went to another owner, its routes in flight go there again first.
   */
  private sendHeld(cluster: ClusterRouting, g: number, limit = cluster.inFlight): void {
    const ledger = this.ledger!;
    const next = ledger.sendable(g, limit);
    if (next.length === 0) return;
    const owner = cluster.ownerOf(g) ?? '';
    if (ledger.laneMoved(g, owner)) this.sendLane(cluster, g);
    for (const p of next) this.sendRoute(cluster, p, owner);
  }

  private ledgerOf(): RouteLedger {
    return (this.ledger ??= new RouteLedger(this.deps.cluster!.timing));
  }

  /** Whether route_window routes await answers (reading waits). */
  private routesFull(): boolean {
    const l = this.ledger;
    return l !== null && l.size >= this.deps.cluster!.window;
  }

  private sendRoute(cluster: ClusterRouting, p: PendingRoute, owner: string): void {
    this.ledger!.sent(p, owner, this.ctx.env.clock.monotonicMs());
    if (owner === '') return;
    const shard = cluster.shardOfGroup(p.g);
    if (shard === null) return;
    sendTo(this.ctx, shard, { ...p.msg, ticket: { g: p.g, n: p.n, base: this.ledger!.base(p.g) } } satisfies RouterRoute);
  }

  /** Send every route of lane `g` in flight again, in order, to its owner now. */
  private sendLane(cluster: ClusterRouting, g: number): void {
    const owner = cluster.ownerOf(g) ?? '';
    for (const p of this.ledger!.lane(g)) {
      if (p.sentTo !== '') cluster.stats.routesResent++;
      this.sendRoute(cluster, p, owner);
    }
  }

  /** Keep the retry timer running, and hear of ownership changes, while anything waits. */
  private armRetry(cluster: ClusterRouting): void {
    if (this.retrying) return;
    this.retrying = true;
    cluster.watch(this.ctx.self);
    this.act({ genericTimeout: ROUTE_RETRY, ms: cluster.retryMs });
  }

  /**
   * The retry timer, or the ownership table changed (`timer` false): give up what waited past
   * the horizon, send again what is due, send held routes that now fit, and keep the timer while
   * anything waits.
   */
  retryRoutes(timer: boolean): void {
    const cluster = this.deps.cluster;
    const ledger = this.ledger;
    if (cluster === null || ledger === null || this.closed) return;
    const now = this.ctx.env.clock.monotonicMs();
    if (timer) {
      for (const p of ledger.expired(now, cluster.horizonMs)) {
        cluster.stats.routesGivenUp++;
        this.ctx.env.log.warn(this.logContext({ group: p.g, n: p.n }), 'a message got no answer from its shard group in time; its fate is unknown');
        this.refuse('request_timeout');
      }
    }
    // Acknowledgements first: a route to the user's own group sent after them must find them done.
    const owner = cluster.ownerOf(cluster.groupOf(this.meKey)) ?? '';
    for (const a of ledger.acksDue(now, cluster.retryMs, owner, cluster.horizonMs)) {
      cluster.stats.acksResent++;
      this.sendAck(cluster, a);
    }
    for (const g of ledger.lanesDue(now, cluster.retryMs, (x) => cluster.ownerOf(x))) this.sendLane(cluster, g);
    for (const g of ledger.holding()) this.sendHeld(cluster, g);
    if (!timer) return;
    this.retrying = false;
    if (ledger.empty) cluster.unwatch(this.ctx.self);
    else this.armRetry(cluster);
    this.updateReading();
  }

  /** The owner took route `n` of lane `g` (durable). */
  routeAccepted(g: number, n: number): void {
    if (this.ledger?.settle(g, n, this.ctx.env.clock.monotonicMs()) === undefined) return;
    this.sendHeld(this.deps.cluster!, g);
    this.updateReading();
  }

  /** A refusal from a shard: final (told to the client), or in a cluster "not now" (sent again). */
  routeRefused(m: RouteRefused): void {
    if (m.g === undefined || m.n === undefined || this.ledger === null) {
      this.refuse(m.code);
      return;
    }
    if (m.code === 'storage_unavailable') {
      this.ledger.retry(m.g, m.n);
      return;
    }
    if (this.ledger.settle(m.g, m.n, this.ctx.env.clock.monotonicMs()) === undefined) return;
    this.refuse(m.code);
    this.sendHeld(this.deps.cluster!, m.g);
    this.updateReading();
  }

  /** The owner confirmed an acknowledgement. */
  ackDone(id: Uint8Array): void {
    this.ledger?.ackDone(id, this.ctx.env.clock.monotonicMs());
  }

  /** In a cluster: a group message or sender key taken by its groups server; route each copy. */
  groupFanout(to: readonly UserKey[], rec: Delivery): void {
    for (const u of to) this.route(u, rec);
  }

  /** The session registered again after its shard moved: read the inbox again from the last id written. */
  gap(): void {
    this.window.behind = true;
    this.fetchIfBehind();
  }

  /**
   * A notice. A live one is written only while the client keeps up (notices are the first to
   * drop); one kept while the user was offline has left storage already and is written (there
   * are at most receipt_inbox_cap of them per login).
   */
  notice(rec: Notice, stored: boolean): void {
    if (this.leaving) return;
    if (!stored && (this.outputBlocked || this.link.bufferedBytes() > NOTICE_DROP_BUFFERED_BYTES)) return;
    this.write(v1NoticeFrame(rec));
  }

  // ---- leaving (the node drains) -------------------------------------------------------

  /**
   * The node drains: tell the client (ERROR node_draining, the last frame it gets) and end the
   * session; a connection not logged in closes at once. The client has `graceMs` to close.
   */
  nodeDraining(state: State, graceMs: number): Result {
    if (this.leaving || this.closed) return this.keep();
    this.refuse('node_draining');
    this.endWith = NODE_DRAINING_CLOSE;
    if (state === 'login') return this.close('normal');
    this.leaving = true;
    // Nothing more is written, so a client that does not read no longer holds its input back.
    if (this.outputBlocked) {
      this.outputBlocked = false;
      this.act({ genericTimeout: SLOW_CLIENT, ms: Infinity });
      this.updateReading();
    }
    if (this.session !== null) {
      // Linked: its exit comes back and is ignored while leaving. The user shows offline here.
      this.ctx.sendExit(this.session, 'shutdown');
      this.session = null;
    }
    this.act({ genericTimeout: DRAIN_GRACE, ms: graceMs });
    return this.keep();
  }

  /**
   * The client closed: the routes still held at the edge go out now, past route_in_flight, as
   * every route did before the limit, so what it sent before closing reaches the owners.
   * Nothing is sent again after the close.
   */
  flushHeld(): void {
    const cluster = this.deps.cluster;
    if (cluster === null || this.ledger === null) return;
    for (const g of this.ledger.holding()) this.sendHeld(cluster, g, Infinity);
  }

  /** Leaving, and no more input is read (the client closed, or the grace time passed). */
  get doneReading(): boolean {
    return this.inputEnded;
  }

  /** Leaving: the client closed or stopped sending; what was read is still handled. */
  inputClosed(): void {
    this.inputEnded = true;
  }

  /** Leaving: the grace time passed and the client has not closed; end the link (WebSocket 1001 node_draining). */
  graceOver(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    this.linkEnded = true;
    this.link.end(NODE_DRAINING_CLOSE);
  }

  /** Leaving, the client will send nothing more, everything read is handled and every route and ACK confirmed. */
  doneLeaving(): boolean {
    return this.leaving && this.inputEnded && this.pending === null && this.queued === null && this.decoderIdle && (this.ledger === null || this.ledger.empty);
  }

  // ---- the end ------------------------------------------------------------------------

  /** End the link, the session (so the user goes offline) and this process. */
  close(reason: ExitReason, now = false): Result {
    if (!this.closed) {
      this.closed = true;
      if (this.liveToken !== null) {
        this.deps.liveTokens.unregister(this.liveToken);
        this.liveToken = null;
      }
      // A graceful end waits for queued output to flush, which never happens for a client
      // that does not read: such a link is destroyed.
      if (now) this.link.destroy();
      else if (!this.linkEnded) this.link.end(this.endWith);
      if (this.session !== null) this.ctx.sendExit(this.session, 'shutdown');
      if (this.retrying) this.deps.cluster?.unwatch(this.ctx.self);
      // The planted bug's site (core/Canaries.ts), kept as the simulator's tests know it.
      if (canary('drop_unacked_on_disconnect') && this.user !== null) for (const id of this.window.ids()) void this.deps.inbox?.ack(this.meKey, id);
    }
    return { stop: reason };
  }

  /**
   * Context on every log line of this connection: peer, transport, user once logged in. The
   * user is described only if the line is written (a getter): logins log at debug level.
   */
  logContext(fields: object): object {
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

  /** The slow-client timeout fired: still backed up, so the client is not reading. */
  slowClient(): Result {
    if (!this.outputBlocked) return this.keep();
    this.ctx.env.log.info(this.logContext({ buffered: this.link.bufferedBytes() }), 'disconnecting a client that does not read');
    return this.close('normal', true);
  }
}

/**
 * Input a connection may queue while its reading is held: the acceptor's backlog plus a largest
 * packet's worth of frames already on their way (two input caps), beyond which the client is
 * not a paused link's in-flight input but a flood.
 */
function queuedInputLimit(maxInputBufferBytes: number): number {
  return 2 * maxInputBufferBytes + INPUT_BACKLOG_BYTES;
}

function loginText(code: keyof typeof LOGIN_TEXT): Uint8Array {
  const t = LOGIN_TEXT[code];
  const out = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) out[i] = t.charCodeAt(i);
  return out;
}

type Incoming = LinkEvent | SessionToConnection | RouteRefused | RouteAccepted | AckDone | OwnersChanged | GroupsReply | KeyDirectoryReply | TokenEnded | NodeDraining;

const behaviour: StateMachine.Behaviour<State, V1Conn, Args> = {
  init: ({ link, deps }, ctx) => {
    ctx.trapExit(true);
    const c = new V1Conn(link, deps, ctx);
    return { state: 'login', data: c, actions: [{ stateTimeout: deps.settings.loginTimeoutMs }] };
  },

  handleEvent: (type, ev, state, c): Result => {
    const r = event(type, ev, state, c);
    // A leaving connection ends once the last thing it read is confirmed.
    return c.leaving && !('stop' in r) && c.doneLeaving() ? c.close('normal') : r;
  },
};

function event(type: StateMachine.EventType, ev: unknown, state: State, c: V1Conn): Result {
  if (type === 'info') return info(ev, state, c);
  if (type === 'internal') return c.pump(state);
  if (type === 'state_timeout') {
    // Only the login state has one: the client never logged in.
    c.refuse('login_timeout');
    return c.close('normal');
  }
  if (StateMachine.isGenericTimeout(type)) {
    switch (type.generic_timeout) {
      case SLOW_CLIENT:
        return c.leaving ? c.keep() : c.slowClient();
      case SHAPED:
        c.unshape();
        return c.pump(state);
      case TOKEN_EXPIRY:
        // A leaving connection ends anyway once what it read is confirmed.
        if (c.leaving) return c.keep();
        c.refuse('token_expired');
        return c.close('normal');
      case REQUEST_DEADLINE:
        c.requestDeadline();
        return c.pump(state);
      case ROUTE_RETRY:
        c.retryRoutes(true);
        return c.pump(state);
      case DRAIN_GRACE:
        c.graceOver();
        return c.pump(state);
    }
  }
  return KEEP;
}

function info(ev: unknown, state: State, c: V1Conn): Result {
  if (isExitMessage(ev)) {
    // Leaving: the session was ended on purpose; the connection still finishes what it read.
    if (c.leaving) return c.keep();
    // The session ended (replaced by a newer login, or failed): this connection ends too.
    return c.close(ev.reason === 'normal' ? 'normal' : { shutdown: 'session_ended' });
  }
  const m = ev as Incoming;
  switch (m.t) {
    case 'link_data':
      // After the drain's grace time what the client still sends is not read.
      if (c.leaving && c.doneReading) return c.keep();
      return c.input(m.bytes) ? c.pump(state) : c.overflow();
    case 'link_drain':
      c.drained();
      return c.pump(state);
    case 'link_closed':
      if (!c.leaving) {
        c.flushHeld();
        return c.close('normal');
      }
      c.inputClosed();
      return c.pump(state);
    case 'node_draining':
      return c.nodeDraining(state, m.graceMs);
    case 'deliver':
      c.deliver(m.id, m.rec, m.bytes);
      return c.keep();
    case 'page':
      c.page(m.items, m.more);
      return c.keep();
    case 'notice':
      c.notice(m.rec, m.stored);
      return c.keep();
    case 'route_refused':
      c.routeRefused(m);
      return c.pump(state);
    case 'route_accepted':
      c.routeAccepted(m.g, m.n);
      return c.pump(state);
    case 'ack_done':
      c.ackDone(m.id);
      return c.keep();
    case 'owners_changed':
      c.retryRoutes(false);
      return c.keep();
    case 'gap':
      c.gap();
      return c.keep();
    case 'group_fanout':
      c.groupFanout(m.to, m.rec);
      c.answered(m.tag, null);
      return c.pump(state);
    case 'token_ended':
      if (c.leaving) return c.keep();
      // The token was revoked: the session ends now, not at its expiry.
      c.refuse(m.code);
      return c.close('normal');
    case 'prekeys':
      c.answered(m.tag, prekeysAnswer(m));
      return c.pump(state);
    default:
      c.answered(m.tag, groupsAnswer(m, c.user));
      return c.pump(state);
  }
}

