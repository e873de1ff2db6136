/**
 * The child process of server/StorageInspection.ts: walks (`inspect DIR MAX_TABLES`) or copies
 * (`copy DIR TARGET MAX_TABLES`) an LMDB environment and reports on stdout, one JSON object per
 * line, written synchronously so the lines before a crash are never lost: `{t: 'table', name}`
 * before each table it reads, then `{t: 'done', result}`. A damaged page may make LMDB abort or
 * crash this process; the parent then names the last table announced. Never writes to `DIR`.
 *
 * What `inspect` checks: every table's records can be read (every page reached, values
 * included), every key is a storage key encoding (runtime/StorageKey.ts), every table name is
 * UTF-8, and every shard group's applied position (`g<g>.meta`) decodes; it returns the
 * positions, so a backup's manifest states what the copy holds.
 */
import { writeSync } from 'node:fs';
import { decodeAppliedPosition, metaTableGroup, APPLIED_KEY } from '../core/cluster/GroupStore.js';
import { decodeKey } from '../runtime/StorageKey.js';
import { copyLmdbEnvironment, openLmdbReadOnly } from '../runtime/node/LmdbSnapshot.js';
import type { InspectionReport } from './StorageInspection.js';

function say(line: object): void {
  writeSync(1, JSON.stringify(line) + '\n');
}

async function inspect(dir: string, maxTables: number): Promise<InspectionReport> {
  const opened = openLmdbReadOnly(dir, maxTables);
  if (!opened.ok) return { ok: false, reason: opened.reason, message: opened.message };
  const env = opened.env;
  try {
    let records = 0;
    const groups: Array<{ group: number; seq: number; msgId: string }> = [];
    const names = env.tableNames();
    for (const name of names) {
      say({ t: 'table', name });
      const group = metaTableGroup(name);
      for (const { key, value } of env.entries(name)) {
        records++;
        const k = decodeKey(key);
        if (k === undefined) return { ok: false, reason: 'corrupt', table: name, message: `table ${name} holds a key that is not a storage key encoding (record ${records})` };
        if (group !== null && k.length === APPLIED_KEY.length && k[0] === APPLIED_KEY[0]) {
          const p = decodeAppliedPosition(value);
          if (p === null) return { ok: false, reason: 'corrupt', table: name, message: `the applied position of shard group ${group} (table ${name}) does not decode` };
          groups.push({ group, ...p });
        }
      }
    }
    groups.sort((a, b) => a.group - b.group);
    return { ok: true, tables: names.length, records, groups };
  } catch (e) {
    // LMDB noticed the damage itself (MDB_PAGE_NOTFOUND, MDB_CORRUPTED, MDB_BAD_TXN …).
    return { ok: false, reason: 'corrupt', message: `LMDB failed reading it: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    await env.close();
  }
}

const [cmd, dir, a, b] = process.argv.slice(2);
if (cmd === 'inspect' && dir !== undefined && a !== undefined) {
  say({ t: 'done', result: await inspect(dir, Number(a)) });
} else if (cmd === 'copy' && dir !== undefined && a !== undefined && b !== undefined) {
  say({ t: 'table', name: '(whole environment, compacting copy)' });
  say({ t: 'done', result: await copyLmdbEnvironment(dir, a, Number(b)) });
} else {
  say({ t: 'done', result: { ok: false, reason: 'usage', message: `storageInspectionChild: unknown arguments ${JSON.stringify(process.argv.slice(2))}` } });
}
