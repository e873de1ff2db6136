/**
 * Mutual TLS for clients (tls_client_auth, tls_client_ca_file, tls_client_cert_user_match)
 * with a real CA and real client certificates made by openssl:
 * - TCP TLS port: `required` refuses a client without a certificate or with one from another
 *   CA at the handshake and logs in one from the CA; `optional` also lets a client without
 *   one in; with user matching, the login user must be a name in the certificate.
 * - WSS (uWebSockets.js 20.30): a certificate from another CA fails the handshake, but uWS
 *   cannot say whether a certificate was presented nor whose it is, so where a login needs a
 *   certificate (`required`, or user matching) WSS logins are refused with AUTH_FAILED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { TestPki, selfSigned, type CertFiles } from '../support/TestPki.js';
import { text, utf8 } from '../support/V1TestClient.js';

/** What a client saw: the server's reply to LOGIN as text ('' when none), or the refused handshake. */
type Outcome = { reply: string } | { refused: true };

const LOGIN_OK = new TextDecoder().decode(new Uint8Array([0x03, ...utf8('LOGIN_OK')]));
const AUTH_FAILED = 'AUTH_FAILED';

/** LOGIN as `user` over TLS to the raw port, presenting `cert` (or none). */
function loginOverTls(port: number, user: string, cert: CertFiles | null): Promise<Outcome> {
  return new Promise((resolve) => {
    const bytes: Buffer[] = [];
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(cert !== null ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}) }, () => s.write(encodeLoginPacket(utf8(user))));
    const timer = setTimeout(() => done({ reply: text(Buffer.concat(bytes)) }), 5000);
    s.on('data', (d: Buffer) => {
      bytes.push(d);
      const t = text(Buffer.concat(bytes));
      if (t === LOGIN_OK || t === AUTH_FAILED) done({ reply: t });
    });
    // With TLS 1.3 the server judges the client certificate after the client's handshake is
    // done: the refusal is an alert (or a reset) before any reply.
    s.on('error', () => done(bytes.length === 0 ? { refused: true } : { reply: text(Buffer.concat(bytes)) }));
    s.on('close', () => done(bytes.length === 0 ? { refused: true } : { reply: text(Buffer.concat(bytes)) }));
  });
}

/** LOGIN as `user` over WSS, presenting `cert` (or none). */
function loginOverWss(port: number, user: string, cert: CertFiles | null): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { rejectUnauthorized: false, ...(cert !== null ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}) });
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      resolve(o);
    };
    const timer = setTimeout(() => done({ reply: '' }), 5000);
    ws.on('open', () => ws.send(encodeLoginPacket(utf8(user))));
    ws.on('message', (d: Buffer) => done({ reply: text(d) }));
    ws.on('error', () => done({ refused: true }));
    ws.on('close', () => done({ refused: true }));
  });
}

interface Pki {
  pki: TestPki;
  server: CertFiles;
  ca: CertFiles;
  /** CN=alice from the client CA. */
  alice: CertFiles;
  /** CN=device-7 with subjectAltName email:bob@example.com, from the client CA. */
  bobDevice: CertFiles;
  /** CN=alice from another CA. */
  impostor: CertFiles;
}

function makePki(): Pki {
  const pki = new TestPki();
  const ca = pki.authority('clients');
  const other = pki.authority('other');
  return {
    pki,
    server: selfSigned(pki.dir, 'localhost', 'server'),
    ca,
    alice: pki.client('alice', ca, '/CN=alice/O=Iris test'),
    bobDevice: pki.client('bob-device', ca, '/CN=device-7', ['email:bob@example.com', 'DNS:device-7.example.com']),
    impostor: pki.client('impostor', other, '/CN=alice'),
  };
}

/** A node with TLS and client certificates from `p`; its data directory is inside the PKI's, removed with it. */
async function nodeWith(p: Pki, settings: Record<string, string | boolean>): Promise<TestNode> {
  return startTestNode({ tls_cert_file: p.server.cert, tls_key_file: p.server.key, tls_client_ca_file: p.ca.cert, ...settings }, join(p.pki.dir, 'data'));
}

test('tls_client_auth=required: a certificate from the client CA logs in over TLS; no certificate or one from another CA gets no service', async () => {
  const p = makePki();
  try {
    const t = await nodeWith(p, { tls_client_auth: 'required' });
    try {
      const port = t.node.tcpPort;
      assert.deepEqual(await loginOverTls(port, 'alice', p.alice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(port, 'alice', null), { refused: true });
      assert.deepEqual(await loginOverTls(port, 'alice', p.impostor), { refused: true });
      // WSS: uWS refuses the other CA at the handshake, but cannot prove a certificate was presented.
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'alice', p.impostor), { refused: true });
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'alice', p.alice), { reply: AUTH_FAILED });
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'alice', null), { reply: AUTH_FAILED });
    } finally {
      await t.stop();
    }
  } finally {
    p.pki.remove();
  }
});

test('tls_client_auth=optional: clients without a certificate and with one from the client CA log in; one from another CA is refused', async () => {
  const p = makePki();
  try {
    const t = await nodeWith(p, { tls_client_auth: 'optional' });
    try {
      assert.deepEqual(await loginOverTls(t.node.tcpPort, 'carol', null), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(t.node.tcpPort, 'alice', p.alice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(t.node.tcpPort, 'alice', p.impostor), { refused: true });
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'dave', null), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'alice', p.alice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverWss(t.node.httpPort, 'alice', p.impostor), { refused: true });
    } finally {
      await t.stop();
    }
  } finally {
    p.pki.remove();
  }
});

test('tls_client_cert_user_match: the login user must be the certificate subject CN or one of its subjectAltNames', async () => {
  const p = makePki();
  try {
    const t = await nodeWith(p, { tls_client_auth: 'required', tls_client_cert_user_match: true });
    try {
      const port = t.node.tcpPort;
      assert.deepEqual(await loginOverTls(port, 'alice', p.alice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(port, 'bob@example.com', p.alice), { reply: AUTH_FAILED });
      assert.deepEqual(await loginOverTls(port, 'bob@example.com', p.bobDevice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(port, 'device-7', p.bobDevice), { reply: LOGIN_OK });
      assert.deepEqual(await loginOverTls(port, 'device-7.example.com', p.bobDevice), { reply: LOGIN_OK });
      // Not a name: the organisation, a part of a name, another user.
      assert.deepEqual(await loginOverTls(port, 'Iris test', p.alice), { reply: AUTH_FAILED });
      assert.deepEqual(await loginOverTls(port, 'bob', p.bobDevice), { reply: AUTH_FAILED });
      assert.deepEqual(await loginOverTls(port, 'alice', p.bobDevice), { reply: AUTH_FAILED });
    } finally {
      await t.stop();
    }
  } finally {
    p.pki.remove();
  }
});

test('a tls_client_ca_file that cannot be read or is not a certificate stops the node from starting, naming the key', async () => {
  const p = makePki();
  try {
    await assert.rejects(nodeWith(p, { tls_client_auth: 'required', tls_client_ca_file: `${p.pki.dir}/missing.pem` }), /^Error: tls_client_ca_file: cannot use .*missing\.pem \(ENOENT.*\); point it at the PEM file of the CA that signs client certificates$/);
    await assert.rejects(nodeWith(p, { tls_client_auth: 'required', tls_client_ca_file: p.ca.key }), /^Error: tls_client_ca_file: cannot use .*clients\.key \(.*\); point it at the PEM file/);
  } finally {
    p.pki.remove();
  }
});
