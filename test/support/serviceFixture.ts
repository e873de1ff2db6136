/**
 * Test support for service tests: real nodes started on demand (each with its overrides, on
 * ports the OS picks) and logged-in v1 clients, all closed and stopped after the file's tests.
 */
import { after, afterEach, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from './irisNode.js';
import { ClientSet } from './serviceKit.js';
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

/**
 * One node for the whole file (started with `overrides` before its first test) and a ClientSet on
 * it whose clients are closed after each test; the node stops after the file. Call once at the top.
 */
export function sharedNodeClients(overrides: Record<string, unknown> = {}): { readonly clients: ClientSet; node(): TestNode } {
  let t: TestNode | undefined;
  const clients = new ClientSet(
    () => t!.node.tcpPort,
    () => t!.node.httpPort,
  );
  before(async () => {
    t = await startTestNode(overrides);
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await t?.stop();
  });
  return { clients, node: () => t! };
}
