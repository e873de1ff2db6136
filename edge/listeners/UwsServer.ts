/**
 * The HTTP port: WebSocket v1 clients on `/ws` (binary frames, one or more whole packets per
 * frame) and plain HTTP routes (health, admin) served by uWebSockets.js. Loads the native
 * uWS binary directly and refuses to start when it is missing: the package would otherwise
 * fall back silently to a slow JavaScript implementation.
 *
 * What uWS 20.30 can and cannot do decides the shape of this file:
 * - It cannot stop reading a WebSocket, so a paused link holds the frames that arrive, up to
 *   a limit, and closes past it (ClientLink.pause); output over `outputLimitBytes` is refused
 *   by uWS and closes the link.
 * - The `Origin` header is checked at the upgrade (OriginPolicy); a refused page gets 403.
 * - Idle links are pinged and closed after `idleTimeoutSec` without a frame (uWS counts in
 *   4 s ticks: up to 4 s earlier), so a vanished client goes offline.
 * - With a client CA, uWS requests a client certificate and fails the handshake of one from
 *   another CA, but lets a client without one in and exposes neither the certificate nor
 *   whether there was one: WSS links report `peerCertificate: {status: 'unreported'}`.
 */
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import type { Logger } from '../../runtime/Env.js';
import type { AcceptLink, ClientLink, ClientLinkHandlers, ClientListener, LinkClose, LinkTransport, PeerCertificate } from '../ClientLink.js';
import { slabCopy } from '../protocol/internal/ByteSlab.js';
import { LISTENER_DEFAULTS, WS_IDLE_TIMEOUT_MAX_S, WS_IDLE_TIMEOUT_MIN_S } from './ListenerSettings.js';
import { OriginPolicy } from './OriginPolicy.js';

type Uws = typeof import('uWebSockets.js');
type UwsSocket = import('uWebSockets.js').WebSocket<LinkState>;

interface LinkState {
  link?: UwsLink;
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
  /** TLS key and certificate files; when set the port serves HTTPS/WSS only. `clientCaFile`: request client certificates signed by these CAs. */
  tls?: { keyFile: string; certFile: string; passphrase?: string; clientCaFile?: string };
  /** Largest WebSocket message accepted (bigger closes the link). Default: ws_max_frame_bytes. */
  maxFrameBytes?: number;
  /** Send-buffer bytes above which `write` returns false. Default: ws_output_high_water_bytes. */
  outputHighWaterBytes?: number;
  /** Send-buffer bytes above which uWS refuses a frame and the link closes. Default: ws_output_limit_bytes. */
  outputLimitBytes?: number;
  /** Bytes a paused link holds before it is closed. Default: ws_paused_input_limit_bytes. */
  pausedInputLimitBytes?: number;
  /** Seconds without a frame before a WebSocket is closed (8..960). Default: ws_idle_timeout_s. */
  idleTimeoutSec?: number;
  /** Ping idle clients (a live client answers, so only vanished ones time out). Default: ws_auto_ping. */
  autoPing?: boolean;
  /** Browser origins allowed to open a WebSocket. Default: ws_allowed_origins' default (loopback pages). */
  origins?: OriginPolicy;
  /** Where link closes forced by a limit and refused upgrades are logged. */
  log?: Logger;
  routes?: Record<string, HttpRoute>;
  /** Largest HTTP request body a route is handed; a bigger one is answered 413 `body_too_large`. */
  maxRequestBodyBytes?: number;
}

/** Largest HTTP request body a route reads unless it says otherwise. */
export const DEFAULT_HTTP_MAX_REQUEST_BODY = 64 * 1024;
/**
 * What a held frame costs beyond its bytes (its ArrayBuffer, view and array slot), counted
 * against the paused-input limit so that a flood of tiny frames is bounded too.
 */
export const HELD_FRAME_OVERHEAD_BYTES = 128;
/**
 * WebSocket close code and reason when a paused link's held input passes its limit: the
 * client sent more while the server was not taking its input (it was not reading what the
 * server sent, or it sent faster than the server handles).
 */
export const CLOSE_PAUSED_INPUT_OVER_LIMIT = { code: 1008, reason: 'input over limit while paused: read what the server sends, send no faster than it reads' } as const;

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

/** Settings every link of one listener shares (one object, not fields per link). */
interface UwsLinkShared {
  readonly transport: LinkTransport;
  readonly highWater: number;
  readonly pausedInputLimit: number;
  readonly peerCertificate: PeerCertificate | null;
  readonly log: Logger | null;
}

const UNREPORTED: PeerCertificate = Object.freeze({ status: 'unreported' });

class UwsLink implements ClientLink {
  closed = false;
  /** Set right after accept. */
  handlers: ClientLinkHandlers | undefined = undefined;
  /** Frames written in this turn: sent together, corked, so they leave in one write. */
  private pending: Uint8Array[] | null = null;
  private pendingBytes = 0;
  /** `write` answered false: a `drain` is owed once the buffer is below the high-water mark. */
  private owesDrain = false;
  private paused = false;
  /** Frames received while paused (own copies), in arrival order, and what they cost. */
  private held: Uint8Array[] | null = null;
  private heldCost = 0;
  constructor(
    private readonly ws: UwsSocket,
    private readonly shared: UwsLinkShared,
    readonly remoteAddress: string,
  ) {}
  get transport(): LinkTransport {
    return this.shared.transport;
  }
  get peerCertificate(): PeerCertificate | null {
    return this.shared.peerCertificate;
  }
  /** A binary frame from the client; `message` is valid only during this call. */
  received(message: ArrayBuffer): void {
    if (this.closed || this.handlers === undefined) return;
    if (!this.paused) {
      // uWS reuses the message buffer after this callback: copy it out (into a shared slab:
      // the connection decodes it soon and keeps only what it copies again).
      this.handlers.data(slabCopy(new Uint8Array(message), 0, message.byteLength));
      return;
    }
    const cost = message.byteLength + HELD_FRAME_OVERHEAD_BYTES;
    if (this.heldCost + cost > this.shared.pausedInputLimit) {
      this.shared.log?.info(
        { remote: this.remoteAddress, transport: this.transport, held_bytes: this.heldCost, limit: this.shared.pausedInputLimit, buffered: this.ws.getBufferedAmount() },
        'closing a WebSocket that kept sending while its input was paused (held input over its limit)',
      );
      this.held = null;
      this.heldCost = 0;
      this.closed = true;
      this.ws.end(CLOSE_PAUSED_INPUT_OVER_LIMIT.code, CLOSE_PAUSED_INPUT_OVER_LIMIT.reason);
      return;
    }
    (this.held ??= []).push(new Uint8Array(message.slice(0)));
    this.heldCost += cost;
  }
  write(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.pending === null) {
      this.pending = [bytes];
      process.nextTick(flushLink, this);
    } else this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.ws.getBufferedAmount() + this.pendingBytes < this.shared.highWater) return true;
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
    let refused = false;
    ws.cork(() => {
      for (const f of frames) {
        // 2: over the output limit; uWS drops the frame and closes the link after this call.
        if (ws.send(f, true) === SEND_DROPPED) {
          refused = true;
          break;
        }
      }
    });
    if (refused) {
      this.closed = true;
      this.shared.log?.info({ remote: this.remoteAddress, transport: this.transport, buffered: ws.getBufferedAmount() }, 'closing a WebSocket whose output is over its limit');
      return;
    }
    // uWS calls `drain` only after it had to buffer; if the kernel took everything, the
    // backpressure `write` reported (counting frames not yet sent) is over now.
    if (this.owesDrain && ws.getBufferedAmount() < this.shared.highWater) {
      this.owesDrain = false;
      this.handlers?.drain();
    }
  }
  bufferedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.pendingBytes;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = null;
    this.heldCost = 0;
    if (held === null) return;
    for (let i = 0; i < held.length; i++) {
      if (this.closed) return;
      if (this.paused) {
        // Paused again by a handler: keep the rest, in order, ahead of anything newer.
        this.requeue(held.slice(i));
        return;
      }
      this.handlers?.data(held[i]!);
    }
  }
  private requeue(frames: Uint8Array[]): void {
    this.held = frames.concat(this.held ?? []);
    for (const f of frames) this.heldCost += f.length + HELD_FRAME_OVERHEAD_BYTES;
  }
  end(close?: LinkClose): void {
    if (this.closed) return;
    this.flush();
    this.held = null;
    if (!this.closed) this.ws.end(close?.code ?? 1000, close?.reason ?? 'bye');
  }
  destroy(): void {
    this.pending = null;
    this.pendingBytes = 0;
    this.held = null;
    if (!this.closed) this.ws.close();
  }
  /** uWS closed the socket (either side, a limit, or the idle timeout). */
  onClosed(): void {
    this.closed = true;
    this.held = null;
    this.pending = null;
  }
}

/** `WebSocket.send` result: the frame was dropped because the output is over the limit. */
const SEND_DROPPED = 2;

function flushLink(link: UwsLink): void {
  link.flush();
}

/** The listener's origin policy when none is given: the default allow-list (loopback pages). */
function defaultOrigins(): OriginPolicy {
  const r = OriginPolicy.parse(LISTENER_DEFAULTS.ws_allowed_origins);
  if (!r.ok) throw new Error(`the default ws_allowed_origins does not parse: ${r.reason}`);
  return r.policy;
}

export function listenUws(opts: UwsServerOptions, accept: AcceptLink): Promise<ClientListener> {
  const loaded = loadNativeUws();
  if (!loaded.ok) return Promise.reject(new Error(loaded.reason));
  const idleTimeout = opts.idleTimeoutSec ?? LISTENER_DEFAULTS.ws_idle_timeout_s;
  // uWS aborts the whole process on an idle timeout it does not support.
  if (!Number.isInteger(idleTimeout) || idleTimeout < WS_IDLE_TIMEOUT_MIN_S || idleTimeout > WS_IDLE_TIMEOUT_MAX_S) {
    return Promise.reject(new Error(`idle timeout ${idleTimeout} s is outside ${WS_IDLE_TIMEOUT_MIN_S}..${WS_IDLE_TIMEOUT_MAX_S} s`));
  }
  const uws = loaded.uws;
  const tls = opts.tls;
  const app =
    tls !== undefined
      ? uws.SSLApp({
          key_file_name: tls.keyFile,
          cert_file_name: tls.certFile,
          passphrase: tls.passphrase,
          ...(tls.clientCaFile !== undefined ? { ca_file_name: tls.clientCaFile } : {}),
        })
      : uws.App();
  const shared: UwsLinkShared = {
    transport: tls !== undefined ? 'wss' : 'ws',
    highWater: opts.outputHighWaterBytes ?? LISTENER_DEFAULTS.ws_output_high_water_bytes,
    pausedInputLimit: opts.pausedInputLimitBytes ?? LISTENER_DEFAULTS.ws_paused_input_limit_bytes,
    peerCertificate: tls?.clientCaFile !== undefined ? UNREPORTED : null,
    log: opts.log ?? null,
  };
  const origins = opts.origins ?? defaultOrigins();
  const open = new Set<UwsSocket>();
  const decoder = new TextDecoder();

  app.ws<LinkState>('/ws', {
    maxPayloadLength: opts.maxFrameBytes ?? LISTENER_DEFAULTS.ws_max_frame_bytes,
    idleTimeout,
    sendPingsAutomatically: opts.autoPing ?? LISTENER_DEFAULTS.ws_auto_ping,
    maxBackpressure: opts.outputLimitBytes ?? LISTENER_DEFAULTS.ws_output_limit_bytes,
    // A frame refused over the output limit is lost, so the stream is broken: close the link.
    closeOnBackpressureLimit: 1,
    upgrade: (res, req, context) => {
      const origin = req.getHeader('origin');
      const decision = origins.check(origin);
      if (!decision.ok) {
        shared.log?.info({ remote: decoder.decode(res.getRemoteAddressAsText()), origin: decision.origin.slice(0, 256) }, 'refused a WebSocket upgrade: its Origin is not in ws_allowed_origins');
        res.writeStatus('403 Forbidden').writeHeader('content-type', 'text/plain').end('origin not allowed: this server accepts WebSocket connections only from the pages listed in ws_allowed_origins');
        return;
      }
      res.upgrade<LinkState>({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      const link = new UwsLink(ws, shared, decoder.decode(ws.getRemoteAddressAsText()));
      ws.getUserData().link = link;
      open.add(ws);
      try {
        link.handlers = accept(link);
      } catch {
        link.closed = true;
        ws.end(1011, 'internal error');
      }
    },
    message: (ws, message, isBinary) => {
      const link = ws.getUserData().link;
      if (link === undefined) return;
      if (!isBinary) {
        if (link.closed) return;
        link.closed = true;
        ws.end(1003, 'binary frames only');
        return;
      }
      link.received(message);
    },
    drain: (ws) => ws.getUserData().link?.handlers?.drain(),
    close: (ws) => {
      open.delete(ws);
      const link = ws.getUserData().link;
      if (link === undefined) return;
      link.onClosed();
      link.handlers?.close();
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
