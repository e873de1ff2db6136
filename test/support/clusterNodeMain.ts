/**
 * Entry of a cluster node child process for tests and benches: starts a RuntimeNode joined to
 * the cluster described by the JSON in argv[2] (optionally with the global name server and a
 * pg scope), prints `READY <incarnation>` on stdout, and stops cleanly on SIGTERM. Test
 * bodies run in it by remote spawn from another node (module-named bodies).
 */
import * as GlobalRegistry from '../../actors/GlobalRegistry.js';
import * as ProcessGroups from '../../actors/ProcessGroups.js';
import { RuntimeNode } from '../../runtime/node/RuntimeNode.js';
import type { ChildNodeOptions } from './clusterNodes.js';

const o = JSON.parse(process.argv[2] ?? '{}') as ChildNodeOptions;
const node = await RuntimeNode.start({
  name: o.name,
  schedulers: o.schedulers ?? 1,
  dirtyThreads: 1,
  logLevel: o.logLevel ?? 'warn',
  cluster: {
    cluster: o.cluster,
    servers: o.servers,
    heartbeatMs: o.heartbeatMs,
    downAfterMs: o.downAfterMs,
    ignoreClusterUpdates: o.ignoreClusterUpdates,
    noRandomize: o.noRandomize,
    roles: o.roles,
  },
});
if (o.global === true && !(await GlobalRegistry.start(node.main)).ok) throw new Error('global name server did not start');
if (o.pgScope !== undefined && !(await ProcessGroups.start(node.main, o.pgScope)).ok) throw new Error('pg scope did not start');
process.stdout.write(`READY ${node.cluster!.self.incarnation}\n`);
process.once('SIGTERM', () => {
  void node.stop().then(() => process.exit(0));
});
