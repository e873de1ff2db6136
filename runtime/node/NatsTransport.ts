/**
 * The production ClusterTransport: core NATS through `@nats-io/transport-node` (v3). Connects
 * to the configured servers (credentials and TLS when given), reconnects for ever after the
 * first connection, and reports its link state. With JetStreamStore (which shares its
 * connection), the only module that imports `@nats-io/*`; sim/SimNats.ts is its twin and both
 * pass the same rule tests (test/support/transportRules.ts).
 * It never throws at a publisher: a publish the client refuses is a lost message (at most once).
 */
import { readFile } from 'node:fs/promises';
import { connect, credsAuthenticator, NoRespondersError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import type { ClusterTransport, Logger, TransportLinkState, TransportReply } from '../Env.js';
import { NATS_CONNECT_TIMEOUT_MS, NATS_PING_INTERVAL_MS, NATS_RECONNECT_WAIT_MS } from '../defaults.js';

export interface NatsTlsOptions {
  /** CA bundle (PEM file) to verify the servers with. */
  caFile?: string;
  /** Client certificate and key (PEM files) for servers that verify clients. */
  certFile?: string;
  keyFile?: string;
}

export interface NatsTransportOptions {
  /** `nats://host:port` (or `host:port`) of one or more servers of the cluster. */
  servers: readonly string[];
  /** Client name shown by the server's monitoring (the node name). */
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** A NATS `.creds` file (user JWT and nkey seed). */
  credsFile?: string;
  /** Require TLS (an empty object: TLS with the system's CAs). */
  tls?: NatsTlsOptions;
  /** Default NATS_RECONNECT_WAIT_MS. */
  reconnectWaitMs?: number;
  /** Default NATS_PING_INTERVAL_MS. */
  pingIntervalMs?: number;
  /** Default NATS_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
  /** Use only `servers`, not the servers the cluster advertises (tests pin a node to a server). */
  ignoreClusterUpdates?: boolean;
  /** Try `servers` in the order given rather than shuffled. */
  noRandomize?: boolean;
  log?: Logger;
}

export type NatsConnectResult =
  | { ok: true; transport: NatsTransport }
  | { ok: false; error: 'unreachable' | 'auth' | 'bad_config'; message: string };

/** max_payload assumed until the server says otherwise (nats-server's default). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Connect to NATS; the first connection must succeed within the connect timeout. */
export async function connectNats(opts: NatsTransportOptions): Promise<NatsConnectResult> {
  if (opts.servers.length === 0) return { ok: false, error: 'bad_config', message: 'no NATS servers given' };
  let authenticator;
  try {
    authenticator = opts.credsFile !== undefined ? credsAuthenticator(new Uint8Array(await readFile(opts.credsFile))) : undefined;
  } catch (err) {
    return { ok: false, error: 'bad_config', message: `cannot read credentials ${opts.credsFile}: ${errText(err)}` };
  }
  const wait = opts.reconnectWaitMs ?? NATS_RECONNECT_WAIT_MS;
  try {
    const nc = await connect({
      servers: [...opts.servers],
      name: opts.name,
      user: opts.user,
      pass: opts.pass,
      token: opts.token,
      authenticator,
      tls: opts.tls === undefined ? undefined : { ...opts.tls },
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: wait,
      reconnectJitter: wait,
      reconnectJitterTLS: wait,
      pingInterval: opts.pingIntervalMs ?? NATS_PING_INTERVAL_MS,
      maxPingOut: 2,
      timeout: opts.connectTimeoutMs ?? NATS_CONNECT_TIMEOUT_MS,
      ignoreClusterUpdates: opts.ignoreClusterUpdates === true,
      noRandomize: opts.noRandomize === true,
      // Otherwise every request (each shard-stream append) builds two Error objects up front,
      // stack traces included, only to give a later failure the caller's stack: measured at
      // 3% of a cluster node's main thread. Failures keep their classes and causes.
      noAsyncTraces: true,
    });
    return { ok: true, transport: new NatsTransport(nc, opts.log) };
  } catch (err) {
    const text = errText(err);
    const auth = /auth|permission|credential/i.test(text);
    return { ok: false, error: auth ? 'auth' : 'unreachable', message: `NATS at ${opts.servers.join(', ')}: ${text}` };
  }
}

export class NatsTransport implements ClusterTransport {
  private state: TransportLinkState = 'up';
  private readonly listeners = new Set<(s: TransportLinkState) => void>();
  /** Publishes the client refused (closed, payload too large). */
  refused = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly log?: Logger,
  ) {
    void this.watchStatus();
    void nc.closed().then(() => this.setState('closed'));
  }

  get linkState(): TransportLinkState {
    return this.state;
  }

  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  /**
   * The NATS connection itself, for the other NATS bindings of this folder (JetStreamStore
   * shares it rather than opening a second one). Never hand it above the Env.
   */
  get connection(): NatsConnection {
    return this.nc;
  }

  /** The server this client is connected to now (`host:port`), for logs and tests. */
  get server(): string {
    return this.nc.getServer();
  }

  onLinkState(listener: (state: TransportLinkState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(subject: string, data: Uint8Array, reply?: string): void {
    try {
      this.nc.publish(subject, data, reply === undefined ? undefined : { reply });
    } catch (err) {
      this.refused++;
      this.log?.debug({ subject, err: errText(err) }, 'NATS publish refused');
    }
  }

  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string, reply: string | undefined) => void, opts?: { queue?: string }): { unsubscribe(): void } {
    const sub = this.nc.subscribe(subject, {
      queue: opts?.queue,
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          onMessage(msg.data, msg.subject, msg.reply === '' ? undefined : msg.reply);
        } catch (e) {
          this.log?.error({ subject, err: errText(e) }, 'NATS message handler threw');
        }
      },
    });
    return {
      unsubscribe: () => {
        try {
          sub.unsubscribe();
        } catch {
          /* already closed */
        }
      },
    };
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<TransportReply> {
    if (this.state === 'closed') return { ok: false, reason: 'closed' };
    try {
      const m = await this.nc.request(subject, data, { timeout: timeoutMs });
      return { ok: true, data: m.data };
    } catch (err) {
      if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) return { ok: false, reason: 'no_responders' };
      if (err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError)) return { ok: false, reason: 'timeout' };
      if (this.nc.isClosed()) return { ok: false, reason: 'closed' };
      return { ok: false, reason: 'timeout' };
    }
  }

  async flush(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.flush();
    } catch {
      /* a flush cut short by a disconnect: at most once */
    }
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.close();
    this.setState('closed');
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case 'disconnect':
        case 'staleConnection':
          this.setState('down');
          break;
        case 'reconnect':
          this.setState('up');
          break;
        case 'close':
          this.setState('closed');
          return;
        default:
          break;
      }
    }
  }

  private setState(s: TransportLinkState): void {
    if (this.state === s || this.state === 'closed') return;
    this.state = s;
    for (const fn of [...this.listeners]) {
      try {
        fn(s);
      } catch (err) {
        this.log?.error({ err: errText(err) }, 'link state listener threw');
      }
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
