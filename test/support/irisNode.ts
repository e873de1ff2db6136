/**
 * Starts a real Iris node for a test: temp data directory, ports chosen by the OS, dev mode
 * unless overridden; `stop()` stops it and removes the directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type RawLayer } from '../../server/NodeConfig.js';
import { startIrisNode, type IrisNode } from '../../server/IrisNode.js';

export interface TestNode {
  node: IrisNode;
  dir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestNode(overrides: RawLayer = {}, dir?: string): Promise<TestNode> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'iris-node-'));
  const cfg = resolveConfig([
    ['test', { port: 0, http_port: 0, wal_directory: dataDir, log_level: 'silent', schedulers: 1, router_pool_size: 4, ...overrides }],
  ]);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.problems));
  const r = await startIrisNode(cfg.config);
  if (!r.ok) throw new Error(r.message);
  return {
    node: r.node,
    dir: dataDir,
    async stop(opts = {}) {
      await r.node.stop();
      if (opts.keepData !== true) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
