/**
 * The HTTP port: WebSocket v1 clients on `/ws` (binary frames, one or more whole packets per
 * frame) and plain HTTP routes (health, admin) served by uWebSockets.js. Loads the native
 * uWS binary directly and refuses to start when it is missing: the package would otherwise
 * fall back silently to a slow JavaScript implementation.
 */
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import type { AcceptLink, ClientLink, ClientLinkHandlers, ClientListener, LinkTransport } from '../ClientLink.js';
import { slabCopy } from '../protocol/internal/ByteSlab.js';

type Uws = typeof import('uWebSockets.js');
type UwsSocket = import('uWebSockets.js').WebSocket<LinkState>;

interface LinkState {
  link?: UwsLink;
  handlers?: ClientLinkHandlers;
}

export interface HttpRequest {
  path: string;
  /** The raw query string, without '?'. */
  query: string;
  /** Lower-case, as uWS reports it ('get', 'post', …). */
  method: string;
  /** Request headers by lower-case name (copied before the handler runs: uWS forgets them). */
  headers: Readonly<Record<string, string>>;
  /** The whole request body (empty without one), at most `maxRequestBodyBytes`. */
  body: Uint8Array;
}

export interface HttpReply {
  status: number;
  contentType?: string;
  /** Extra response headers (e.g. `allow`, `www-authenticate`). */
  headers?: Readonly<Record<string, string>>;
  body: string | Uint8Array;
}

/** Routes are keyed by uWS pattern: an exact path, or a prefix ending in `/*`. */
export type HttpRoute = (req: HttpRequest) => HttpReply | Promise<HttpReply>;

export interface UwsServerOptions {
  host: string;
  port: number;
  /** TLS key and certificate files; when set the port serves HTTPS/WSS only. */
  tls?: { keyFile: string; certFile: string; passphrase?: string };
  /** Largest WebSocket message accepted (bigger closes the link). */
  maxPayloadBytes?: number;
  /** Send-buffer bytes above which `write` returns false. */
  highWaterMark?: number;
  /** Seconds without traffic before uWS closes an idle WebSocket (0 = never). */
  idleTimeoutSec?: number;
  routes?: Record<string, HttpRoute>;
  /** Largest HTTP request body a route is handed; a bigger one is answered 413 `body_too_large`. */
  maxRequestBodyBytes?: number;
}

export const DEFAULT_WS_MAX_PAYLOAD = 2 * 1024 * 1024;
export const DEFAULT_HTTP_MAX_REQUEST_BODY = 64 * 1024;
export const DEFAULT_WS_HIGH_WATER_MARK = 256 * 1024;

/** Load the native uWS addon or explain why not; never the JS fallback. */
export function loadNativeUws(): { ok: true; uws: Uws } | { ok: false; reason: string } {
  const require = createRequire(import.meta.url);
  const binary = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return { ok: true, uws: require(binary) as Uws };
  } catch (err) {
    return {
      ok: false,
      reason:
        `the native uWebSockets.js binary (${binary}) did not load: ${(err as Error).message.split('\n')[0]}. ` +
        'Refusing to run on the slow JavaScript fallback. The build that works with Node 20 and glibc 2.36 is ' +
        '"uWebSockets.js": "npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0".',
    };
  }
}

class UwsLink implements ClientLink {
  closed = false;
  /** Set right after accept. */
  handlers: ClientLinkHandlers | undefined = undefined;
  /** Frames written in this turn: sent together, corked, so they leave in one write. */
  private pending: Uint8Array[] | null = null;
  private pendingBytes = 0;
  /** `write` answered false: a `drain` is owed once the buffer is below the high-water mark. */
  private owesDrain = false;
  constructor(
    private readonly ws: UwsSocket,
    readonly transport: LinkTransport,
    readonly remoteAddress: string,
    private readonly highWater: number,
  ) {}
  write(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.pending === null) {
      this.pending = [bytes];
      process.nextTick(flushLink, this);
    } else this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.ws.getBufferedAmount() + this.pendingBytes < this.highWater) return true;
    this.owesDrain = true;
    return false;
  }
  /** Send this turn's frames, one WebSocket message each, in one corked batch. */
  flush(): void {
    const frames = this.pending;
    if (frames === null) return;
    this.pending = null;
    this.pendingBytes = 0;
    if (this.closed) return;
    const ws = this.ws;
    ws.cork(() => {
      for (const f of frames) ws.send(f, true);
    });
    // uWS calls `drain` only after it had to buffer; if the kernel took everything, the
    // backpressure `write` reported (counting frames not yet sent) is over now.
    if (this.owesDrain && ws.getBufferedAmount() < this.highWater) {
      this.owesDrain = false;
      this.handlers?.drain();
    }
  }
  bufferedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.pendingBytes;
  }
  pause(): void {
    // uWS 20.30 cannot pause WebSocket reads; the connection's input cap bounds memory instead.
  }
  resume(): void {}
  end(): void {
    if (this.closed) return;
    this.flush();
    this.ws.end(1000, 'bye');
  }
  destroy(): void {
    this.pending = null;
    this.pendingBytes = 0;
    if (!this.closed) this.ws.close();
  }
}

function flushLink(link: UwsLink): void {
  link.flush();
}

export function listenUws(opts: UwsServerOptions, accept: AcceptLink): Promise<ClientListener> {
  const loaded = loadNativeUws();
  if (!loaded.ok) return Promise.reject(new Error(loaded.reason));
  const uws = loaded.uws;
  const app =
    opts.tls !== undefined
      ? uws.SSLApp({ key_file_name: opts.tls.keyFile, cert_file_name: opts.tls.certFile, passphrase: opts.tls.passphrase })
      : uws.App();
  const transport: LinkTransport = opts.tls !== undefined ? 'wss' : 'ws';
  const highWater = opts.highWaterMark ?? DEFAULT_WS_HIGH_WATER_MARK;
  const open = new Set<UwsSocket>();
  const decoder = new TextDecoder();

  app.ws<LinkState>('/ws', {
    maxPayloadLength: opts.maxPayloadBytes ?? DEFAULT_WS_MAX_PAYLOAD,
    idleTimeout: opts.idleTimeoutSec ?? 0,
    maxBackpressure: 64 * 1024 * 1024,
    closeOnBackpressureLimit: 1,
    open: (ws) => {
      const addr = decoder.decode(ws.getRemoteAddressAsText());
      const link = new UwsLink(ws, transport, addr, highWater);
      const state = ws.getUserData();
      state.link = link;
      open.add(ws);
      try {
        state.handlers = accept(link);
        link.handlers = state.handlers;
      } catch {
        link.closed = true;
        ws.end(1011, 'internal error');
      }
    },
    message: (ws, message, isBinary) => {
      const state = ws.getUserData();
      if (state.handlers === undefined) return;
      if (!isBinary) {
        ws.end(1003, 'binary frames only');
        return;
      }
      // uWS reuses the message buffer after this callback: copy it out (into a shared slab:
      // the connection decodes it soon and keeps only what it copies again).
      state.handlers.data(slabCopy(new Uint8Array(message), 0, message.byteLength));
    },
    drain: (ws) => ws.getUserData().handlers?.drain(),
    close: (ws) => {
      open.delete(ws);
      const state = ws.getUserData();
      if (state.link !== undefined) state.link.closed = true;
      state.handlers?.close();
    },
  });

  const maxBody = opts.maxRequestBodyBytes ?? DEFAULT_HTTP_MAX_REQUEST_BODY;
  for (const [path, route] of Object.entries(opts.routes ?? {})) {
    app.any(path, (res, req) => {
      let done = false;
      res.onAborted(() => (done = true));
      const headers: Record<string, string> = {};
      req.forEach((name, value) => (headers[name] = value));
      const head = { path: req.getUrl(), query: req.getQuery() ?? '', method: req.getMethod(), headers };
      const send = (reply: HttpReply) => {
        if (done) return;
        done = true;
        res.cork(() => {
          res.writeStatus(`${reply.status} ${STATUS_CODES[reply.status] ?? 'Unknown'}`);
          res.writeHeader('content-type', reply.contentType ?? 'application/json');
          for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
          res.end(reply.body);
        });
      };
      const chunks: Uint8Array[] = [];
      let size = 0;
      // uWS hands the body in chunks it reuses after each call: copy them.
      res.onData((chunk, isLast) => {
        if (done) return;
        size += chunk.byteLength;
        if (size > maxBody) {
          send({ status: 413, body: JSON.stringify({ code: 'body_too_large', message: `request bodies are limited to ${maxBody} bytes` }) });
          return;
        }
        chunks.push(new Uint8Array(chunk.slice(0)));
        if (!isLast) return;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        Promise.resolve()
          .then(() => route({ ...head, body }))
          .then(send, (err: unknown) => send({ status: 500, body: JSON.stringify({ code: 'internal_error', message: String(err) }) }));
      });
    });
  }
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end('{"code":"not_found","error":"not_found"}');
  });

  return new Promise((resolve, reject) => {
    app.listen(opts.host, opts.port, (listenSocket) => {
      if (listenSocket === false) {
        reject(new Error(`cannot listen on ${opts.host}:${opts.port}`));
        return;
      }
      resolve({
        port: uws.us_socket_local_port(listenSocket as unknown as import('uWebSockets.js').us_socket),
        close: async (closeLinks = false) => {
          uws.us_listen_socket_close(listenSocket);
          if (closeLinks) for (const ws of [...open]) ws.close();
        },
      });
    });
  });
}
