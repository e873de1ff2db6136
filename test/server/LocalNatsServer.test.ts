/**
 * The nats-server `iris start --processes` runs: on loopback, with JetStream and a token a
 * client must present; restarted on the same port with the same token; a server left behind
 * on the same directory (its supervisor was killed) is stopped before a new one starts; an
 * executable that cannot run is refused naming local_nats_server.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalNatsServer } from '../../server/LocalNatsServer.js';
import { alive } from '../support/irisSupervisor.js';

const BINARY = process.env['NATS_SERVER'] ?? 'nats-server';
const dirs: string[] = [];
const servers: LocalNatsServer[] = [];

after(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'iris-local-nats-'));
  dirs.push(d);
  return d;
}

async function start(dir: string): Promise<LocalNatsServer> {
  const r = await LocalNatsServer.start({ binary: BINARY, dir });
  assert.ok(r.ok, r.ok ? '' : r.message);
  servers.push(r.server);
  return r.server;
}

/** The server's INFO, and its answer to CONNECT (with `token` if given) and PING. */
function handshake(port: number, token: string | null): Promise<{ info: Record<string, unknown>; answer: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    let info: Record<string, unknown> | null = null;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer: ${buf}`));
    }, 5_000);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (info === null && buf.includes('\r\n')) {
        info = JSON.parse(buf.slice(5, buf.indexOf('\r\n'))) as Record<string, unknown>;
        buf = buf.slice(buf.indexOf('\r\n') + 2);
        s.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...(token !== null ? { auth_token: token } : {}) })}\r\nPING\r\n`);
      }
      if (info !== null && /PONG|-ERR/.test(buf)) {
        clearTimeout(timer);
        s.destroy();
        resolve({ info, answer: buf.trim() });
      }
    });
  });
}

test('the local nats-server listens on loopback with JetStream and takes only clients with its token; a restart keeps its port and token', async () => {
  const server = await start(tempDir());
  assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const good = await handshake(server.port, server.token);
  assert.equal(good.info['auth_required'], true);
  assert.equal(good.info['jetstream'], true);
  assert.equal(good.info['host'], '127.0.0.1');
  assert.match(good.answer, /PONG/);
  assert.match((await handshake(server.port, null)).answer, /-ERR 'Authorization Violation'/);
  assert.match((await handshake(server.port, 'wrong')).answer, /-ERR 'Authorization Violation'/);

  const first = server.pid;
  process.kill(first, 'SIGKILL');
  await server.exited;
  const again = await server.restart();
  assert.ok(again.ok);
  assert.notEqual(server.pid, first);
  assert.match((await handshake(server.port, server.token)).answer, /PONG/);
});

test('a nats-server left behind on the same directory is stopped before a new one starts there', async () => {
  const dir = tempDir();
  const left = await start(dir);
  const leftPid = left.pid;
  const next = await start(dir);
  assert.ok(!alive(leftPid), 'the server left behind was stopped');
  assert.match((await handshake(next.port, next.token)).answer, /PONG/);
});

test('an executable that cannot run is refused naming local_nats_server and the fix', async () => {
  const r = await LocalNatsServer.start({ binary: '/nonexistent/nats-server', dir: tempDir() });
  assert.ok(!r.ok);
  assert.match(r.message, /^local_nats_server: cannot run '\/nonexistent\/nats-server' .*install nats-server.*set local_nats_server.*nats_servers/);
});
