/**
 * What each v1 packet of a logged-in client does: the `online` state's handler. Checks come
 * before work: a sending packet is charged to its sender's budget before its CBOR is read
 * (a spent budget makes the connection wait, never refuses: `{waitMs}`), then the packet
 * becomes a protocol-neutral request to the core (a route, a relay, a groups or key-directory
 * request). Requests that get an answer take their place in the connection's ReplyQueue, so
 * answers leave in request order; the answer frames are made here (`groupsAnswer`,
 * `prekeysAnswer`). In a cluster, while the node is in safe mode (no majority visible),
 * every write is refused at once with `cluster_unavailable` (ACKs wait in the connection and
 * go out on heal); reads (GET_STATUS, GROUP_ROSTER) and typing go on. FETCH_PREKEYS consumes a
 * one-time prekey, so it is a write.
 */
import type { Delivery, ReadReceipt, Typing } from '../../core/Delivery.js';
import type { GroupsReply, GroupsRequest } from '../../core/Groups.js';
import type { KeyDirectoryReply, KeyDirectoryRequest } from '../../core/KeyDirectory.js';
import { castTo, sendTo } from '../../core/Router.js';
import type { RouterRelay } from '../../core/RouterShard.js';
import { userBytes, userKey } from '../../core/UserId.js';
import { checkCborContent, readPrekeyUpload } from '../protocol/V1Content.js';
import { encodeErrorFrame, encodeGroupJoinFrame, encodeGroupLeaveOkFrame, encodeGroupRosterFrame, encodePrekeyResponseFrame } from '../protocol/V1Encoder.js';
import type { ClientPacket } from '../protocol/V1Packets.js';
import { prekeyBundleMap, prekeyNotFoundMap, prekeyStatusMap } from '../protocol/V1Prekeys.js';
import type { V1Conn } from './V1Connection.js';

/** What to do after a packet: read the next, wait (a budget is spent), the login succeeded, or close. */
export type Step = 'next' | 'online' | 'close' | { waitMs: number };

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

function route(c: V1Conn, to: Uint8Array, rec: Delivery, seq?: bigint): void {
  c.route(userKey(to), rec, seq);
}

function relay(c: V1Conn, to: Uint8Array, rec: Typing | ReadReceipt): void {
  const key = userKey(to);
  sendTo(c.ctx, c.deps.shardFor(key), { t: 'relay', to: key, rec } satisfies RouterRelay);
}

/** Packets that change durable state (refused at once in safe mode). */
function isWrite(op: ClientPacket['op']): boolean {
  switch (op) {
    case 'send':
    case 'batch_send':
    case 'send_seq':
    case 'cbor_msg':
    case 'e2ee_msg':
    case 'group_create':
    case 'group_leave':
    case 'group_msg':
    case 'sender_key_dist':
    case 'upload_prekeys':
    case 'fetch_prekeys':
      return true;
    default:
      return false;
  }
}

/** Safe mode: the write is answered `cluster_unavailable` in its turn, nothing is routed. */
function refuseInSafeMode(c: V1Conn, op: ClientPacket['op']): void {
  c.batchDone = 0;
  if (op === 'upload_prekeys' || op === 'fetch_prekeys') c.replies.now(encodePrekeyResponseFrame(prekeyStatusMap('error', 'cluster_unavailable')));
  else c.refuseRequest('cluster_unavailable');
}

/** Charge `n` messages to the user's budget: null when allowed, else how long to wait. */
function charge(c: V1Conn, me: Uint8Array, n: number): Step | null {
  const r = c.deps.limits.message(me, n);
  return r.ok ? null : { waitMs: r.retryAfterMs };
}

export function dispatchV1(c: V1Conn, p: ClientPacket): Step {
  const me = c.user as Uint8Array;
  const { ctx, deps } = c;
  if (deps.cluster !== null && isWrite(p.op) && deps.cluster.safeMode()) {
    refuseInSafeMode(c, p.op);
    return 'next';
  }
  switch (p.op) {
    case 'login':
      c.refuseRequest('already_logged_in');
      return 'next';
    case 'send':
      return charge(c, me, 1) ?? (route(c, p.target, { k: 'direct', from: me, body: p.msg, format: 'opaque' }), 'next');
    case 'batch_send': {
      // One token per item: the batch goes on as far as the budget allows, the rest after a wait.
      const from = c.batchDone;
      const r = deps.limits.messagesUpTo(me, p.items.length - from);
      for (let i = from; i < from + r.taken; i++) route(c, p.target, { k: 'direct', from: me, body: p.items[i]!, format: 'opaque' });
      if (from + r.taken === p.items.length) {
        c.batchDone = 0;
        return 'next';
      }
      c.batchDone = from + r.taken;
      return { waitMs: r.retryAfterMs };
    }
    case 'send_seq':
      // Dedup and order per (sender, target) are kept by the target's shard, durably.
      return charge(c, me, 1) ?? (route(c, p.target, { k: 'direct', from: me, body: p.msg, format: 'opaque' }, p.seq), 'next');
    case 'cbor_msg': {
      const wait = charge(c, me, 1);
      if (wait !== null) return wait;
      const check = checkCborContent(p.cbor);
      if (check !== 'ok') c.refuseRequest(check);
      else route(c, p.target, { k: 'direct', from: me, body: p.cbor, format: 'cbor' });
      return 'next';
    }
    case 'e2ee_msg': {
      const wait = charge(c, me, 1);
      if (wait !== null) return wait;
      const check = checkCborContent(p.header);
      if (check !== 'ok') c.refuseRequest(check);
      else route(c, p.recipient, { k: 'e2ee', from: me, header: p.header, ciphertext: p.ciphertext });
      return 'next';
    }
    case 'ack':
      c.ack(p.msgId);
      return 'next';
    case 'get_status':
      return c.status(p.target, c.meKey);
    case 'typing_start':
    case 'typing_stop':
      if (deps.rates.typing(me)) relay(c, p.target, { k: 'typing', from: me, on: p.op === 'typing_start' });
      return 'next';
    case 'read_receipt': {
      const r = deps.rates.receipt(me);
      if (!r.ok) return { waitMs: r.retryAfterMs };
      relay(c, p.originalSender, { k: 'receipt', from: me, msgId: p.msgId, atMs: ctx.env.clock.wallMs() });
      return 'next';
    }
    case 'upload_prekeys': {
      const u = readPrekeyUpload(p.cbor);
      if (!u.ok) {
        c.replies.now(encodePrekeyResponseFrame(prekeyStatusMap('error', u.code)));
        return 'next';
      }
      castTo(ctx, deps.keysFor(c.meKey), { t: 'upload', user: c.meKey, upload: u.upload, replyTo: ctx.self, tag: c.openRequest() } satisfies KeyDirectoryRequest);
      return 'next';
    }
    case 'fetch_prekeys': {
      const r = deps.rates.prekeyFetch(me, p.user);
      if (!r.ok) {
        if ('wait' in r) return { waitMs: r.wait };
        c.replies.now(encodePrekeyResponseFrame(prekeyStatusMap('error', 'rate_limited')));
        return 'next';
      }
      const target = userKey(p.user);
      castTo(ctx, deps.keysFor(target), { t: 'fetch', target, replyTo: ctx.self, tag: c.openRequest() } satisfies KeyDirectoryRequest);
      return 'next';
    }
    case 'group_create':
      castTo(ctx, deps.groupsForNewGroup(c.meKey), { t: 'create', user: c.meKey, name: p.name, replyTo: ctx.self, tag: c.openRequest() } satisfies GroupsRequest);
      return 'next';
    case 'group_leave':
    case 'group_roster':
    case 'group_msg':
    case 'sender_key_dist': {
      if (p.op === 'group_msg' || p.op === 'sender_key_dist') {
        const wait = charge(c, me, 1);
        if (wait !== null) return wait;
      }
      const gid = groupId(p.gid);
      if (gid === null) {
        c.replies.now(encodeErrorFrame('not_member'));
        return 'next';
      }
      if (p.op === 'group_msg') {
        const check = checkCborContent(p.header);
        if (check !== 'ok') {
          c.replies.now(encodeErrorFrame(check));
          return 'next';
        }
      }
      const base = { user: c.meKey, gid, replyTo: ctx.self, tag: c.openRequest() };
      const req: GroupsRequest =
        p.op === 'group_leave'
          ? { t: 'leave', ...base }
          : p.op === 'group_roster'
            ? { t: 'roster', ...base }
            : p.op === 'group_msg'
              ? { t: 'msg', ...base, header: p.header, ciphertext: p.ciphertext }
              : { t: 'sender_key', ...base, keydata: p.keydata };
      castTo(ctx, deps.groupsFor(gid), req);
      return 'next';
    }
  }
}

/** The frame answering a groups request (null: nothing to write, as for a group message taken). */
export function groupsAnswer(m: GroupsReply, me: Uint8Array | null): Uint8Array | null {
  switch (m.t) {
    case 'group_created':
      return encodeGroupJoinFrame(encoder.encode(m.gid), me ?? new Uint8Array(0));
    case 'group_left':
      return encodeGroupLeaveOkFrame();
    case 'group_roster':
      return encodeGroupRosterFrame(encoder.encode(m.gid), m.members);
    case 'group_error':
      return encodeErrorFrame(m.code);
    case 'group_done':
    case 'group_fanout':
      return null;
  }
}

/** The PREKEY_RESPONSE answering a key-directory request; a bundle or miss names the user it is about. */
export function prekeysAnswer(m: KeyDirectoryReply): Uint8Array {
  switch (m.status) {
    case 'bundle':
      return encodePrekeyResponseFrame(prekeyBundleMap(m.bundle, userBytes(m.user)));
    case 'not_found':
      return encodePrekeyResponseFrame(prekeyNotFoundMap(userBytes(m.user)));
    case 'error':
      return encodePrekeyResponseFrame(prekeyStatusMap('error', m.reason));
    case 'ok':
      return encodePrekeyResponseFrame(prekeyStatusMap('ok'));
  }
}
