/**
 * docs/errors.md and the code stay in step: every code in CLIENT_ERROR_CODES
 * (edge/ErrorCodes.ts) has exactly one row there with a description, the page names no code
 * the server does not have, and both login texts (AUTH_FAILED, RATE_LIMITED) are described.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CLIENT_ERROR_CODES, LOGIN_TEXT } from '../../edge/ErrorCodes.js';

const page = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The table rows of the page whose first cell is a `code`: [code, the other cells]. */
function rows(section: string): Array<[string, string[]]> {
  const start = page.indexOf(`## ${section}`);
  assert.ok(start >= 0, `docs/errors.md has a "## ${section}" section`);
  const end = page.indexOf('\n## ', start + 1);
  const out: Array<[string, string[]]> = [];
  for (const line of page.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (m !== null) out.push([m[1]!, m[2]!.split('|').map((c) => c.trim())]);
  }
  return out;
}

test('every client error code has exactly one described row in docs/errors.md, and the page lists no other code', () => {
  const documented = rows('Codes');
  const codes = documented.map(([c]) => c);
  assert.deepEqual(
    codes.filter((c, i) => codes.indexOf(c) !== i),
    [],
    'codes documented twice',
  );
  assert.deepEqual(
    CLIENT_ERROR_CODES.filter((c) => !codes.includes(c)),
    [],
    'codes missing from docs/errors.md',
  );
  assert.deepEqual(
    codes.filter((c) => !(CLIENT_ERROR_CODES as readonly string[]).includes(c)),
    [],
    'codes in docs/errors.md the server does not have',
  );
  for (const [code, cells] of documented) assert.ok(cells.length >= 2 && cells.every((c) => c.length > 0) && cells[cells.length - 1]!.length > 20, `${code}: a row with where it is seen and what it means`);
  assert.equal(new Set(CLIENT_ERROR_CODES).size, CLIENT_ERROR_CODES.length, 'CLIENT_ERROR_CODES lists a code twice');
});

test('both login texts are described', () => {
  assert.deepEqual(
    rows('Login texts').map(([t]) => t),
    Object.values(LOGIN_TEXT),
  );
});

test('the checker notices a missing and an unknown code', () => {
  // The same comparison on a changed list: proof that the test above can fail.
  const codes = rows('Codes').map(([c]) => c);
  const withUnknown = [...codes, 'no_such_code'];
  const missingOne = codes.slice(1);
  assert.deepEqual(
    withUnknown.filter((c) => !(CLIENT_ERROR_CODES as readonly string[]).includes(c)),
    ['no_such_code'],
  );
  assert.deepEqual(
    CLIENT_ERROR_CODES.filter((c) => !missingOne.includes(c)),
    [codes[0]],
  );
});
