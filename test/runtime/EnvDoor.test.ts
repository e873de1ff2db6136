/**
 * The Env door holds: code that must also run in the simulator (runtime kernel, actors,
 * edge, core) never touches real time, randomness, timers, threads, sockets or storage.
 * This complements the lint rule with a check that cannot be switched off by a comment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../../../', import.meta.url).pathname;

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\.now\(/, 'Date.now'],
  [/\bMath\.random\(/, 'Math.random'],
  [/\bperformance\.now\(/, 'performance.now'],
  [/(?<![.\w])setTimeout\(/, 'setTimeout'],
  [/(?<![.\w])setInterval\(/, 'setInterval'],
  [/(?<![.\w])setImmediate\(/, 'setImmediate'],
  [/from ['"](node:)?(net|worker_threads|fs|perf_hooks)['"]/, 'a Node I/O or thread module'],
  [/from ['"]lmdb['"]/, 'lmdb'],
  [/from ['"]@nats-io\//, '@nats-io'],
];

function sources(dir: string, recursive: boolean): string[] {
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(join(root, dir));
  } catch {
    return out;
  }
  for (const name of names) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) {
      // edge/listeners/ holds the production socket adapters (the simulator replaces them).
      if (recursive && rel !== join('edge', 'listeners')) out.push(...sources(rel, true));
    } else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

test('actor, edge, core and kernel code reach time, randomness, timers and I/O only through Env', () => {
  const files = [...sources('runtime', false), ...sources('actors', true), ...sources('edge', true), ...sources('core', true)];
  assert.ok(files.length > 5, 'expected to scan the kernel sources');
  const leaks: string[] = [];
  for (const f of files) {
    const lines = readFileSync(join(root, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (/^\s*(\*|\/\/)/.test(line) || line.includes('// env-ok')) return;
      for (const [re, what] of FORBIDDEN) if (re.test(line)) leaks.push(`${f}:${i + 1} uses ${what}`);
    });
  }
  assert.deepEqual(leaks, []);
});
