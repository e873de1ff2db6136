/**
 * TLS on both client ports: with a certificate configured, v1 over TLS and over WSS logs in
 * and exchanges messages, and a plaintext client on the TLS port gets no service.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startTestNode } from '../support/irisNode.js';
import { encodeLoginPacket } from '../../edge/protocol/V1Encoder.js';
import { utf8 } from '../support/V1TestClient.js';
import { selfSigned } from '../support/TestPki.js';

const LOGIN_OK = [0x03, ...utf8('LOGIN_OK')];

test('v1 over TLS and WSS logs in; plaintext on the TLS port is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-tls-'));
  const { cert, key } = selfSigned(dir);
  const t = await startTestNode({ tls_cert_file: cert, tls_key_file: key });
  try {
    // TLS on the raw port.
    const got = await new Promise<number[]>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: t.node.tcpPort, rejectUnauthorized: false }, () => s.write(encodeLoginPacket(utf8('tls-alice'))));
      const bytes: number[] = [];
      s.on('data', (d: Buffer) => {
        bytes.push(...d);
        if (bytes.length >= LOGIN_OK.length) {
          s.destroy();
          resolve(bytes);
        }
      });
      s.on('error', reject);
    });
    assert.deepEqual(got, LOGIN_OK);
    // WSS on the HTTP port.
    const wsGot = await new Promise<number[]>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${t.node.httpPort}/ws`, { rejectUnauthorized: false });
      ws.on('open', () => ws.send(encodeLoginPacket(utf8('tls-bob'))));
      ws.on('message', (d: Buffer) => {
        ws.terminate();
        resolve([...d]);
      });
      ws.on('error', reject);
    });
    assert.deepEqual(wsGot, LOGIN_OK);
    // Plaintext on the TLS port: no LOGIN_OK, the connection is closed.
    const plain = await new Promise<{ bytes: number[] }>((resolve) => {
      const s = netConnect(t.node.tcpPort, '127.0.0.1', () => s.write(encodeLoginPacket(utf8('plain'))));
      const bytes: number[] = [];
      s.on('data', (d: Buffer) => bytes.push(...d));
      s.on('close', () => resolve({ bytes }));
      s.on('error', () => {});
      s.setTimeout(5000, () => s.destroy());
    });
    assert.notDeepEqual(plain.bytes.slice(0, LOGIN_OK.length), LOGIN_OK);
  } finally {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
