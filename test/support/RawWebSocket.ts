/**
 * A WebSocket client written on a bare TCP socket, for the tests that need a client no
 * library would be: one that never reads, never answers a ping, or floods frames as fast as
 * the kernel takes them. It performs the upgrade, then sends masked frames built here; after
 * the upgrade it reads nothing unless asked (the server's frames stay in the kernel).
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export const WS_OP_BINARY = 0x2;
export const WS_OP_PING = 0x9;

/** One masked client frame (FIN set) carrying `payload`. */
export function maskedFrame(payload: Uint8Array, opcode = WS_OP_BINARY): Buffer {
  const n = payload.length;
  const headerLen = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.alloc(headerLen + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, headerLen);
  for (let i = 0; i < n; i++) out[headerLen + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

export interface RawWebSocket {
  readonly socket: Socket;
  /** Bytes the server sent after the upgrade response, while reading was on. */
  readonly received: Buffer[];
  /** Set when the socket closed (either side); `error` holds the socket error, if any. */
  closed: boolean;
  error: string | null;
}

/**
 * Connect and upgrade on `path`; resolves with the client once the 101 arrived, or rejects with
 * the server's status line. Reading stops right after the upgrade unless `keepReading`.
 */
export function rawWebSocket(port: number, opts: { path?: string; origin?: string; keepReading?: boolean; timeoutMs?: number } = {}): Promise<RawWebSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const client: RawWebSocket = { socket, received: [], closed: false, error: null };
    let head = Buffer.alloc(0);
    let upgraded = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no upgrade response in time'));
    }, opts.timeoutMs ?? 5000);
    socket.on('error', (e) => (client.error = e.message));
    socket.on('close', () => {
      client.closed = true;
      if (!upgraded) {
        clearTimeout(timer);
        reject(new Error(`closed before the upgrade: ${head.toString('latin1').split('\r\n')[0] ?? ''}`));
      }
    });
    socket.on('data', (d: Buffer) => {
      if (upgraded) {
        client.received.push(d);
        return;
      }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      clearTimeout(timer);
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        socket.destroy();
        reject(new Error(`upgrade refused: ${status}`));
        return;
      }
      upgraded = true;
      if (head.length > end + 4) client.received.push(head.subarray(end + 4));
      if (opts.keepReading !== true) socket.pause();
      resolve(client);
    });
    socket.once('connect', () => {
      socket.write(
        `GET ${opts.path ?? '/ws'} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          (opts.origin !== undefined ? `Origin: ${opts.origin}\r\n` : '') +
          '\r\n',
      );
    });
  });
}
