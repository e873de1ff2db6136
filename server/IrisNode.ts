/**
 * Assembles one Iris node from a validated config: the runtime (scheduler threads), durable
 * storage (LMDB in `wal_directory`), the messaging service on top (server/IrisService.ts) and
 * the listeners (raw TCP for v1, uWebSockets.js for `/ws` and HTTP).
 * Every startup failure is a typed result naming what to fix; `stop()` closes in reverse.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import type { IrisConfig } from './NodeConfig.js';
import type { ClientListener } from '../edge/ClientLink.js';
import { startIrisService } from './IrisService.js';
import { metricsText } from './Metrics.js';
import { listenTcp } from '../edge/listeners/TcpListener.js';
import { listenUws, loadNativeUws } from '../edge/listeners/UwsServer.js';
import { openLmdbStorage, type LmdbStorage } from '../runtime/node/LmdbStorage.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';

export interface IrisNode {
  readonly runtime: RuntimeNode;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly config: IrisConfig;
  /** Stop listening, stop every process, flush and close storage. */
  stop(): Promise<void>;
}

export type StartIrisNodeResult = { ok: true; node: IrisNode } | { ok: false; message: string };

export async function startIrisNode(config: IrisConfig): Promise<StartIrisNodeResult> {
  const uws = loadNativeUws();
  if (!uws.ok) return { ok: false, message: uws.reason };
  const opened = openLmdbStorage({ path: config.wal_directory, productionChecks: config.mode === 'production' });
  if (!opened.ok) return { ok: false, message: `wal_directory: ${opened.message}` };
  const storage: LmdbStorage = opened.engine;

  const runtime = await RuntimeNode.start({
    name: config.node_name,
    schedulers: config.schedulers === 0 ? availableParallelism() : config.schedulers,
    logLevel: config.log_level,
  });
  const fail = async (message: string): Promise<StartIrisNodeResult> => {
    await runtime.stop();
    await storage.close();
    return { ok: false, message };
  };
  const started = await startIrisService(runtime.main, runtime.env, storage, config);
  if (!started.ok) return fail(started.message);
  const service = started.service;
  const { accept, health } = service;

  const tls =
    config.tls_cert_file !== '' && config.tls_key_file !== ''
      ? { cert: readFileSync(config.tls_cert_file), key: readFileSync(config.tls_key_file) }
      : undefined;
  let tcp: ClientListener;
  let http: ClientListener;
  try {
    tcp = await listenTcp({ host: config.host, port: config.port, tls }, accept);
  } catch (err) {
    return fail(`port: cannot listen on ${config.host}:${config.port} (${(err as Error).message}); choose another port`);
  }
  try {
    http = await listenUws(
      {
        host: config.host,
        port: config.http_port,
        tls: tls !== undefined ? { keyFile: config.tls_key_file, certFile: config.tls_cert_file } : undefined,
        routes: {
          '/health': () => ({ status: 200, body: JSON.stringify({ ...health(), memory: memoryMb() }) }),
          '/metrics': () => ({ status: 200, contentType: 'text/plain; version=0.0.4', body: metricsText(service) }),
        },
      },
      accept,
    );
  } catch (err) {
    await tcp.close(true);
    return fail(`http_port: cannot listen on ${config.host}:${config.http_port} (${(err as Error).message}); choose another port`);
  }

  let stopped = false;
  return {
    ok: true,
    node: {
      runtime,
      config,
      tcpPort: tcp.port,
      httpPort: http.port,
      async stop() {
        if (stopped) return;
        stopped = true;
        await tcp.close(true);
        await http.close(true);
        await runtime.stop();
        await storage.close();
      },
    },
  };
}

/** The process's memory in /health, in MB: resident, V8 heap used and reserved, buffers outside it. */
export interface NodeMemoryMb {
  rss: number;
  heap_used: number;
  heap_total: number;
  external: number;
}

function memoryMb(): NodeMemoryMb {
  const m = process.memoryUsage();
  const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return { rss: mb(m.rss), heap_used: mb(m.heapUsed), heap_total: mb(m.heapTotal), external: mb(m.external) };
}
