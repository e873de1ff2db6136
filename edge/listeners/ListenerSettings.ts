/**
 * The client listeners' settings (raw TCP/TLS and uWebSockets.js): one typed record, its
 * defaults written down once, the type and range of every key, and the checks that span keys.
 * core/Config.ts merges these keys into the node's configuration (file, IRIS_<KEY>, flags);
 * bin/irisNode.ts hands them to the listeners. Pure: no file is read here.
 *
 * Bounds these settings give a client that stops reading (WebSocket; TCP is bounded by the
 * kernel's socket buffers): at most `ws_output_limit_bytes` plus one frame of output and
 * `ws_paused_input_limit_bytes` plus one frame of held input before the link is closed.
 * A client that vanishes without closing goes offline after at most
 * - WebSocket: `ws_idle_timeout_s` (uWS checks every 4 s, so rounded up to a multiple of 4);
 * - TCP/TLS: `tcp_keepalive_idle_s` + net.ipv4.tcp_keepalive_intvl × tcp_keepalive_probes
 *   (kernel sysctls of the node's network namespace, 75 s × 9 by default: Node 20's libuv
 *   sets only the idle delay), counted from the last byte the client sent; a client with
 *   unacknowledged output is dropped by TCP retransmission (tcp_retries2) or earlier by the
 *   connection's slow_client_timeout_ms.
 */
import { OriginPolicy } from './OriginPolicy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export type TlsClientAuth = 'none' | 'optional' | 'required';

export interface ListenerSettings {
  /** Largest WebSocket message accepted; a bigger one closes the link (code 1009). Room for v1's largest packet (BATCH_SEND: 1 MiB blob plus header). */
  ws_max_frame_bytes: number;
  /** WebSocket output above which `write` reports backpressure (the connection stops reading and holds deliveries). */
  ws_output_high_water_bytes: number;
  /** WebSocket output above which a frame is refused and the link closed (uWS maxBackpressure); above the high water by room for replies to input already taken. */
  ws_output_limit_bytes: number;
  /** Input a paused WebSocket link holds (uWS cannot stop reading); more closes the link with 1008. At least ws_max_frame_bytes. */
  ws_paused_input_limit_bytes: number;
  /** Seconds without any frame (pings included) before a WebSocket is closed as vanished; 8..960. */
  ws_idle_timeout_s: number;
  /** Ping idle WebSocket clients so a live one always answers within ws_idle_timeout_s. */
  ws_auto_ping: boolean;
  /** Browser origins allowed to open a WebSocket (OriginPolicy.ts syntax); requests without Origin are allowed. Dev default: loopback pages; production default: none. */
  ws_allowed_origins: string;
  /** Seconds a TCP connection is idle before the kernel starts keepalive probes. */
  tcp_keepalive_idle_s: number;
  /** Client certificates on the TLS ports: `none`, `optional` (a presented one must chain to tls_client_ca_file) or `required`. */
  tls_client_auth: TlsClientAuth;
  /** PEM file of the CA(s) that sign client certificates. */
  tls_client_ca_file: string;
  /** A login's user must be a name in the client certificate (subject CN or a DNS/email/URI subjectAltName). */
  tls_client_cert_user_match: boolean;
}

/** Loopback pages on any port, over http and https: what a developer's own pages use. */
export const DEV_WS_ALLOWED_ORIGINS = 'http://localhost:*, http://127.0.0.1:*, http://[::1]:*, https://localhost:*, https://127.0.0.1:*, https://[::1]:*';
/** No browser origin until the operator names one. */
export const PRODUCTION_WS_ALLOWED_ORIGINS = '';

/** The largest WebSocket message accepted by default: a full BATCH_SEND (1 MiB blob) and its header. */
const WS_MAX_FRAME_BYTES = MiB + KiB;
const WS_OUTPUT_HIGH_WATER_BYTES = 256 * KiB;

export const LISTENER_DEFAULTS: Readonly<ListenerSettings> = Object.freeze({
  ws_max_frame_bytes: WS_MAX_FRAME_BYTES,
  ws_output_high_water_bytes: WS_OUTPUT_HIGH_WATER_BYTES,
  // Replies to input the connection took before it paused, plus one large delivery (~257 KiB).
  ws_output_limit_bytes: WS_OUTPUT_HIGH_WATER_BYTES + 512 * KiB,
  ws_paused_input_limit_bytes: WS_MAX_FRAME_BYTES + 256 * KiB,
  ws_idle_timeout_s: 60,
  ws_auto_ping: true,
  ws_allowed_origins: DEV_WS_ALLOWED_ORIGINS,
  tcp_keepalive_idle_s: 60,
  tls_client_auth: 'none',
  tls_client_ca_file: '',
  tls_client_cert_user_match: false,
});

/** uWebSockets.js 20.30 aborts the process for an idle timeout outside 8..960 s (0 would disable it). */
export const WS_IDLE_TIMEOUT_MIN_S = 8;
export const WS_IDLE_TIMEOUT_MAX_S = 960;

/** The type and range of each key, in the shape core/Config.ts validates. */
export type ListenerKeySpec = { kind: 'int'; min: number; max: number } | { kind: 'bool' } | { kind: 'string' } | { kind: 'enum'; values: readonly string[] };

export const LISTENER_SCHEMA: Readonly<Record<keyof ListenerSettings, ListenerKeySpec>> = {
  ws_max_frame_bytes: { kind: 'int', min: 4 * KiB, max: 64 * MiB },
  ws_output_high_water_bytes: { kind: 'int', min: 4 * KiB, max: 64 * MiB },
  ws_output_limit_bytes: { kind: 'int', min: 8 * KiB, max: 256 * MiB },
  ws_paused_input_limit_bytes: { kind: 'int', min: 4 * KiB, max: 256 * MiB },
  ws_idle_timeout_s: { kind: 'int', min: WS_IDLE_TIMEOUT_MIN_S, max: WS_IDLE_TIMEOUT_MAX_S },
  ws_auto_ping: { kind: 'bool' },
  ws_allowed_origins: { kind: 'string' },
  tcp_keepalive_idle_s: { kind: 'int', min: 1, max: 7200 },
  tls_client_auth: { kind: 'enum', values: ['none', 'optional', 'required'] },
  tls_client_ca_file: { kind: 'string' },
  tls_client_cert_user_match: { kind: 'bool' },
};

/** A problem with the listener settings: the key and one sentence saying what to change. */
export interface ListenerSettingsProblem {
  key: keyof ListenerSettings;
  message: string;
}

/** The settings a mode changes when the operator did not set them (`explicit` = keys set by some layer). */
export function applyListenerModeDefaults(s: ListenerSettings, mode: 'dev' | 'production', explicit: ReadonlySet<string>): void {
  if (mode === 'production' && !explicit.has('ws_allowed_origins')) s.ws_allowed_origins = PRODUCTION_WS_ALLOWED_ORIGINS;
}

/**
 * Checks across keys (each key's type and range are already checked). `tlsOn`: both
 * tls_cert_file and tls_key_file are set. Returns the problems and the warnings.
 */
export function checkListenerSettings(s: ListenerSettings, mode: 'dev' | 'production', tlsOn: boolean): { problems: ListenerSettingsProblem[]; warnings: string[] } {
  const problems: ListenerSettingsProblem[] = [];
  const warnings: string[] = [];
  if (s.ws_output_limit_bytes <= s.ws_output_high_water_bytes) {
    problems.push({ key: 'ws_output_limit_bytes', message: `ws_output_limit_bytes: must be above ws_output_high_water_bytes (${s.ws_output_high_water_bytes}); the default leaves 512 KiB between them` });
  }
  if (s.ws_paused_input_limit_bytes < s.ws_max_frame_bytes) {
    problems.push({ key: 'ws_paused_input_limit_bytes', message: `ws_paused_input_limit_bytes: must be at least ws_max_frame_bytes (${s.ws_max_frame_bytes}), or one large frame from a paused client closes its link` });
  }
  const origins = OriginPolicy.parse(s.ws_allowed_origins);
  if (!origins.ok) problems.push({ key: 'ws_allowed_origins', message: `ws_allowed_origins: '${origins.entry}' is ${origins.reason}; separate entries with commas, e.g. https://chat.example.com, http://localhost:*` });
  else if (mode === 'production' && origins.policy.allowsEveryOrigin) {
    warnings.push('ws_allowed_origins is *: any web page can open a WebSocket to this node in its visitors\' browsers');
  }
  if (s.tls_client_auth !== 'none') {
    if (s.tls_client_ca_file === '') {
      problems.push({ key: 'tls_client_ca_file', message: `tls_client_ca_file: required when tls_client_auth is ${s.tls_client_auth}; set it to the PEM file of the CA that signs client certificates, or set tls_client_auth=none` });
    }
    if (!tlsOn) {
      problems.push({ key: 'tls_client_auth', message: `tls_client_auth: ${s.tls_client_auth} needs TLS on the client ports; set tls_cert_file and tls_key_file, or set tls_client_auth=none` });
    }
  } else if (s.tls_client_ca_file !== '') {
    warnings.push('tls_client_ca_file is set but tls_client_auth is none: client certificates are not requested');
  }
  if (s.tls_client_cert_user_match && s.tls_client_auth === 'none') {
    problems.push({ key: 'tls_client_cert_user_match', message: 'tls_client_cert_user_match: needs client certificates; set tls_client_auth=required (or optional), or turn the match off' });
  }
  return { problems, warnings };
}
