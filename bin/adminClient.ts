/**
 * How the CLI reaches a running node's admin API: the node's address (`--node URL` or `--url URL`, or the
 * config's host and http_port, https when the config has TLS, trusting its certificate file),
 * the admin token (`--admin-token`, else the config key admin_token, e.g. IRIS_ADMIN_TOKEN,
 * else the token file in the node's data directory), and one JSON request with a deadline.
 * A node that cannot be reached is a typed failure with the address in the message.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { IrisConfig } from '../server/NodeConfig.js';
import { ADMIN_CLIENT_TIMEOUT_MS } from '../edge/admin/AdminSettings.js';
import { readAdminToken } from '../server/AdminTokenFile.js';
import { CONFIG_FLAG_OPTIONS, reportConfigProblems, resolveCliConfig, type FlagValues } from './configLayers.js';
import { EXIT_FAILURE, EXIT_REFUSED } from './exitCodes.js';

/** parseArgs options of every command that calls the admin API. */
export const ADMIN_CLIENT_FLAG_OPTIONS = {
  ...CONFIG_FLAG_OPTIONS,
  node: { type: 'string' },
  url: { type: 'string' },
  'admin-token': { type: 'string' },
  data: { type: 'string' },
  host: { type: 'string' },
  'http-port': { type: 'string' },
} as const;

/** Config keys those flags stand for. */
export const ADMIN_CLIENT_SHORTCUTS: ReadonlyArray<readonly [string, keyof IrisConfig]> = [
  ['data', 'wal_directory'],
  ['host', 'host'],
  ['http-port', 'http_port'],
  ['admin-token', 'admin_token'],
];

export const ADMIN_CLIENT_USAGE = `          --url URL          the node's HTTP address (default: http://<host>:<http_port> of the
                             config); --node URL is the same
          --admin-token T    admin token (default: admin_token / IRIS_ADMIN_TOKEN, else the
                             admin.token file in the node's data directory, --data)
          --data DIR, --host ADDR, --http-port N, --config FILE, --set key=value: as for start`;

export interface AdminTarget {
  readonly url: URL;
  /** The admin token (null for the node's open pages: /health, /cluster/status). */
  readonly token: string | null;
  /** Trusted certificate for https (the node's own, when it uses TLS). */
  readonly ca?: Buffer;
}

export type AdminTargetResult = { ok: true; target: AdminTarget } | { ok: false; message: string };

/** Where and with which token to call; every failure names the flag or key to fix. */
export function adminTarget(values: FlagValues, config: IrisConfig): AdminTargetResult {
  const token = readAdminToken(config);
  if (!token.ok) return token;
  const node = nodeTarget(values, config);
  return node.ok ? { ok: true, target: { ...node.target, token: token.token } } : node;
}

/** Where the node's HTTP pages are (`--url`/`--node`, else the config's host and http_port), without a token. */
export function nodeTarget(values: FlagValues, config: IrisConfig): AdminTargetResult {
  const tls = config.tls_cert_file !== '';
  let url: URL;
  const flag = typeof values['url'] === 'string' ? '--url' : '--node';
  const node = values['url'] ?? values['node'];
  if (typeof node === 'string') {
    try {
      url = new URL(node);
    } catch {
      return { ok: false, message: `${flag} ${node}: not a URL (e.g. http://127.0.0.1:8086)` };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, message: `${flag} ${node}: must be an http:// or https:// URL` };
  } else {
    const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host === '::' ? '::1' : config.host;
    url = new URL(`${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.http_port}`);
  }
  let ca: Buffer | undefined;
  if (url.protocol === 'https:' && tls) {
    try {
      ca = readFileSync(config.tls_cert_file);
    } catch (err) {
      return { ok: false, message: `tls_cert_file: cannot read ${config.tls_cert_file} to trust the node's certificate: ${(err as Error).message}` };
    }
  }
  return { ok: true, target: ca === undefined ? { url, token: null } : { url, token: null, ca } };
}

/** The node's answer, or why there is none (`unreachable`: no connection could be made, or it broke before an answer). */
export type AdminAnswer = { ok: true; status: number; body: Record<string, unknown> } | { ok: false; message: string; unreachable?: boolean };

/** One request to the admin API; resolves with the node's JSON answer, or why there is none. */
export function callAdmin(target: AdminTarget, method: 'GET' | 'POST', path: string, body?: object): Promise<AdminAnswer> {
  const url = new URL(path, target.url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  const where = target.url.origin;
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (target.token !== null) headers['authorization'] = `Bearer ${target.token}`;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const options = { method, headers, timeout: ADMIN_CLIENT_TIMEOUT_MS, ...(target.ca !== undefined ? { ca: target.ca } : {}) };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          const parsed: unknown = JSON.parse(text);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
          resolve({ ok: true, status: res.statusCode ?? 0, body: parsed as Record<string, unknown> });
        } catch {
          resolve({ ok: false, message: `the node at ${where} answered ${res.statusCode ?? '?'} without a JSON body: ${text.slice(0, 200)}` });
        }
      });
      res.on('error', (err) => resolve({ ok: false, message: `the answer from ${where} broke off: ${err.message}` }));
    });
    let timedOut = false;
    req.on('timeout', () => {
      timedOut = true;
      req.destroy(new Error(`no answer within ${ADMIN_CLIENT_TIMEOUT_MS} ms`));
    });
    req.on('error', (err) => resolve({ ok: false, unreachable: !timedOut, message: `cannot reach the node at ${where}: ${err.message}; is it running, and is --url (or host/http_port) right?` }));
    req.end(payload);
  });
}

/**
 * One admin request as a command makes it: the target from the flags and config, the request,
 * and what to print when there is no 200 answer. Resolves with the 200 answer's body, or with
 * the exit code the command returns (the reason already printed).
 */
export async function adminRequest(values: FlagValues, method: 'GET' | 'POST', path: string, body?: object): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; exit: number }> {
  const cfg = resolveCliConfig(values, ADMIN_CLIENT_SHORTCUTS);
  if (!cfg.ok) return { ok: false, exit: reportConfigProblems(cfg.problems) };
  const target = adminTarget(values, cfg.config);
  if (!target.ok) return { ok: false, exit: reportConfigProblems([target.message]) };
  const answer = await callAdmin(target.target, method, path, body);
  if (!answer.ok) {
    console.error(`iris: ${answer.message}`);
    return { ok: false, exit: EXIT_FAILURE };
  }
  if (answer.status !== 200) return { ok: false, exit: reportRefusal(answer.status, answer.body) };
  return { ok: true, body: answer.body };
}

/** Prints the node's refusal as `code: message`; exit 3, or 1 when the node itself failed (5xx). */
export function reportRefusal(status: number, body: Record<string, unknown>): number {
  console.error(`iris: ${String(body['code'] ?? `http_${status}`)}: ${String(body['message'] ?? '')} (HTTP ${status})`);
  return status >= 500 ? EXIT_FAILURE : EXIT_REFUSED;
}
