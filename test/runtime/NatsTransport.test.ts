/**
 * The production transport: the ClusterTransport contract (test/support/transportRules.ts, the
 * same rules SimNats passes) on a real 3-server nats-server cluster, and connecting: an
 * unreachable server list is a typed failure; credentials and TLS are used when configured.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connectNats } from '../../runtime/node/NatsTransport.js';
import { freePorts, NatsCluster } from '../support/natsCluster.js';
import { natsTransportHarness, transportRules } from '../support/transportRules.js';

transportRules(() => natsTransportHarness());

test('connecting to servers that do not answer is a typed failure, not an exception', async () => {
  const [port] = await freePorts(1);
  const r = await connectNats({ servers: [`nats://127.0.0.1:${port}`], connectTimeoutMs: 1_000 });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error, 'unreachable');
});

test('credentials are sent when configured, and wrong ones are refused as auth', async () => {
  const c = await NatsCluster.start({ servers: 1, jetstream: false, extraConfig: 'authorization { user: iris, password: s3cret }' });
  try {
    const good = await connectNats({ servers: c.urls, user: 'iris', pass: 's3cret' });
    assert.equal(good.ok, true);
    if (good.ok) await good.transport.close();
    const bad = await connectNats({ servers: c.urls, user: 'iris', pass: 'wrong', connectTimeoutMs: 2_000 });
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.error, 'auth');
  } finally {
    await c.stopAll();
  }
});

test('TLS is required and verified against the configured CA', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-nats-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const c = await NatsCluster.start({ servers: 1, jetstream: false, extraConfig: `tls { cert_file: "${cert}", key_file: "${key}" }` });
  try {
    const r = await connectNats({ servers: c.urls, tls: { caFile: cert } });
    assert.equal(r.ok, true);
    if (r.ok) {
      const got: string[] = [];
      r.transport.subscribe('tls.s', (d) => got.push(new TextDecoder().decode(d)));
      r.transport.publish('tls.s', new TextEncoder().encode('secret'));
      await r.transport.flush();
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((res) => setTimeout(res, 5));
      assert.deepEqual(got, ['secret']);
      await r.transport.close();
    }
    const untrusted = await connectNats({ servers: c.urls, tls: {}, connectTimeoutMs: 2_000 });
    assert.equal(untrusted.ok, false, 'a certificate no CA vouches for is refused');
  } finally {
    await c.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
