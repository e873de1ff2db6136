/**
 * The folders are the layers and dependencies point downward only: runtime ← actors ← core ←
 * edge ← server ← bin. A layer never imports one above it, nor the tools (sim, bench, test);
 * the tools may import any layer, and nothing imports bin/ (the command line is the top).
 * The check scans every TypeScript source for static imports, re-exports and dynamic imports;
 * the scanner itself is tested on made-up lines, so it is known to fail on a violation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

const root = new URL('../../', import.meta.url).pathname;

/** The layers, lowest first; each may import only those before it (and itself). */
const LAYERS = ['runtime', 'actors', 'core', 'edge', 'server', 'bin'] as const;
/** Folders that may import any layer except bin/ (bin/ itself may import anything). */
const TOOLS = ['sim', 'bench', 'test'] as const;
const FOLDERS: readonly string[] = [...LAYERS, ...TOOLS];

/** Whether code in folder `from` may import from folder `to`. */
function mayImport(from: string, to: string): boolean {
  if (from === to || from === 'bin') return true;
  if (to === 'bin') return false;
  if ((TOOLS as readonly string[]).includes(from)) return true;
  const a = (LAYERS as readonly string[]).indexOf(from);
  const b = (LAYERS as readonly string[]).indexOf(to);
  return a >= 0 && b >= 0 && b < a;
}

/** The module specifiers a source imports (static, type-only, re-exports, dynamic). */
export function importSpecifiers(source: string): string[] {
  // Comments may quote imports: drop block comments and whole-line // comments.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const statement = /(?:^|[;}\n])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"\n]+)['"]/g;
  const dynamic = /\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g;
  for (const re of [statement, dynamic]) for (let m = re.exec(code); m !== null; m = re.exec(code)) out.push(m[1]!);
  return out;
}

/** Upward imports of the file at `file` (relative to the project root) with `source`. */
export function violations(file: string, source: string): string[] {
  const from = file.split(/[\\/]/)[0]!;
  if (!FOLDERS.includes(from)) return [];
  const out: string[] = [];
  for (const spec of importSpecifiers(source)) {
    if (!spec.startsWith('.')) continue; // packages and node: modules
    const target = normalize(join(dirname(file), spec));
    const to = target.split(sep)[0]!;
    if (target.startsWith('..') || !FOLDERS.includes(to)) {
      out.push(`${file} imports ${spec}, outside the layered folders`);
      continue;
    }
    if (!mayImport(from, to)) out.push(`${file} (${from}) imports ${spec} (${to})`);
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

test('the scanner finds static, type-only, multi-line, re-exported and dynamic imports, and ignores commented ones', () => {
  const src = [
    "import { a } from '../edge/A.js';",
    "import type { B } from '../server/B.js';",
    'import {',
    '  c,',
    '  d,',
    "} from '../sim/C.js';",
    "export { e } from '../bench/E.js';",
    "export * from '../test/F.js';",
    // Split so that this file's own source holds no dynamic import of bin/.
    "const g = await imp" + "ort('../bin/G.js');",
    "import '../edge/side-effect.js';",
    "// import { no } from '../edge/No.js';",
    "/* import { no } from '../edge/No.js'; */",
    "import { ok } from './Sibling.js';",
    "import { also } from '../runtime/Env.js';",
    "import assert from 'node:assert/strict';",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src), [
    '../edge/A.js',
    '../server/B.js',
    '../sim/C.js',
    '../bench/E.js',
    '../test/F.js',
    '../edge/side-effect.js',
    './Sibling.js',
    '../runtime/Env.js',
    'node:assert/strict',
    '../bin/G.js',
  ]);
  assert.deepEqual(violations(join('core', 'X.ts'), src), [
    'core/X.ts (core) imports ../edge/A.js (edge)',
    'core/X.ts (core) imports ../server/B.js (server)',
    'core/X.ts (core) imports ../sim/C.js (sim)',
    'core/X.ts (core) imports ../bench/E.js (bench)',
    'core/X.ts (core) imports ../test/F.js (test)',
    'core/X.ts (core) imports ../edge/side-effect.js (edge)',
    'core/X.ts (core) imports ../bin/G.js (bin)',
  ]);
});

test('the rules: each layer imports only those below it; tools import any layer but bin; nothing imports bin', () => {
  const line = (to: string) => `import { x } from '../${to}/X.js';`;
  const allowed = (from: string, to: string) => violations(join(from, 'Y.ts'), line(to)).length === 0;
  assert.deepEqual(
    FOLDERS.map((from) => [from, FOLDERS.filter((to) => allowed(from, to))]),
    [
      ['runtime', ['runtime']],
      ['actors', ['runtime', 'actors']],
      ['core', ['runtime', 'actors', 'core']],
      ['edge', ['runtime', 'actors', 'core', 'edge']],
      ['server', ['runtime', 'actors', 'core', 'edge', 'server']],
      ['bin', ['runtime', 'actors', 'core', 'edge', 'server', 'bin', 'sim', 'bench', 'test']],
      ['sim', ['runtime', 'actors', 'core', 'edge', 'server', 'sim', 'bench', 'test']],
      ['bench', ['runtime', 'actors', 'core', 'edge', 'server', 'sim', 'bench', 'test']],
      ['test', ['runtime', 'actors', 'core', 'edge', 'server', 'sim', 'bench', 'test']],
    ],
  );
});

test('no source imports upward: runtime, actors, core, edge and server import only layers below them, and nothing imports bin/', () => {
  const files = FOLDERS.flatMap((f) => {
    try {
      return sources(f);
    } catch {
      return [];
    }
  });
  assert.ok(files.length > 100, `expected to scan the sources, found ${files.length}`);
  const found = files.flatMap((f) => violations(relative(root, join(root, f)), readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(found, []);
});
