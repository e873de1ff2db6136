/**
 * The raw TCP (and TLS) listener for v1 clients: one ClientLink per socket, Nagle off, reads
 * paused and resumed on request, writes reporting backpressure. Production-only I/O: the
 * simulator replaces listeners with virtual links, so this folder may use node:net/tls.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { AcceptLink, ClientLink, ClientListener, LinkTransport } from '../ClientLink.js';

export interface TcpListenerOptions {
  host: string;
  port: number;
  /** When set, the port speaks TLS only (plaintext is refused by the handshake). */
  tls?: TlsOptions;
  /** Send-buffer bytes above which `write` returns false. */
  highWaterMark?: number;
}

export const DEFAULT_TCP_HIGH_WATER_MARK = 256 * 1024;

class TcpLink implements ClientLink {
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  constructor(
    private readonly socket: Socket,
    readonly transport: LinkTransport,
    private readonly highWater: number,
  ) {}
  get remoteAddress(): string {
    return this.socket.remoteAddress ?? 'unknown';
  }
  write(bytes: Uint8Array): boolean {
    if (this.socket.destroyed) return false;
    // Frames written to one link in one turn leave together in one writev.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(bytes);
    return this.socket.writableLength < this.highWater;
  }
  bufferedBytes(): number {
    return this.socket.writableLength;
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
}

export function listenTcp(opts: TcpListenerOptions, accept: AcceptLink): Promise<ClientListener> {
  const sockets = new Set<Socket>();
  const highWater = opts.highWaterMark ?? DEFAULT_TCP_HIGH_WATER_MARK;
  const transport: LinkTransport = opts.tls !== undefined ? 'tls' : 'tcp';
  const onSocket = (socket: Socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const link = new TcpLink(socket, transport, highWater);
    let closed = false;
    let handlers: ReturnType<AcceptLink>;
    try {
      handlers = accept(link);
    } catch {
      socket.destroy();
      sockets.delete(socket);
      return;
    }
    socket.on('data', (chunk: Buffer) => handlers.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    socket.on('drain', () => handlers.drain());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      sockets.delete(socket);
      if (!closed) {
        closed = true;
        handlers.close();
      }
    });
  };
  const server: Server = opts.tls !== undefined ? createTlsServer(opts.tls, onSocket) : createServer(onSocket);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      server.on('error', () => {});
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
      resolve({
        port,
        close: (closeLinks = false) =>
          new Promise<void>((done) => {
            server.close(() => done());
            if (closeLinks) for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}
