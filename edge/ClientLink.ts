/**
 * One client's byte stream as the edge sees it, whatever carries it (TCP, TLS, WebSocket, or
 * the simulator's virtual links). Listeners create links and hand them to an `AcceptLink`
 * function, which returns the handlers for the link's events. Edge code depends only on
 * this interface, never on sockets.
 */

export type LinkTransport = 'tcp' | 'tls' | 'ws' | 'wss' | 'sim';

export interface ClientLink {
  readonly transport: LinkTransport;
  /** Peer address as text (IPv4/IPv6), for per-IP limits and logs. */
  readonly remoteAddress: string;
  /**
   * Queue `bytes` for the client. Returns false once the link's send buffer is above its
   * high-water mark: stop writing (or stop reading from the sender) until `drain`.
   */
  write(bytes: Uint8Array): boolean;
  /** Bytes queued and not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Stop delivering `data` events (TCP); a no-op where the transport cannot pause reads. */
  pause(): void;
  resume(): void;
  /** Close after the queued bytes are flushed. */
  end(): void;
  /** Close now, dropping what is queued. */
  destroy(): void;
}

export interface ClientLinkHandlers {
  /** Bytes from the client; the array is owned by the receiver (already copied). */
  data(bytes: Uint8Array): void;
  /** The send buffer went below its low-water mark after `write` returned false. */
  drain(): void;
  /** The link is gone (either side closed, or an error); called exactly once. */
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
