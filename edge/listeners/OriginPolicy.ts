/**
 * Which web pages may open a WebSocket to this node: the `Origin` header of a WebSocket
 * upgrade is checked against an allow-list, so a page on another site cannot log in through
 * a visitor's browser. Requests without an Origin header come from non-browser clients and
 * are allowed (a browser always sends one on a WebSocket upgrade). Pure: parsing and matching
 * only; the uWS listener applies it and answers a refused upgrade with HTTP 403.
 *
 * Entries (`ws_allowed_origins`, a list: a JSON array or comma-separated text), each one of
 * - `scheme://host` or `scheme://host:port`: exactly that origin (a default port, 80 for http
 *   and 443 for https, may be written or left out: browsers leave it out);
 * - `scheme://host:*`: that scheme and host on any port, e.g. `http://localhost:*`;
 * - `*`: every origin (turns the check off; production mode warns).
 * Scheme and host compare case-insensitively; IPv6 hosts are written in brackets. The opaque
 * origin `null` (sandboxed frames, `file:` pages) is never allowed.
 */

/** One parsed allow-list entry. */
type OriginRule = { kind: 'any' } | { kind: 'exact'; origin: string } | { kind: 'any_port'; scheme: string; host: string };

export type OriginDecision = { ok: true } | { ok: false; origin: string };

export type ParseOriginsResult = { ok: true; policy: OriginPolicy } | { ok: false; entry: string; reason: string };

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };

/** `scheme://host[:port]` split into lowercase parts, or null when it is not an origin. */
function splitOrigin(text: string): { scheme: string; host: string; port: string } | null {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}|\*))?$/i.exec(text);
  if (m === null) return null;
  return { scheme: m[1]!.toLowerCase(), host: m[2]!.toLowerCase(), port: m[3] ?? '' };
}

/** The canonical text of an origin: lowercase, default port left out. */
function canonical(scheme: string, host: string, port: string): string {
  return port === '' || DEFAULT_PORTS[scheme] === port ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

export class OriginPolicy {
  private constructor(
    private readonly rules: readonly OriginRule[],
    /** The list as configured, for logs. */
    readonly description: string,
  ) {}

  /** Parse an allow-list; the error names the bad entry and what an entry looks like. */
  static parse(list: readonly string[]): ParseOriginsResult {
    const rules: OriginRule[] = [];
    const entries = list.map((e) => e.trim()).filter((e) => e !== '');
    for (const entry of entries) {
      if (entry === '*') {
        rules.push({ kind: 'any' });
        continue;
      }
      const o = splitOrigin(entry);
      if (o === null) return { ok: false, entry, reason: 'not an origin: write scheme://host, scheme://host:port or scheme://host:* (no path, no trailing slash)' };
      if (o.port === '*') rules.push({ kind: 'any_port', scheme: o.scheme, host: o.host });
      else {
        if (Number(o.port) > 65535) return { ok: false, entry, reason: 'not an origin: its port must be at most 65535' };
        rules.push({ kind: 'exact', origin: canonical(o.scheme, o.host, o.port) });
      }
    }
    return { ok: true, policy: new OriginPolicy(rules, entries.length === 0 ? '(none)' : entries.join(', ')) };
  }

  /** True when at least one browser origin is allowed. */
  get allowsBrowsers(): boolean {
    return this.rules.length > 0;
  }

  /** True when the list is `*` (every origin). */
  get allowsEveryOrigin(): boolean {
    return this.rules.some((r) => r.kind === 'any');
  }

  /**
   * Decide an upgrade from its Origin header (`''` when the request has none: a non-browser
   * client, allowed).
   */
  check(originHeader: string): OriginDecision {
    if (originHeader === '') return { ok: true };
    const o = splitOrigin(originHeader.trim());
    if (o === null || o.port === '*') return { ok: false, origin: originHeader };
    const exact = canonical(o.scheme, o.host, o.port);
    for (const r of this.rules) {
      if (r.kind === 'any') return { ok: true };
      if (r.kind === 'exact' && r.origin === exact) return { ok: true };
      if (r.kind === 'any_port' && r.scheme === o.scheme && r.host === o.host) return { ok: true };
    }
    return { ok: false, origin: originHeader };
  }
}
