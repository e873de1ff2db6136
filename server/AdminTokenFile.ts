/**
 * Where the admin API's token comes from, for the node and for the CLI. The config key
 * `admin_token` wins when set (at least 32 bytes). Otherwise the node keeps a token in
 * `<wal_directory>/admin.token`: created at the first start with 32 random bytes (base64url),
 * mode 0600, and reused afterwards, the way Erlang keeps its cookie; delete the file and
 * restart the node to rotate it. A file that others may read, that is not a regular file, or
 * that belongs to another user is refused rather than used. The CLI reads the same file (it
 * never creates one), so commands on the node's host need no flag.
 */
import { closeSync, fsyncSync, lstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { IrisConfig } from './NodeConfig.js';
import { ADMIN_TOKEN_FILE_MODE, ADMIN_TOKEN_FILE_NAME, ADMIN_TOKEN_GENERATED_BYTES, ADMIN_TOKEN_MIN_BYTES, adminTokenProblem } from '../edge/admin/AdminSettings.js';

export type AdminTokenResult =
  | { readonly ok: true; readonly token: string; /** The file it came from; null when from admin_token. */ readonly file: string | null }
  | { readonly ok: false; readonly message: string };

/** The token file of a node with this config. */
export function adminTokenFilePath(config: Pick<IrisConfig, 'wal_directory'>): string {
  return join(resolve(config.wal_directory), ADMIN_TOKEN_FILE_NAME);
}

/** For the node: admin_token, or the token file (created if missing). Call after the data directory exists. */
export function ensureAdminToken(config: Pick<IrisConfig, 'admin_token' | 'wal_directory'>): AdminTokenResult {
  const problem = adminTokenProblem(config.admin_token);
  if (problem !== undefined) return { ok: false, message: problem };
  if (config.admin_token !== '') return { ok: true, token: config.admin_token, file: null };
  const file = adminTokenFilePath(config);
  const existing = readTokenFile(file);
  if (existing.ok || existing.reason !== 'missing') return existing.ok ? existing : { ok: false, message: existing.message };
  const token = randomBytes(ADMIN_TOKEN_GENERATED_BYTES).toString('base64url');
  let fd: number;
  try {
    // 'wx': create only, never through an existing file or symlink; the mode is set at creation.
    fd = openSync(file, 'wx', ADMIN_TOKEN_FILE_MODE);
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') {
      const raced = readTokenFile(file);
      return raced.ok ? raced : { ok: false, message: raced.message };
    }
    return { ok: false, message: `cannot create the admin token file ${file}: ${(e as Error).message}` };
  }
  try {
    writeSync(fd, `${token}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { ok: true, token, file };
}

/** For the CLI: admin_token, or the token file of the node's data directory (never created here). */
export function readAdminToken(config: Pick<IrisConfig, 'admin_token' | 'wal_directory'>): AdminTokenResult {
  const problem = adminTokenProblem(config.admin_token);
  if (problem !== undefined) return { ok: false, message: problem };
  if (config.admin_token !== '') return { ok: true, token: config.admin_token, file: null };
  const r = readTokenFile(adminTokenFilePath(config));
  if (r.ok) return r;
  const hint = 'pass --admin-token, set IRIS_ADMIN_TOKEN, or point --data at the node\'s data directory';
  return { ok: false, message: r.reason === 'missing' ? `no admin token: ${r.message}; ${hint}` : `${r.message}; ${hint}` };
}

type ReadResult = { ok: true; token: string; file: string } | { ok: false; reason: 'missing' | 'unusable'; message: string };

function readTokenFile(file: string): ReadResult {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(file);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return { ok: false, reason: 'missing', message: `${file} does not exist` };
    return { ok: false, reason: 'unusable', message: `cannot read the admin token file ${file}: ${(e as Error).message}` };
  }
  if (!st.isFile()) return { ok: false, reason: 'unusable', message: `the admin token file ${file} is not a regular file; remove it so the node can create one` };
  if ((st.mode & 0o077) !== 0) {
    return { ok: false, reason: 'unusable', message: `the admin token file ${file} may be read by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}` };
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid() && process.getuid() !== 0) {
    return { ok: false, reason: 'unusable', message: `the admin token file ${file} belongs to another user (uid ${st.uid})` };
  }
  const token = readFileSync(file, 'utf8').trim();
  if (Buffer.byteLength(token, 'utf8') < ADMIN_TOKEN_MIN_BYTES) {
    return { ok: false, reason: 'unusable', message: `the admin token file ${file} holds fewer than ${ADMIN_TOKEN_MIN_BYTES} bytes; delete it and restart the node to have a new one generated` };
  }
  return { ok: true, token, file };
}
