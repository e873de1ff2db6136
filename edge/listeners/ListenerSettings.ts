/**
 * The client listeners' settings (raw TCP/TLS and uWebSockets.js): their keys, bounds and
 * defaults declared once, and the checks that span keys. edge/EdgeSettings.ts takes these keys
 * into the edge layer's schema, server/NodeConfig.ts applies the mode defaults and the checks,
 * server/IrisNode.ts hands the values to the listeners. Pure: no file is read here.
 *
 * Bounds these settings give a client that stops reading (WebSocket; TCP is bounded by the
 * kernel's socket buffers): at most `ws_output_limit_bytes` plus one frame of output and
 * `ws_paused_input_limit_bytes` plus one frame of held input before the link is closed.
 * A client that vanishes without closing goes offline after at most
 * - WebSocket: `ws_idle_timeout_s` rounded up to a multiple of 4 s (uWS counts timeouts in 4 s
 *   ticks, so it may also close up to 4 s earlier);
 * - TCP/TLS: `tcp_keepalive_idle_s` + net.ipv4.tcp_keepalive_intvl × tcp_keepalive_probes
 *   (kernel sysctls of the node's network namespace, 75 s × 9 by default: Node 20's libuv
 *   sets only the idle delay), counted from the last byte the client sent; a client with
 *   unacknowledged output is dropped by TCP retransmission (tcp_retries2) or earlier by the
 *   connection's slow_client_timeout_ms.
 */
import { defaultsOf, type SettingsOf, type SettingsSchema } from '../../runtime/Settings.js';
import { OriginPolicy } from './OriginPolicy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Loopback pages on any port, over http and https: what a developer's own pages use. */
export const DEV_WS_ALLOWED_ORIGINS: readonly string[] = Object.freeze([
  'http://localhost:*',
  'http://127.0.0.1:*',
  'http://[::1]:*',
  'https://localhost:*',
  'https://127.0.0.1:*',
  'https://[::1]:*',
]);
/** No browser origin until the operator names one. */
export const PRODUCTION_WS_ALLOWED_ORIGINS: readonly string[] = Object.freeze([]);

/** uWebSockets.js 20.30 aborts the process for an idle timeout outside 8..960 s (0 would disable it). */
export const WS_IDLE_TIMEOUT_MIN_S = 8;
export const WS_IDLE_TIMEOUT_MAX_S = 960;

/** The largest WebSocket message accepted by default: a full BATCH_SEND (1 MiB blob) and its header. */
const WS_MAX_FRAME_BYTES = MiB + KiB;
const WS_OUTPUT_HIGH_WATER_BYTES = 256 * KiB;

export const LISTENER_SETTINGS = {
  ws_max_frame_bytes: {
    kind: 'int',
    default: WS_MAX_FRAME_BYTES,
    min: 4 * KiB,
    max: 64 * MiB,
    doc: "Largest WebSocket message accepted; a bigger one closes the link (1009). Default: v1's largest packet (BATCH_SEND, 1 MiB blob) and its header.",
  },
  ws_output_high_water_bytes: {
    kind: 'int',
    default: WS_OUTPUT_HIGH_WATER_BYTES,
    min: 4 * KiB,
    max: 64 * MiB,
    doc: 'WebSocket output above which a write reports backpressure (the connection stops reading and holds deliveries).',
  },
  ws_output_limit_bytes: {
    kind: 'int',
    // Replies to input the connection took before it paused, plus one large delivery (~257 KiB).
    default: WS_OUTPUT_HIGH_WATER_BYTES + 512 * KiB,
    min: 8 * KiB,
    max: 256 * MiB,
    doc: 'WebSocket output above which a frame is refused and the link closed (uWS maxBackpressure); must be above ws_output_high_water_bytes.',
  },
  ws_paused_input_limit_bytes: {
    kind: 'int',
    default: WS_MAX_FRAME_BYTES + 256 * KiB,
    min: 4 * KiB,
    max: 256 * MiB,
    doc: 'Input a paused WebSocket link holds (uWS cannot stop reading); more closes the link with 1008. At least ws_max_frame_bytes.',
  },
  ws_idle_timeout_s: {
    kind: 'int',
    default: 60,
    min: WS_IDLE_TIMEOUT_MIN_S,
    max: WS_IDLE_TIMEOUT_MAX_S,
    doc: 'Seconds without any frame (pongs included) before a WebSocket is closed as vanished (uWS counts in 4 s ticks: up to 4 s earlier).',
  },
  ws_auto_ping: { kind: 'bool', default: true, doc: 'Ping idle WebSocket clients, so a live one always answers within ws_idle_timeout_s.' },
  ws_allowed_origins: {
    kind: 'list',
    default: DEV_WS_ALLOWED_ORIGINS,
    doc: 'Browser origins allowed to open a WebSocket (scheme://host[:port], scheme://host:*, or *); requests without Origin are allowed. Dev default: loopback pages; production default: none.',
  },
  tcp_keepalive_idle_s: {
    kind: 'int',
    default: 60,
    min: 1,
    max: 7200,
    doc: 'Seconds a TCP connection is silent before the kernel probes it (then net.ipv4.tcp_keepalive_intvl × tcp_keepalive_probes until it is dropped).',
  },
  tls_client_auth: {
    kind: 'enum',
    default: 'none',
    values: ['none', 'optional', 'required'],
    doc: 'Client certificates on the TLS ports: none, optional (one presented must chain to tls_client_ca_file) or required.',
  },
  tls_client_ca_file: { kind: 'string', default: '', doc: 'PEM file of the CA(s) that sign client certificates.' },
  tls_client_cert_user_match: {
    kind: 'bool',
    default: false,
    doc: 'A login user must be a name in the client certificate (subject CN or a DNS/email/URI subjectAltName); such logins are refused over WSS.',
  },
} as const satisfies SettingsSchema;

export type ListenerSettings = SettingsOf<typeof LISTENER_SETTINGS>;
export type TlsClientAuth = ListenerSettings['tls_client_auth'];
export const LISTENER_DEFAULTS: Readonly<ListenerSettings> = defaultsOf(LISTENER_SETTINGS);

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
