/**
 * The raw TCP (and TLS) listener for v1 clients: one ClientLink per socket, Nagle off, reads
 * paused and resumed on request, writes reporting backpressure. Production-only I/O: the
 * simulator replaces listeners with virtual links, so this folder may use node:net/tls.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { AcceptLink, ClientLink, ClientLinkHandlers, ClientListener, LinkTransport } from '../ClientLink.js';

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
  /** Set right after accept (a socket event needs a turn, so none comes before). */
  handlers: ClientLinkHandlers = NO_HANDLERS;
  /** `handlers.close` was called. */
  closed = false;
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
      process.nextTick(uncork, this);
    }
    this.socket.write(bytes);
    return this.socket.writableLength < this.highWater;
  }
  uncork(): void {
    this.corked = false;
    this.socket.uncork();
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

const NO_HANDLERS: ClientLinkHandlers = { data: () => {}, drain: () => {}, close: () => {} };

// Socket event listeners shared by every socket (`this` is the socket): no closures per link.
const LINK = Symbol('iris.tcpLink');
type LinkedSocket = Socket & { [LINK]: TcpLink };

function uncork(link: TcpLink): void {
  link.uncork();
}
function onData(this: LinkedSocket, chunk: Buffer): void {
  this[LINK].handlers.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
}
function onDrain(this: LinkedSocket): void {
  this[LINK].handlers.drain();
}
function onError(this: LinkedSocket): void {
  this.destroy();
}

export function listenTcp(opts: TcpListenerOptions, accept: AcceptLink): Promise<ClientListener> {
  const sockets = new Set<Socket>();
  const highWater = opts.highWaterMark ?? DEFAULT_TCP_HIGH_WATER_MARK;
  const transport: LinkTransport = opts.tls !== undefined ? 'tls' : 'tcp';
  function onClose(this: LinkedSocket): void {
    sockets.delete(this);
    const link = this[LINK];
    if (!link.closed) {
      link.closed = true;
      link.handlers.close();
    }
  }
  const onSocket = (socket: Socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const link = new TcpLink(socket, transport, highWater);
    try {
      link.handlers = accept(link);
    } catch {
      socket.destroy();
      sockets.delete(socket);
      return;
    }
    (socket as LinkedSocket)[LINK] = link;
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose);
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
