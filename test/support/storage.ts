/**
 * Test support for storage: LMDB directories under the OS temp dir that each test removes,
 * and an Env whose storage is a real LmdbStorage (production clock and crypto randomness).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env, StorageEngine } from '../../runtime/Env.js';
import { openLmdbStorage, type LmdbStorage } from '../../runtime/node/LmdbStorage.js';
import { testEnv } from './kernel.js';

/** A fresh, empty directory; call `remove()` when done (also after a failure). */
export function tempDir(prefix = 'iris-storage-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Open LMDB storage on `dir`, failing the test with LMDB's message when it cannot. */
export function openStorage(dir: string): LmdbStorage {
  const r = openLmdbStorage({ path: dir });
  if (!r.ok) throw new Error(`cannot open storage in ${dir}: ${r.reason}: ${r.message}`);
  return r.engine;
}

/** The test Env with `storage` bound. */
export function storageEnv(storage: StorageEngine): Env {
  return { ...testEnv(), storage };
}
