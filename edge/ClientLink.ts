/**
 * One client's byte stream as the edge sees it, whatever carries it (TCP, TLS, WebSocket, or
 * the simulator's virtual links). Listeners create links and hand them to an `AcceptLink`
 * function, which returns the handlers for the link's events. Edge code depends only on
 * this interface, never on sockets.
 */

export type LinkTransport = 'tcp' | 'tls' | 'ws' | 'wss' | 'sim';

/**
 * What a TLS link proved about the client's certificate (`tls_client_auth` on).
 * - `verified`: the client presented a certificate that chains to `tls_client_ca_file`
 *   (TCP TLS); `subject` is its subject as `CN=alice, O=Example`, `names` the names it vouches
 *   for: the subject's CN values and its DNS, email and URI subjectAltNames.
 * - `unreported`: the transport verifies any certificate presented (one from another CA fails
 *   the handshake) but cannot tell whether one was presented, nor whose it is: WSS on
 *   uWebSockets.js 20.30, which exposes neither. Logins that need a certificate are refused.
 * A link without client authentication, or whose client presented none, has `null`.
 */
export type PeerCertificate =
  | { readonly status: 'verified'; readonly subject: string; readonly names: readonly string[] }
  | { readonly status: 'unreported' };

export interface ClientLink {
  readonly transport: LinkTransport;
  /** Peer address as text (IPv4/IPv6), for per-IP limits and logs. */
  readonly remoteAddress: string;
  /** The client certificate, known once the link is handed over; absent means `null`. */
  readonly peerCertificate?: PeerCertificate | null;
  /**
   * Queue `bytes` for the client. Returns false once the link's send buffer is above its
   * high-water mark: stop writing (or stop reading from the sender) until `drain`. A link
   * whose queue passes a hard limit is closed rather than lose a frame from the stream
   * (WebSocket: `ws_output_limit_bytes`).
   */
  write(bytes: Uint8Array): boolean;
  /** Bytes queued and not yet handed to the kernel. */
  bufferedBytes(): number;
  /**
   * Stop delivering `data` events until `resume`, which hands over what was held, in order,
   * before anything newer. Per transport:
   * - `tcp`, `tls`: the socket stops reading; bytes wait in the kernel's receive buffer and
   *   TCP flow control stops the client (TLS may still deliver nothing it has not decrypted).
   * - `ws`, `wss`: uWebSockets.js 20.30 cannot stop reading a WebSocket, so the link keeps
   *   every frame that arrives while paused (its own copy) and hands none over. Once the held
   *   bytes exceed `ws_paused_input_limit_bytes` the link is closed (WebSocket close 1008,
   *   logged): memory per paused link stays within that limit plus one frame.
   * - `sim`: the virtual link holds what arrives, as a paused socket would.
   * Pausing twice is pausing once; `close` still comes while paused.
   */
  pause(): void;
  /** Deliver again, starting with what was held while paused. */
  resume(): void;
  /**
   * Close after the queued bytes are flushed. `close` is the WebSocket close code and reason
   * (default 1000, "bye"); a TCP link ends its side (FIN) and ignores it.
   */
  end(close?: LinkClose): void;
  /** Close now, dropping what is queued. */
  destroy(): void;
}

/** How a WebSocket link is closed by the server: code and reason of its close frame. */
export interface LinkClose {
  readonly code: number;
  readonly reason: string;
}

export interface ClientLinkHandlers {
  /** Bytes from the client; the array is owned by the receiver (already copied). */
  data(bytes: Uint8Array): void;
  /** The send buffer went below its low-water mark after `write` returned false. */
  drain(): void;
  /**
   * The client is gone or has stopped sending (it closed, reset, half-closed its TCP side, or
   * an error); called exactly once. No `data` follows. After a half-close the server may still
   * write until it ends the link.
   */
  close(): void;
}

/** Called once per new link; returns how to handle its events. */
export type AcceptLink = (link: ClientLink) => ClientLinkHandlers;

export interface ClientListener {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Stop accepting; with `closeLinks`, also destroy open links. */
  close(closeLinks?: boolean): Promise<void>;
}
