/**
 * The raw TCP (and TLS) listener for v1 clients: one ClientLink per socket, Nagle off, TCP
 * keepalive on (a vanished client is found by the kernel's probes), reads paused and resumed
 * on request, writes reporting backpressure. With client authentication, a certificate
 * that does not chain to the client CA ends the connection right after the handshake, and a
 * verified one becomes the link's `peerCertificate`. Sockets are half-open capable: a client
 * that shuts down its sending side (FIN) is reported closed at once (nothing more comes from
 * it), but the server's side stays open until the connection ends it, so the server can
 * finish what it read and answer before it closes (a drain relies on this: the server's FIN
 * then means "everything you sent was taken"). Production-only I/O: the simulator
 * replaces listeners with virtual links, so this folder may use node:net/tls.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { Logger } from '../../runtime/Env.js';
import type { AcceptLink, ClientLink, ClientLinkHandlers, ClientListener, LinkTransport, PeerCertificate } from '../ClientLink.js';
import { readClientCertificate } from './ClientCertificate.js';
import { LISTENER_DEFAULTS } from './ListenerSettings.js';

export interface TcpListenerOptions {
  host: string;
  port: number;
  /** When set, the port speaks TLS only (plaintext is refused by the handshake). */
  tls?: TlsOptions;
  /**
   * With `tls`: ask clients for a certificate signed by `ca` (PEM). `required`: a client
   * without one fails the handshake; `optional`: it may connect without one. Either way a
   * certificate from another CA ends the connection.
   */
  clientAuth?: { mode: 'optional' | 'required'; ca: string | Buffer };
  /** Send-buffer bytes above which `write` returns false. */
  highWaterMark?: number;
  /** Seconds of silence before the kernel sends keepalive probes. Default: tcp_keepalive_idle_s. */
  keepAliveIdleSec?: number;
  /** Where refused client certificates are logged. */
  log?: Logger;
}

export const DEFAULT_TCP_HIGH_WATER_MARK = 256 * 1024;
/**
 * Connections the kernel may hold accepted but not yet taken by the node (listen backlog; the
 * kernel caps it at net.core.somaxconn). Node's default, 511, overflows when thousands of
 * clients of a dead node reconnect at once: the dropped ones retry their SYN only after 1 s,
 * then 3 s (measured: 27,684 overflows while 10,000 clients came back to two nodes).
 */
export const TCP_LISTEN_BACKLOG = 4_096;

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
    readonly peerCertificate: PeerCertificate | null,
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
  const clientAuth = opts.tls !== undefined ? opts.clientAuth : undefined;
  const log = opts.log ?? null;
  function onClose(this: LinkedSocket): void {
    sockets.delete(this);
    onEnd.call(this);
  }
  /** The client stopped sending (FIN), or the socket closed: the link's `close`, once. */
  function onEnd(this: LinkedSocket): void {
    const link = this[LINK];
    if (!link.closed) {
      link.closed = true;
      link.handlers.close();
    }
  }
  const onSocket = (socket: Socket) => {
    let peer: PeerCertificate | null = null;
    if (clientAuth !== undefined) {
      const cert = readClientCertificate(socket as TLSSocket);
      if (cert.kind === 'unverified') {
        // Only reachable when certificates are optional: `required` fails the handshake.
        log?.info({ remote: socket.remoteAddress, transport, reason: cert.reason }, 'refused a TLS client whose certificate does not chain to tls_client_ca_file');
        socket.on('error', () => {});
        socket.destroy();
        return;
      }
      if (cert.kind === 'verified') peer = cert.certificate;
    }
    sockets.add(socket);
    socket.setNoDelay(true);
    // Half-open from here on only: a client that goes away during a TLS handshake is closed at
    // once (nothing would ever end a half-open socket that no link owns).
    socket.allowHalfOpen = true;
    const link = new TcpLink(socket, transport, highWater, peer);
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
    socket.on('end', onEnd);
    socket.on('close', onClose);
  };
  // Keepalive is set on the accepted TCP socket by the server (under TLS too, where the
  // TLSSocket itself has no handle to set it on).
  const keepAlive = { keepAlive: true, keepAliveInitialDelay: (opts.keepAliveIdleSec ?? LISTENER_DEFAULTS.tcp_keepalive_idle_s) * 1000 };
  let server: Server;
  if (opts.tls !== undefined) {
    const tlsOptions: TlsOptions =
      clientAuth === undefined
        ? opts.tls
        : { ...opts.tls, ca: clientAuth.ca, requestCert: true, rejectUnauthorized: clientAuth.mode === 'required' };
    const tlsServer = createTlsServer({ ...tlsOptions, ...keepAlive }, onSocket);
    tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      if (clientAuth !== undefined) log?.info({ remote: socket.remoteAddress, transport, reason: err.code ?? err.message }, 'TLS handshake failed');
    });
    server = tlsServer;
  } else server = createServer(keepAlive, onSocket);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host, backlog: TCP_LISTEN_BACKLOG }, () => {
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
