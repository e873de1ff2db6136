/**
 * Reads the client certificate of a Node TLS socket into the link's `PeerCertificate`: the
 * subject as text and the names it vouches for (subject CN values, DNS/email/URI
 * subjectAltNames), which login policy compares with the user. Only certificates that chained
 * to the configured client CA become `verified`; the caller refuses the others.
 */
import type { PeerCertificate as NodePeerCertificate, TLSSocket } from 'node:tls';
import type { PeerCertificate } from '../ClientLink.js';

/** subjectAltName entry types whose value can name a user. */
const NAME_TYPES: ReadonlySet<string> = new Set(['DNS', 'email', 'URI']);

export type ClientCertificateResult =
  /** No certificate presented. */
  | { kind: 'none' }
  /** A certificate that chains to the client CA. */
  | { kind: 'verified'; certificate: PeerCertificate & { status: 'verified' } }
  /** A certificate that does not (`reason`: OpenSSL's verification error). */
  | { kind: 'unverified'; reason: string };

export function readClientCertificate(socket: TLSSocket): ClientCertificateResult {
  const cert = socket.getPeerCertificate() as NodePeerCertificate | Record<string, never>;
  if (Object.keys(cert).length === 0) return { kind: 'none' };
  if (!socket.authorized) return { kind: 'unverified', reason: String(socket.authorizationError ?? 'unknown') };
  const c = cert as NodePeerCertificate;
  const subjectParts: string[] = [];
  const names: string[] = [];
  for (const [field, value] of Object.entries(c.subject ?? {})) {
    const values: string[] = Array.isArray(value) ? value : [String(value)];
    for (const v of values) {
      subjectParts.push(`${field}=${v}`);
      if (field === 'CN') names.push(v);
    }
  }
  for (const { type, value } of parseSubjectAltNames(c.subjectaltname ?? '')) if (NAME_TYPES.has(type)) names.push(value);
  return { kind: 'verified', certificate: { status: 'verified', subject: subjectParts.join(', '), names } };
}

/**
 * Node's `subjectaltname` text: `type:value` entries joined by ", ", where a value holding a
 * comma, quote or other special character is written as a JSON string (Node >= 17.3), so a
 * crafted name cannot pass for two entries.
 */
export function parseSubjectAltNames(text: string): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        break;
      }
      next = j + 1;
    } else {
      const end = text.indexOf(', ', colon + 1);
      next = end < 0 ? text.length : end;
      value = text.slice(colon + 1, next);
    }
    out.push({ type, value });
    if (!text.startsWith(', ', next)) break;
    i = next + 2;
  }
  return out;
}
