/**
 * Reading a client certificate's names: Node's subjectaltname text split into entries, with
 * JSON-quoted values (which may hold commas) kept whole so that a crafted name cannot pass
 * for two.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSubjectAltNames } from '../../edge/listeners/ClientCertificate.js';

test('plain entries are split at ", " into type and value', () => {
  assert.deepEqual(parseSubjectAltNames('DNS:a.example, email:bob@example.com, URI:spiffe://x/y, IP Address:127.0.0.1'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'email', value: 'bob@example.com' },
    { type: 'URI', value: 'spiffe://x/y' },
    { type: 'IP Address', value: '127.0.0.1' },
  ]);
});

test('a quoted value with a comma and escapes stays one entry', () => {
  assert.deepEqual(parseSubjectAltNames('DNS:"evil.example, DNS:alice", email:"a\\"b@example.com"'), [
    { type: 'DNS', value: 'evil.example, DNS:alice' },
    { type: 'email', value: 'a"b@example.com' },
  ]);
});

test('empty and malformed text gives what parsed before the fault', () => {
  assert.deepEqual(parseSubjectAltNames(''), []);
  assert.deepEqual(parseSubjectAltNames('nocolon'), []);
  assert.deepEqual(parseSubjectAltNames('DNS:"unterminated'), []);
  assert.deepEqual(parseSubjectAltNames('DNS:a, DNS:"x"junk, DNS:b'), [{ type: 'DNS', value: 'a' }, { type: 'DNS', value: 'x' }]);
});
