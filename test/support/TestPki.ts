/**
 * Throwaway certificates made with `openssl` in a temp directory (P-256 keys, one day):
 * a self-signed server certificate, certificate authorities, and client certificates
 * signed by a CA with a chosen subject and subjectAltNames. `remove()` deletes the directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed certificate for `cn` (a server's, or a CA's) in `dir`. */
export function selfSigned(dir: string, cn = 'localhost', name = 'cert'): CertFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`]);
  return { cert, key };
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'iris-pki-'));
  private serial = 0;

  /** A certificate authority named `name`. */
  authority(name: string): CertFiles {
    return selfSigned(this.dir, `${name} test CA`, name);
  }

  /** A client certificate with subject `subject` (e.g. `/CN=alice`) and optional subjectAltNames (e.g. `email:bob@example.com`), signed by `ca`. */
  client(name: string, ca: CertFiles, subject: string, altNames: readonly string[] = []): CertFiles {
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.pem`);
    const ext = join(this.dir, `${name}.ext`);
    writeFileSync(ext, ['extendedKeyUsage=clientAuth', ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : [])].join('\n') + '\n');
    openssl(['req', ...EC, '-keyout', key, '-out', csr, '-subj', subject]);
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(++this.serial), '-out', cert, '-days', '1', '-extfile', ext]);
    return { cert, key };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
