/**
 * Test support for service tests: real nodes started on demand (each with its overrides, on
 * ports the OS picks) and logged-in v1 clients, all closed and stopped after the file's tests.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from './irisNode.js';
import { V1TestClient } from './V1TestClient.js';

export interface ServiceFixture {
  /** Start a node with `overrides` (stopped after the file's tests). */
  node(overrides?: Record<string, unknown>): Promise<TestNode>;
  /** A TCP client of `n` logged in as `name` (dev mode: no token). */
  user(n: TestNode, name: string): Promise<V1TestClient>;
}

/** Call once at the top of a test file. */
export function serviceFixture(): ServiceFixture {
  const nodes: TestNode[] = [];
  const clients: V1TestClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const n of nodes) await n.stop();
  });
  return {
    async node(overrides = {}) {
      const n = await startTestNode(overrides);
      nodes.push(n);
      return n;
    },
    async user(n, name) {
      const c = await V1TestClient.tcp(n.node.tcpPort);
      clients.push(c);
      assert.equal((await c.login(name)).kind, 'login_ok');
      return c;
    },
  };
}
