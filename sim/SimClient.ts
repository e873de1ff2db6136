/**
 * A simulated v1 client: connects to a node over a SimLink, logs in (dev mode, no token),
 * sends SEND and SEND_SEQ messages to other clients, acknowledges what it receives (now and
 * then late, sometimes never on that connection), asks for presence, disconnects and
 * reconnects. It speaks through the production encoder and client decoder, and writes every
 * operation to the history. Duplication is the client's doing: after a reconnect it may
 * resend its last SEND_SEQ messages with their original numbers, which the server must drop.
 * A workload may give it an extension (more operations, and the frames it does not act on).
 */
import { decodeCborMap } from '../edge/protocol/Cbor.js';
import { parseDeliveryPayload, V1ClientDecoder } from '../edge/protocol/V1ClientDecoder.js';
import { encodeAckPacket, encodeGetStatusPacket, encodeGroupCreatePacket, encodeGroupMsgPacket, encodeLoginPacket, encodeSendPacket, encodeSendSeqPacket } from '../edge/protocol/V1Encoder.js';
import { encodeCbor } from '../edge/protocol/Cbor.js';
import type { ServerFrame } from '../edge/protocol/V1Packets.js';
import type { History } from './History.js';
import { bytesHex, encodePayload, GROUP_TARGET, payloadKey } from './Payload.js';
import type { SimLink, LinkProfile } from './SimLink.js';
import type { SimNode } from './SimNode.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

export function userName(i: number): Uint8Array {
  return new TextEncoder().encode(`u${i}`);
}

export function userIndex(bytes: Uint8Array): number {
  return Number(new TextDecoder().decode(bytes).slice(1));
}

export interface ClientBehaviour {
  /** Mean messages per second while online and sending. */
  rate: number;
  /** Share of sends that use SEND_SEQ. */
  seqShare: number;
  /** Probability a delivery is acknowledged (else left for retransmit or the next login). */
  ackRate: number;
  /** Longest delay before an ACK, ms. */
  ackDelayMaxMs: number;
  /** Probability per send tick of dropping the connection on purpose. */
  disconnectRate: number;
  /** Resend this many of the last SEND_SEQ messages after a reconnect (duplicates). */
  resendOnReconnect: number;
  /** Share of sends that go to the group once the client is a confirmed member. */
  groupShare: number;
}

/** The simulation's one group: created by client 0, members added by the operator. */
export interface SharedGroup {
  gid: Uint8Array | null;
  /** Called once client 0 learns the group id. */
  created(gid: Uint8Array): void;
}

const GROUP_HEADER = encodeCbor({ v: 1 });

/**
 * More a client can do, supplied by a workload (the cluster's v1 workload adds prekey uploads
 * and fetches, read receipts and presence queries): offered each send tick before the client's
 * own choice, and told of the deliveries it recorded and of the frames it does not act on.
 */
export interface ClientExtension {
  /** Offered each send tick while the client is online; true when it used the tick. */
  tick(c: SimClient, link: SimLink): boolean;
  /** A delivery the client recorded: its id and the sender's payload inside it. */
  delivered(c: SimClient, msgId: Uint8Array, inner: Uint8Array, link: SimLink): void;
  /** A frame other than LOGIN_OK, RELIABLE_MSG and GROUP_JOIN (after the client recorded it). */
  frame(c: SimClient, f: ServerFrame, link: SimLink): void;
}

export class SimClient {
  link: SimLink | null = null;
  state: 'offline' | 'connecting' | 'online' = 'offline';
  conn = 0;
  loginAt = 0;
  /** When false the client stays away (after a clean logout at the end). */
  wantsOnline = true;
  sending = false;
  /** What a workload adds to the client (null: nothing). */
  extension: ClientExtension | null = null;
  private decoder = new V1ClientDecoder();
  private readonly seqs = new Map<number, number>();
  private lastSeqSent: { target: number; seq: number; payload: Uint8Array }[] = [];
  /** When this connection's GET_STATUS questions still unanswered were asked (v1 answers in request order). */
  private statusAsked: number[] = [];
  private sendTimer = false;
  readonly user: Uint8Array;
  private readonly addr: string;

  constructor(
    readonly index: number,
    private readonly world: SimWorld,
    private readonly random: SimRandom,
    private readonly history: History,
    private readonly node: () => SimNode,
    readonly peers: number,
    public behaviour: ClientBehaviour,
    public profile: LinkProfile,
    private readonly isLiveness: () => boolean,
    private readonly group: SharedGroup | null,
  ) {
    this.user = userName(index);
    this.addr = `10.${(index >> 8) & 255}.${index & 255}.1`;
  }

  /** Connect now, or retry later while the node is not accepting. */
  connect(): void {
    if (this.state !== 'offline' || !this.wantsOnline) return;
    const link = this.node().connect({ onData: (b) => this.onData(b), onClose: () => this.onClose() }, this.addr, this.profile, `c${this.index}`);
    if (link === null) {
      this.world.after(this.random.between(100, 1000), 'client_retry', () => this.connect(), null, this.index);
      return;
    }
    this.link = link;
    this.conn++;
    this.decoder = new V1ClientDecoder();
    this.statusAsked = [];
    this.state = 'connecting';
    this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'login', value: '', conn: this.conn });
    link.send(encodeLoginPacket(this.user), true);
  }

  /** Drop the connection now (a reset: bytes in flight are lost). */
  drop(): void {
    if (this.link === null) return;
    this.history.add({ at: this.world.now, client: this.index, type: 'info', op: 'disconnect', value: 'reset', conn: this.conn });
    this.link.reset();
  }

  /** Log out cleanly and stay away. */
  leave(): void {
    this.wantsOnline = false;
    this.sending = false;
    if (this.link === null) return;
    this.history.add({ at: this.world.now, client: this.index, type: 'info', op: 'disconnect', value: 'leave', conn: this.conn });
    this.link.clientEnd();
  }

  startSending(): void {
    this.sending = true;
    this.armSend();
  }

  /** Ask for the presence of the next `count` clients (by index, wrapping around). */
  queryPresence(count: number): void {
    for (let k = 1; k <= Math.min(count, this.peers - 1); k++) this.askStatus((this.index + k) % this.peers);
  }

  /** Ask for client `j`'s presence (GET_STATUS); its answer is recorded with when it was asked. */
  askStatus(j: number): void {
    if (this.state !== 'online' || this.link === null) return;
    this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'status', value: String(j), conn: this.conn });
    this.statusAsked.push(this.world.now);
    this.link.send(encodeGetStatusPacket(userName(j)));
  }

  private armSend(): void {
    if (this.sendTimer || !this.sending) return;
    this.sendTimer = true;
    const mean = 1000 / Math.max(0.001, this.behaviour.rate);
    const wait = Math.max(1, Math.round(-Math.log(1 - this.random.float()) * mean));
    this.world.after(wait, 'client_send', () => {
      this.sendTimer = false;
      if (!this.sending) return;
      this.tick();
      this.armSend();
    }, null, this.index);
  }

  private tick(): void {
    if (this.state !== 'online' || this.link === null) return;
    if (this.random.chance(this.behaviour.disconnectRate)) {
      this.drop();
      return;
    }
    if (this.extension?.tick(this, this.link) === true) return;
    const group = this.group;
    if (group !== null && group.gid !== null && this.history.groupMembers.has(this.index) && this.random.chance(this.behaviour.groupShare)) {
      const seq = (this.seqs.get(GROUP_TARGET) ?? 0) + 1;
      this.seqs.set(GROUP_TARGET, seq);
      const f = { sender: this.index, target: GROUP_TARGET, kind: 0 as const, seq, conn: this.conn };
      const payload = encodePayload(f, this.random.int(48));
      const key = payloadKey(f);
      this.history.sent.push({ at: this.world.now, client: this.index, conn: this.conn, target: GROUP_TARGET, kind: 0, seq, key, payloadHex: bytesHex(payload), liveness: this.isLiveness() });
      this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'send', value: key, conn: this.conn });
      this.link.send(encodeGroupMsgPacket(group.gid, GROUP_HEADER, payload));
      return;
    }
    let target = this.random.int(this.peers - 1);
    if (target >= this.index) target++;
    const kind: 0 | 1 = this.random.chance(this.behaviour.seqShare) ? 1 : 0;
    const seq = (this.seqs.get(target) ?? 0) + 1;
    this.seqs.set(target, seq);
    const payload = encodePayload({ sender: this.index, target, kind, seq, conn: this.conn }, this.random.int(48));
    const key = payloadKey({ sender: this.index, target, kind, seq, conn: this.conn });
    this.history.sent.push({ at: this.world.now, client: this.index, conn: this.conn, target, kind, seq, key, payloadHex: bytesHex(payload), liveness: this.isLiveness() });
    this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'send', value: key, conn: this.conn });
    if (kind === 1) {
      this.lastSeqSent.push({ target, seq, payload });
      if (this.lastSeqSent.length > 8) this.lastSeqSent.shift();
      this.link.send(encodeSendSeqPacket(userName(target), seq, payload));
    } else this.link.send(encodeSendPacket(userName(target), payload));
  }

  private onData(bytes: Uint8Array): void {
    this.decoder.push(bytes);
    for (;;) {
      const r = this.decoder.next();
      if (r.kind === 'need_more') return;
      if (r.kind === 'error') {
        this.history.add({ at: this.world.now, client: this.index, type: 'fail', op: 'deliver', value: `undecodable server bytes: ${r.code}`, conn: this.conn });
        this.link?.reset();
        return;
      }
      this.onFrame(r.frame);
    }
  }

  private onFrame(f: ServerFrame): void {
    const link = this.link;
    if (link === null) return;
    switch (f.kind) {
      case 'login_ok': {
        this.state = 'online';
        this.loginAt = this.world.now;
        this.history.add({ at: this.world.now, client: this.index, type: 'ok', op: 'login', value: '', conn: this.conn });
        if (this.index === 0 && this.group !== null && this.group.gid === null) {
          this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'group_create', value: '', conn: this.conn });
          link.send(encodeGroupCreatePacket(new TextEncoder().encode('sim')));
        }
        const n = this.behaviour.resendOnReconnect;
        const again = n > 0 ? this.lastSeqSent.slice(-n) : [];
        for (const m of again) {
          this.history.add({ at: this.world.now, client: this.index, type: 'info', op: 'resend', value: `q${this.index}>${m.target}#${m.seq}`, conn: this.conn });
          this.history.resent.add(bytesHex(m.payload));
          link.send(encodeSendSeqPacket(userName(m.target), m.seq, m.payload));
        }
        return;
      }
      case 'reliable_msg': {
        const id = bytesHex(f.msgId);
        this.world.note('deliver', f.msg.length);
        const inside = parseDeliveryPayload(f.msg);
        let inner = f.msg;
        let stampedSender = -1;
        if (inside.kind === 'group_msg') {
          inner = inside.ciphertext;
          const h = decodeCborMap(inside.header);
          const sender = h.ok ? h.map.get('sender') : undefined;
          if (sender instanceof Uint8Array) stampedSender = userIndex(sender);
          else if (typeof sender === 'string') stampedSender = Number(sender.slice(1));
        }
        this.history.delivered.push({ at: this.world.now, client: this.index, conn: this.conn, loginAt: this.loginAt, msgId: id, payloadHex: bytesHex(f.msg), innerHex: bytesHex(inner), stampedSender });
        this.history.add({ at: this.world.now, client: this.index, type: 'ok', op: 'deliver', value: id, conn: this.conn });
        const ackAll = this.isLiveness();
        if (ackAll || this.random.chance(this.behaviour.ackRate)) {
          const conn = this.conn;
          const msgId = f.msgId.slice();
          this.world.after(this.random.int(this.behaviour.ackDelayMaxMs + 1), 'client_ack', () => {
            if (this.conn !== conn || this.link === null || this.state !== 'online') return;
            this.history.add({ at: this.world.now, client: this.index, type: 'invoke', op: 'ack', value: id, conn });
            this.link.send(encodeAckPacket(msgId));
          }, null, this.index);
        }
        this.extension?.delivered(this, f.msgId, inner, link);
        return;
      }
      case 'status': {
        const subject = userIndex(f.user);
        this.history.statuses.push({ at: this.statusAsked.shift() ?? this.world.now, observer: this.index, subject, online: f.online });
        this.history.add({ at: this.world.now, client: this.index, type: 'ok', op: 'status', value: `${subject}:${f.online ? 'online' : 'offline'}`, conn: this.conn });
        this.extension?.frame(this, f, link);
        return;
      }
      case 'group_join':
        if (this.index === 0 && this.group !== null && this.group.gid === null && userIndex(f.user) === 0) {
          this.history.add({ at: this.world.now, client: this.index, type: 'ok', op: 'group_create', value: bytesHex(f.gid), conn: this.conn });
          this.group.gid = f.gid.slice();
          this.group.created(this.group.gid);
        }
        return;
      case 'error':
      case 'rate_limited':
      case 'rate_limited_text':
      case 'auth_failed_text':
        this.history.refusedConns.add(`${this.index}/${this.conn}`);
        this.history.add({ at: this.world.now, client: this.index, type: 'fail', op: 'refused', value: f.kind === 'error' ? f.reason : f.kind, conn: this.conn });
        this.extension?.frame(this, f, link);
        return;
      default:
        this.extension?.frame(this, f, link);
        return;
    }
  }

  private onClose(): void {
    this.link = null;
    const was = this.state;
    this.state = 'offline';
    if (was === 'connecting') this.history.add({ at: this.world.now, client: this.index, type: 'fail', op: 'login', value: 'closed', conn: this.conn });
    if (this.wantsOnline) this.world.after(this.random.between(50, 2000), 'client_reconnect', () => this.connect(), null, this.index);
  }
}
