/**
 * Node process i of `iris start --processes N` gets the command's configuration with its own
 * name and data directory, the shared admin token, processes = 1 (it runs one node), and the
 * local nats-server's address and token when the command runs one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { resolveConfig } from '../../server/NodeConfig.js';
import { localNatsDir, nodeProcessConfig } from '../../server/NodeProcessConfig.js';

const ADMIN = 'a'.repeat(40);

function command(layer: Record<string, string>) {
  const r = resolveConfig([['flags', { processes: '2', wal_directory: '/var/lib/iris', node_name: 'iris@h1', port: '9000', http_port: '9001', ...layer }]]);
  assert.ok(r.ok);
  return r.config;
}

test('each node process has its own name and data directory, the shared ports and admin token, and runs one node', () => {
  const c = command({});
  const p2 = nodeProcessConfig(c, 2, ADMIN, { url: 'nats://127.0.0.1:4321', token: 'tok' });
  assert.equal(p2.node_name, 'iris@h1-2');
  assert.equal(p2.wal_directory, '/var/lib/iris/node-2');
  assert.equal(p2.processes, 1);
  assert.equal(p2.port, 9000);
  assert.equal(p2.http_port, 9001);
  assert.equal(p2.admin_token, ADMIN);
  assert.deepEqual(p2.nats_servers, ['nats://127.0.0.1:4321']);
  assert.equal(p2.nats_token, 'tok');
  assert.equal(p2.nats_discover_servers, false);
  assert.equal(p2.stream_replicas, 1);
  assert.equal(localNatsDir(c), '/var/lib/iris/nats');
  assert.equal(nodeProcessConfig({ ...c, wal_directory: 'data' }, 1, ADMIN, null).wal_directory, resolve('data', 'node-1'));
});

test('node processes that join nats_servers keep its address and credentials', () => {
  const c = command({ nats_servers: 'nats://10.0.0.1:4222', nats_user: 'u', nats_password: 'p', expected_cluster_nodes: '4' });
  const p1 = nodeProcessConfig(c, 1, ADMIN, null);
  assert.deepEqual(p1.nats_servers, ['nats://10.0.0.1:4222']);
  assert.equal(p1.nats_user, 'u');
  assert.equal(p1.nats_password, 'p');
  assert.equal(p1.expected_cluster_nodes, 4);
});
