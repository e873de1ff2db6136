/**
 * Child process for the fsync check in test/runtime/LmdbStorage.test.ts: writes one put at a
 * time and prints `ACK n` only after that put's promise resolved. Mode `engine` uses our
 * LmdbStorage; mode `nosync` is raw lmdb-js with `noSync` (the canary that must fail).
 * Usage: node fsyncProbeChild.js engine|nosync <dir> <count>
 */
import { writeSync } from 'node:fs';
import { open } from 'lmdb';
import { openLmdbStorage } from '../../runtime/node/LmdbStorage.js';

const [mode, dir, countArg] = process.argv.slice(2) as [string, string, string];
const count = Number(countArg);
const value = new Uint8Array(150).fill(7);

if (mode === 'engine') {
  const r = openLmdbStorage({ path: dir });
  if (!r.ok) throw new Error(r.message);
  const t = r.engine.table('probe');
  for (let i = 0; i < count; i++) {
    const w = await t.put(['k', i], value);
    if (!w.ok) throw new Error(w.message);
    writeSync(1, `ACK ${i}\n`);
  }
  await r.engine.close();
} else if (mode === 'nosync') {
  const root = open<Buffer, Buffer>({ path: dir, noSync: true, encoding: 'binary', keyEncoding: 'binary' });
  const db = root.openDB<Buffer, Buffer>({ name: 'probe', encoding: 'binary', keyEncoding: 'binary' });
  for (let i = 0; i < count; i++) {
    await db.put(Buffer.from([1, i]), value as Buffer);
    writeSync(1, `ACK ${i}\n`);
  }
  await root.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
