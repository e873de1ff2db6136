/**
 * What the cluster's v1 clients do beyond SimClient's messages (its ClientExtension): upload
 * prekey bundles (each client its first, then now and then more) and fetch other users' bundles
 * (UPLOAD_PREKEYS / FETCH_PREKEYS, answered PREKEY_RESPONSE), send read receipts for some of
 * what they receive (READ_RECEIPT, relayed as READ_RECEIPT_RELAY to the original sender), ask
 * for presence while the run goes on (GET_STATUS), and, for client 0, create the run's chat
 * group again when an earlier GROUP_CREATE went unanswered.
 *
 * v1 requests carry no id and answers leave in request order, with ERROR frames that do not say
 * which request they answer; so a client keeps at most one prekey request open and takes the
 * next PREKEY_RESPONSE on that connection as its answer (a fetch's bundle names its user, which
 * must match). A request not answered within the server's request_timeout_ms (it answers every
 * request by then, ERROR request_timeout at worst) plus ANSWER_SLACK_MS, or whose connection
 * closed, stays unanswered in the history. Everything goes to the cluster history, where the key
 * directory's checkers read it (key_lost, prekey_reuse, pending). Randomness from its own
 * stream; time from the world.
 */
import { cborIdBytes, encodeCbor } from '../edge/protocol/Cbor.js';
import { encodeFetchPrekeysPacket, encodeGroupCreatePacket, encodeReadReceiptPacket, encodeUploadPrekeysPacket } from '../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../edge/protocol/V1Packets.js';
import { parsePrekeyResponse, prekeyUploadMap } from '../edge/protocol/V1Prekeys.js';
import type { ClusterHistory, ClusterRequest } from './ClusterHistory.js';
import { IDENTITY_PUBLIC, OTKS_PER_UPLOAD, SIGNED_PREKEY, SIGNED_PREKEY_SIGNATURE } from './ClusterWorkload.js';
import { bytesHex, decodePayload } from './Payload.js';
import type { ClientExtension, SharedGroup, SimClient } from './SimClient.js';
import { userIndex, userName } from './SimClient.js';
import type { SimLink } from './SimLink.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

/** Share of a client's send ticks spent on a prekey upload or fetch. */
const PREKEY_SHARE = 0.1;
/** Of those, the share that are uploads (the rest fetch). */
const UPLOAD_SHARE = 0.3;
/** Share of send ticks spent on a presence query. */
const STATUS_SHARE = 0.05;
/** Share of received messages a client sends a read receipt for. */
const RECEIPT_SHARE = 0.2;
/**
 * A prekey request waits for its PREKEY_RESPONSE the server's request_timeout_ms plus this (a
 * node pause's worth) before the client takes it as unanswered; client 0 sends GROUP_CREATE
 * again when the group is still unknown that long after its last try.
 */
const ANSWER_SLACK_MS = 6_000;

/** A read receipt a client received. */
export interface ReceiptSeen {
  at: number;
  /** Who received it (the original sender of the message). */
  client: number;
  msgIdHex: string;
  reader: number;
}

interface OpenPrekeyRequest {
  readonly req: ClusterRequest;
  readonly conn: number;
  readonly until: number;
  readonly kind: 'upload' | 'fetch';
  /** Fetch: the user whose bundle was asked for. */
  readonly target: number;
  /** Upload: the one-time keys, as hex. */
  readonly otks: string[];
}

export interface V1ClientExtrasOptions {
  world: SimWorld;
  random: SimRandom;
  history: ClusterHistory;
  users: number;
  group: SharedGroup;
  /** The nodes' request_timeout_ms: every request is answered within it (ERROR request_timeout at worst). */
  requestTimeoutMs: number;
  /** Whether the run is past its heal (requests made then must be answered). */
  liveness: () => boolean;
}

export class V1ClientExtras implements ClientExtension {
  /** Read receipts sent: `<reader>><original sender>/<msg id hex>`. */
  readonly receiptsSent = new Set<string>();
  readonly receiptsSeen: ReceiptSeen[] = [];
  private nextRequest = 1;
  private readonly open = new Map<number, OpenPrekeyRequest>();
  /** Uploads made per client (the rounds number the one-time keys). */
  private readonly uploads = new Map<number, number>();
  /** Clients with an upload confirmed. */
  private readonly uploaded = new Set<number>();
  private lastCreateAt = -Infinity;

  constructor(private readonly o: V1ClientExtrasOptions) {}

  tick(c: SimClient, link: SimLink): boolean {
    const now = this.o.world.now;
    if (c.index === 0 && this.o.group.gid === null && now - Math.max(this.lastCreateAt, c.loginAt) > this.o.requestTimeoutMs + ANSWER_SLACK_MS) {
      this.lastCreateAt = now;
      link.send(encodeGroupCreatePacket(new TextEncoder().encode('sim')));
      return true;
    }
    const waiting = this.open.get(c.index);
    if (waiting !== undefined && (waiting.conn !== c.conn || now >= waiting.until)) this.open.delete(c.index);
    // Every client uploads a bundle first, so fetches find one.
    if (!this.uploaded.has(c.index) && !this.open.has(c.index)) {
      this.upload(c, link);
      return true;
    }
    const r = this.o.random;
    const x = r.float();
    if (x < PREKEY_SHARE) {
      if (this.open.has(c.index)) return false;
      if (r.chance(UPLOAD_SHARE)) this.upload(c, link);
      else this.fetch(c, link);
      return true;
    }
    if (x < PREKEY_SHARE + STATUS_SHARE) {
      c.askStatus(this.other(c));
      return true;
    }
    return false;
  }

  delivered(c: SimClient, msgId: Uint8Array, inner: Uint8Array, link: SimLink): void {
    const f = decodePayload(inner);
    if (f === null || f.sender === c.index || c.state !== 'online' || !this.o.random.chance(RECEIPT_SHARE)) return;
    this.receiptsSent.add(`${c.index}>${f.sender}/${bytesHex(msgId)}`);
    link.send(encodeReadReceiptPacket(msgId, userName(f.sender)));
  }

  frame(c: SimClient, f: ServerFrame): void {
    if (f.kind === 'read_receipt_relay') {
      this.receiptsSeen.push({ at: this.o.world.now, client: c.index, msgIdHex: bytesHex(f.msgId), reader: userIndex(f.reader) });
      return;
    }
    if (f.kind !== 'prekey_response') return;
    const w = this.open.get(c.index);
    if (w === undefined || w.conn !== c.conn) return;
    this.open.delete(c.index);
    const answer = parsePrekeyResponse(f.map);
    const named = cborIdBytes(f.map.get('user') ?? null);
    if (w.kind === 'fetch' && (answer.status === 'bundle' || answer.status === 'not_found') && (named === null || userIndex(named) !== w.target)) {
      this.settle(w.req, `answer about another user (${named === null ? 'none' : userIndex(named)})`);
      return;
    }
    this.settle(w.req, answer.status === 'error' ? `error ${answer.reason}` : answer.status);
    if (w.kind === 'upload' && answer.status === 'ok') {
      this.uploaded.add(c.index);
      const list = this.o.history.uploaded.get(c.index) ?? [];
      list.push(...w.otks);
      this.o.history.uploaded.set(c.index, list);
    }
    if (w.kind === 'fetch' && answer.status === 'bundle' && answer.bundle.oneTimePrekey !== null) {
      this.o.history.prekeys.push({ at: this.o.world.now, fetcher: c.index, target: w.target, keyHex: bytesHex(answer.bundle.oneTimePrekey) });
    }
  }

  private other(c: SimClient): number {
    let t = this.o.random.int(this.o.users - 1);
    if (t >= c.index) t++;
    return t;
  }

  private request(c: SimClient, op: ClusterRequest['op'], detail: string): ClusterRequest {
    const r: ClusterRequest = { id: this.nextRequest++, at: this.o.world.now, user: c.index, session: c.conn, op, detail, liveness: this.o.liveness(), answeredAt: null, answer: null };
    this.o.history.requests.push(r);
    return r;
  }

  private settle(r: ClusterRequest, answer: string): void {
    r.answeredAt = this.o.world.now;
    r.answer = answer;
  }

  private upload(c: SimClient, link: SimLink): void {
    const round = (this.uploads.get(c.index) ?? 0) + 1;
    this.uploads.set(c.index, round);
    // Unique per (user, round, i): bytes 0..3 say whose key it is.
    const otks = Array.from({ length: OTKS_PER_UPLOAD }, (_, i) => Uint8Array.from({ length: 32 }, (_, j) => (j === 0 ? c.index : j === 1 ? round >> 8 : j === 2 ? round & 0xff : j === 3 ? i : 0)));
    const req = this.request(c, 'key_upload', `round ${round}`);
    const hex = otks.map(bytesHex);
    (req as { otks?: string[] }).otks = hex;
    const map = prekeyUploadMap({ identityKey: IDENTITY_PUBLIC, signedPrekey: SIGNED_PREKEY, signedPrekeySignature: SIGNED_PREKEY_SIGNATURE, oneTimePrekeys: otks, signedPrekeyTimestamp: 1 });
    this.open.set(c.index, { req, conn: c.conn, until: this.o.world.now + this.o.requestTimeoutMs + ANSWER_SLACK_MS, kind: 'upload', target: c.index, otks: hex });
    link.send(encodeUploadPrekeysPacket(encodeCbor(map)));
  }

  private fetch(c: SimClient, link: SimLink): void {
    const t = this.other(c);
    const req = this.request(c, 'key_fetch', `u${t}`);
    this.open.set(c.index, { req, conn: c.conn, until: this.o.world.now + this.o.requestTimeoutMs + ANSWER_SLACK_MS, kind: 'fetch', target: t, otks: [] });
    link.send(encodeFetchPrekeysPacket(userName(t)));
  }
}
