/**
 * The configuration of node process i (1..N) of `iris start --processes N`, derived from the
 * validated configuration of the command: the same keys, client ports and mode, with its own
 * node name (`<node_name>-<i>`) and data directory (`<wal_directory>/node-<i>`, stable across
 * restarts so a restarted process finds its storage), the admin token every process shares
 * (so the admin API answers alike whichever process the shared HTTP port reaches), and, when
 * the command runs the local nats-server, that server's address and token. Pure.
 */
import { join, resolve } from 'node:path';
import type { IrisConfig } from './NodeConfig.js';

/** How the node processes reach the nats-server the command started. */
export interface LocalNatsAccess {
  readonly url: string;
  readonly token: string;
}

/** The name of node process `index`. */
export function nodeProcessName(config: Pick<IrisConfig, 'node_name'>, index: number): string {
  return `${config.node_name}-${index}`;
}

/** The data directory of node process `index`. */
export function nodeProcessDataDir(config: Pick<IrisConfig, 'wal_directory'>, index: number): string {
  return join(resolve(config.wal_directory), `node-${index}`);
}

/** Where the local nats-server keeps its config and JetStream store. */
export function localNatsDir(config: Pick<IrisConfig, 'wal_directory'>): string {
  return join(resolve(config.wal_directory), 'nats');
}

export function nodeProcessConfig(command: IrisConfig, index: number, adminToken: string, nats: LocalNatsAccess | null): IrisConfig {
  return {
    ...command,
    processes: 1,
    node_name: nodeProcessName(command, index),
    wal_directory: nodeProcessDataDir(command, index),
    admin_token: adminToken,
    ...(nats !== null ? { nats_servers: [nats.url], nats_token: nats.token, nats_user: '', nats_password: '', nats_creds_file: '', nats_discover_servers: false } : {}),
  };
}
