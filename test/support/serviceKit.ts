/**
 * Helpers shared by the service tests that drive a node over real sockets: byte building,
 * a same-connection round trip (GET_STATUS), "everything stored for this user has been
 * delivered" via a marker message, a healthy-pair check, and deadline-bounded waiting.
 */
import assert from 'node:assert/strict';
import { encodeGetStatusPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { V1TestClient, text, utf8 } from './V1TestClient.js';

export type Reliable = Extract<ServerFrame, { kind: 'reliable_msg' }>;
export type StatusFrame = Extract<ServerFrame, { kind: 'status' }>;
export type ErrorFrame = Extract<ServerFrame, { kind: 'error' }>;
export const isReliable = (f: ServerFrame): boolean => f.kind === 'reliable_msg';

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hexId(id: Uint8Array): string {
  return Array.from(id, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Byte-wise order of two message ids. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

let probeCounter = 0;

/**
 * A GET_STATUS round trip on `c`: the connection answers it after handling every packet it
 * received before, so on return those packets have been processed (refusals already written,
 * routes handed to the router, ACKs applied).
 */
export async function roundTrip(c: V1TestClient, timeoutMs = 5000): Promise<StatusFrame> {
  const target = utf8(`~rt${++probeCounter}`);
  c.raw(encodeGetStatusPacket(target));
  return c.next<StatusFrame>((f) => f.kind === 'status' && sameBytes(f.user, target), timeoutMs);
}

/**
 * Everything the server holds for the user logged in on `c` has been delivered once a marker
 * message, sent after the login, arrives: the session loads the stored inbox (oldest first)
 * before it forwards any live delivery, and a marker stored before the load sorts last.
 * Returns the RELIABLE_MSG frames that came before the marker (not acknowledged) and
 * acknowledges the marker.
 */
export async function drainToMarker(c: V1TestClient, marker: string, timeoutMs = 5000): Promise<Reliable[]> {
  const before: Reliable[] = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const f = await c.next<Reliable>(isReliable, Math.max(1, deadline - Date.now()));
    if (text(f.msg) === marker) {
      c.ack(f.msgId);
      return before;
    }
    before.push(f);
  }
  throw new Error('drainToMarker: too many frames');
}

/** Polls `cond` every `stepMs` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Tracks clients so a test can close all of them in `finally`. */
export class ClientSet {
  private readonly all: V1TestClient[] = [];
  constructor(
    private readonly tcpPort: () => number,
    private readonly httpPort: () => number,
  ) {}
  async tcp(): Promise<V1TestClient> {
    const c = await V1TestClient.tcp(this.tcpPort());
    this.all.push(c);
    return c;
  }
  async ws(): Promise<V1TestClient> {
    const c = await V1TestClient.ws(this.httpPort());
    this.all.push(c);
    return c;
  }
  /** A TCP client logged in as `user` (asserts LOGIN_OK). */
  async user(user: string | Uint8Array, transport: 'tcp' | 'ws' = 'tcp'): Promise<V1TestClient> {
    const c = transport === 'tcp' ? await this.tcp() : await this.ws();
    const f = await c.login(user);
    assert.equal(f.kind, 'login_ok', `login of ${typeof user === 'string' ? user : hexId(user)}`);
    return c;
  }
  closeAll(): void {
    for (const c of this.all.splice(0)) c.close();
  }
}

let pairCounter = 0;

/** A fresh pair of users still exchanges a message both ways (exact bytes), with ACKs. */
export async function assertHealthyPair(clients: ClientSet): Promise<void> {
  const n = ++pairCounter;
  const a = await clients.user(`healthy-a${n}`);
  const b = await clients.user(`healthy-b${n}`);
  a.send(`healthy-b${n}`, `ping ${n}`);
  const f = await b.next<Reliable>(isReliable);
  assert.equal(text(f.msg), `ping ${n}`);
  b.ack(f.msgId);
  b.send(`healthy-a${n}`, `pong ${n}`);
  const g = await a.next<Reliable>(isReliable);
  assert.equal(text(g.msg), `pong ${n}`);
  a.ack(g.msgId);
  a.close();
  b.close();
}
