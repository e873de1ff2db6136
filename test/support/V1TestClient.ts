/**
 * A v1 test client over real TCP or WebSocket: encodes client packets with the project's
 * encoder, decodes server frames with the client-side decoder, and lets a test await frames
 * with a deadline. Used by the service tests; the load generator has its own lean client.
 */
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { V1ClientDecoder } from '../../edge/protocol/V1ClientDecoder.js';
import { encodeAckPacket, encodeLoginPacket, encodeSendPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

export class V1TestClient {
  readonly frames: ServerFrame[] = [];
  private consumed = 0;
  private readonly decoder = new V1ClientDecoder();
  private waiters: Array<() => void> = [];
  closed = false;
  decodeError: string | null = null;
  /** The client side's local port (which connection this is, for the kernel and `ss`). */
  localPort = 0;
  /** Stop and restart reading from the socket (a client that stalls). */
  private pauseRaw: ((paused: boolean) => void) | null = null;
  /** Stop sending and let the server close (TCP: shut down writing; WebSocket: close). */
  private endRaw: () => void = () => this.closeRaw();
  private constructor(private readonly sendRaw: (b: Uint8Array) => void, private readonly closeRaw: () => void) {}

  static async tcp(port: number, host = '127.0.0.1', localAddress?: string): Promise<V1TestClient> {
    const sock: Socket = connect({ port, host, ...(localAddress !== undefined ? { localAddress } : {}) });
    sock.setNoDelay(true);
    const c = new V1TestClient((b) => sock.write(b), () => sock.destroy());
    c.pauseRaw = (paused) => (paused ? sock.pause() : sock.resume());
    c.endRaw = () => sock.end();
    sock.on('data', (d: Buffer) => c.onBytes(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    sock.on('close', () => c.onClose());
    sock.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    c.localPort = sock.localPort ?? 0;
    return c;
  }

  static async ws(port: number, host = '127.0.0.1'): Promise<V1TestClient> {
    const ws = new WebSocket(`ws://${host}:${port}/ws`);
    const c = new V1TestClient((b) => ws.send(b), () => ws.terminate());
    // ws reads from its socket as data arrives: pausing the socket stalls the client.
    c.pauseRaw = (paused) => {
      const sock = (ws as unknown as { _socket: Socket | null })._socket;
      if (sock === null) return;
      if (paused) sock.pause();
      else sock.resume();
    };
    ws.on('message', (d: Buffer) => c.onBytes(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    ws.on('close', () => c.onClose());
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    c.localPort = (ws as unknown as { _socket: Socket | null })._socket?.localPort ?? 0;
    return c;
  }

  private onBytes(bytes: Uint8Array): void {
    this.decoder.push(bytes);
    for (;;) {
      const r = this.decoder.next();
      if (r.kind === 'need_more') break;
      if (r.kind === 'error') {
        this.decodeError = r.code;
        break;
      }
      this.frames.push(r.frame);
    }
    this.wake();
  }

  private onClose(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  raw(bytes: Uint8Array): void {
    this.sendRaw(bytes);
  }

  close(): void {
    this.closeRaw();
  }

  /** Stop sending (after what was written) and keep reading until the server closes. */
  end(): void {
    this.endRaw();
  }

  /** LOGIN and wait for LOGIN_OK (or the refusal frame). */
  async login(user: string | Uint8Array, token?: string): Promise<ServerFrame> {
    this.raw(encodeLoginPacket(typeof user === 'string' ? utf8(user) : user, token === undefined ? null : utf8(token)));
    return this.next((f) => f.kind === 'login_ok' || f.kind === 'auth_failed_text' || f.kind === 'rate_limited_text');
  }

  send(to: string | Uint8Array, msg: string | Uint8Array): void {
    this.raw(encodeSendPacket(typeof to === 'string' ? utf8(to) : to, typeof msg === 'string' ? utf8(msg) : msg));
  }

  ack(msgId: Uint8Array): void {
    this.raw(encodeAckPacket(msgId));
  }

  /** Stop reading (the server's writes pile up in the socket buffers) or read again. */
  setReading(on: boolean): void {
    if (this.pauseRaw === null) throw new Error('setReading: this client cannot pause');
    this.pauseRaw(!on);
  }

  /** Frames received and not yet returned by next(), in arrival order. */
  unconsumed(): ServerFrame[] {
    return this.frames.slice(this.consumed);
  }

  /** The next unconsumed frame matching `match`, in arrival order. */
  next<T extends ServerFrame = ServerFrame>(match: (f: ServerFrame) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        for (let i = this.consumed; i < this.frames.length; i++) {
          const f = this.frames[i]!;
          if (match(f)) {
            // Frames before the match stay available to later calls.
            this.frames.splice(i, 1);
            this.frames.splice(this.consumed, 0, f);
            this.consumed++;
            resolve(f as T);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      // A wait that timed out must not take a frame that arrives later (it would be lost to the caller).
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        reject(new Error(`no matching frame within ${timeoutMs} ms; unconsumed: ${JSON.stringify(this.frames.slice(this.consumed).map((f) => f.kind))}; closed=${this.closed}`));
      }, timeoutMs);
      const w = () => {
        if (expired) return;
        if (check()) clearTimeout(timer);
        else if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`connection closed while waiting; unconsumed: ${JSON.stringify(this.frames.slice(this.consumed).map((f) => f.kind))}`));
        } else this.waiters.push(w);
      };
      this.waiters.push(w);
    });
  }

  /** Collect `n` RELIABLE_MSG payloads (as text), acknowledging each. */
  async receiveAndAck(n: number, timeoutMs = 5000): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const f = await this.next<Extract<ServerFrame, { kind: 'reliable_msg' }>>((x) => x.kind === 'reliable_msg', timeoutMs);
      out.push(text(f.msg));
      this.ack(f.msgId);
    }
    return out;
  }

  /** Resolves when the server closes the connection. */
  async closedByServer(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('server did not close the connection');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}
