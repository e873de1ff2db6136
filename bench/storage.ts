/**
 * Durable offline store throughput (P6), side by side in one run: the OfflineMailbox on
 * LmdbStorage appending many messages concurrently (group commit, fsync before each ack)
 * against raw lmdb-js puts with the same durability (sync commit, no overlapping sync), the
 * same concurrency and the same stored value size. Each side runs a bounded time per round.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { open } from 'lmdb';
import { OfflineMailbox } from '../core/OfflineMailbox.js';
import { isTmpfs, openLmdbStorage } from '../runtime/node/LmdbStorage.js';
import { cryptoRandom, realClock, realTimers } from '../runtime/node/ProductionEnv.js';
import { silentLogger, type Env } from '../runtime/Env.js';
import { inlineDirtyWork } from '../runtime/InlineDirtyWork.js';

export interface OfflineStoreBenchOptions {
  /** Milliseconds each side runs per round (after a short warm-up). */
  durationMs?: number;
  /** Rounds per side, alternating; the best round counts. */
  rounds?: number;
  /** Writes kept in flight. */
  concurrency?: number;
  /** Payload bytes per message. */
  payloadBytes?: number;
  /** Distinct recipients. */
  users?: number;
}

export interface OfflineStoreBench {
  offline_store_msgs_per_s: number;
  raw_lmdb_durable_puts_per_s: number;
  /** offline_store_msgs_per_s / raw_lmdb_durable_puts_per_s (P6 asks ≥ 0.5). */
  ratio: number;
  /** Bytes of each stored value (the raw side writes values of the same size). */
  value_bytes: number;
  concurrency: number;
  duration_ms_per_round: number;
  rounds: number;
  /** True when `dir` is on tmpfs, where fsync costs nothing and the figures mean little. */
  dir_on_tmpfs: boolean;
}

const SENDER = new TextEncoder().encode('sender01');
/** The mailbox's per-value header: format, kind, sentAtMs, sender length. */
const MAILBOX_VALUE_HEADER_BYTES = 12;

/** Measure both sides under `dir` (subdirectories are created and removed). */
export async function measureOfflineStore(dir: string, opts: OfflineStoreBenchOptions = {}): Promise<OfflineStoreBench> {
  const durationMs = opts.durationMs ?? 2_000;
  const rounds = opts.rounds ?? 2;
  const concurrency = opts.concurrency ?? 10_000;
  const payloadBytes = opts.payloadBytes ?? 150;
  const users = opts.users ?? 1_000;
  const valueBytes = MAILBOX_VALUE_HEADER_BYTES + SENDER.length + payloadBytes;
  mkdirSync(dir, { recursive: true });
  let mailboxBest = 0;
  let rawBest = 0;
  for (let r = 0; r < rounds; r++) {
    rawBest = Math.max(rawBest, await rawPuts(join(dir, `raw-${r}`), durationMs, concurrency, valueBytes, users));
    mailboxBest = Math.max(mailboxBest, await mailboxAppends(join(dir, `mailbox-${r}`), durationMs, concurrency, payloadBytes, users));
  }
  return {
    offline_store_msgs_per_s: Math.round(mailboxBest),
    raw_lmdb_durable_puts_per_s: Math.round(rawBest),
    ratio: Math.round((mailboxBest / rawBest) * 1000) / 1000,
    value_bytes: valueBytes,
    concurrency,
    duration_ms_per_round: durationMs,
    rounds,
    dir_on_tmpfs: isTmpfs(dir),
  };
}

/** Keep `concurrency` operations in flight until the deadline; returns completed ops per second. */
async function drive(concurrency: number, durationMs: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let i = 0;
  let done = 0;
  let counting = false;
  const warmUntil = performance.now() + Math.min(300, durationMs / 4);
  let start = 0;
  let end = 0;
  const lane = async () => {
    for (;;) {
      const now = performance.now();
      if (!counting && now >= warmUntil) {
        counting = true;
        start = now;
        end = now + durationMs;
      }
      if (counting && now >= end) return;
      await op(i++);
      if (counting) done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return done / ((performance.now() - start) / 1000);
}

async function rawPuts(path: string, durationMs: number, concurrency: number, valueBytes: number, users: number): Promise<number> {
  const root = open<Buffer, Buffer>({ path, noSubdir: false, encoding: 'binary', keyEncoding: 'binary', overlappingSync: false, noSync: false, maxDbs: 4 });
  const db = root.openDB<Buffer, Buffer>({ name: 'inbox', encoding: 'binary', keyEncoding: 'binary' });
  const value = Buffer.alloc(valueBytes, 7);
  // A key shaped like the mailbox's (user bytes, then a 16-byte id), rewritten in place:
  // lmdb-js copies the key during put, so the raw side pays no allocation for it.
  const key = Buffer.alloc(32);
  try {
    return await drive(concurrency, durationMs, (i) => {
      key.writeUInt32BE(i % users, 1);
      key.writeUInt32BE(Math.floor(i / 0x1_0000_0000), 10);
      key.writeUInt32BE(i >>> 0, 14);
      return db.put(key, value);
    });
  } finally {
    await root.close();
    rmSync(path, { recursive: true, force: true });
  }
}

async function mailboxAppends(path: string, durationMs: number, concurrency: number, payloadBytes: number, users: number): Promise<number> {
  const opened = openLmdbStorage({ path });
  if (!opened.ok) throw new Error(`bench storage: ${opened.message}`);
  const storage = opened.engine;
  const env: Env = { clock: realClock, timers: realTimers, random: cryptoRandom(), log: silentLogger, dirty: inlineDirtyWork, storage };
  const mb = OfflineMailbox.open(env, { capacityPerUser: Number.MAX_SAFE_INTEGER });
  if (!mb.ok) throw new Error(`bench mailbox: ${mb.message}`);
  const mailbox = mb.mailbox;
  const userIds = Array.from({ length: users }, (_, u) => new TextEncoder().encode(`user-${u}`));
  const payload = new Uint8Array(payloadBytes).fill(7);
  try {
    return await drive(concurrency, durationMs, async (i) => {
      const r = await mailbox.append(userIds[i % users]!, payload, { sender: SENDER, sentAtMs: 0 });
      if (!r.ok) throw new Error(`bench append failed: ${r.reason}: ${r.message}`);
    });
  } finally {
    await storage.close();
    rmSync(path, { recursive: true, force: true });
  }
}
