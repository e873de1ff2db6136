/**
 * `iris node drain`: take a running cluster node out of the cluster through its admin API
 * (`POST /admin/drain`, server/NodeDrain.ts): it refuses new clients, hands its shard groups to
 * the other core nodes, tells its clients node_draining, leaves the cluster and exits. The node
 * refuses when the cluster cannot spare it (`would_lose_quorum`, exit 3, the message says what
 * is missing) or when it runs alone (`not_clustered`, exit 3). With `--wait` the command follows
 * the drain (`GET /admin/drain`), prints each step, and exits 0 once the node has left, 1 if
 * the drain ended with an error (shard groups that had to fail over), stopped answering before
 * it handed everything off, or did not finish within `--timeout`.
 */
import type { DrainStatus } from '../edge/admin/DrainAdmin.js';
import { ADMIN_CLIENT_FLAG_OPTIONS, ADMIN_CLIENT_SHORTCUTS, ADMIN_CLIENT_USAGE, adminTarget, callAdmin, reportRefusal, type AdminTarget } from './adminClient.js';
import { parseFlags, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exitCodes.js';

/** How often `--wait` asks the node how its drain goes. */
export const DRAIN_POLL_MS = 200;
/** `--wait` gives up after this long without --timeout (seconds). */
export const DRAIN_WAIT_DEFAULT_S = 600;

export const NODE_USAGE = `  node drain    drain a cluster node: refuse new clients, hand its shard groups to the other
                core nodes, tell its clients to reconnect elsewhere (node_draining), leave the
                cluster and exit; refused (exit 3) if the nodes left would lose their majority
          --wait             follow the drain until the node has left (exit 1 on a problem)
          --timeout S        with --wait: give up after S seconds (default ${DRAIN_WAIT_DEFAULT_S})
          --json             print the node's JSON answers (one per line)
${ADMIN_CLIENT_USAGE}`;

/** `iris node <sub> …`; returns the exit code. */
export async function nodeCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'drain') return usage(sub === undefined ? 'missing subcommand: drain' : `unknown subcommand '${sub}': drain`);
  const values = parseFlags(rest, { ...ADMIN_CLIENT_FLAG_OPTIONS, wait: { type: 'boolean' }, timeout: { type: 'string' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage(values);
  let timeoutS = DRAIN_WAIT_DEFAULT_S;
  if (typeof values['timeout'] === 'string') {
    timeoutS = Number(values['timeout']);
    if (!(Number.isFinite(timeoutS) && timeoutS > 0)) return usage(`--timeout ${values['timeout']}: a number of seconds > 0`);
  }
  const cfg = resolveCliConfig(values, ADMIN_CLIENT_SHORTCUTS);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const target = adminTarget(values, cfg.config);
  if (!target.ok) return reportConfigProblems([target.message]);
  const json = values['json'] === true;
  const answer = await callAdmin(target.target, 'POST', '/admin/drain', {});
  if (!answer.ok) {
    console.error(`iris: ${answer.message}`);
    return EXIT_FAILURE;
  }
  if (answer.status !== 200 && answer.status !== 202) return reportRefusal(answer.status, answer.body);
  const first = answer.body as unknown as DrainStatus;
  if (json) console.log(JSON.stringify(first));
  else console.log(`${answer.status === 202 ? 'drain started' : 'drain already under way'} on ${first.node}: ${describe(first)}`);
  if (values['wait'] !== true) return EXIT_OK;
  return follow(target.target, first, timeoutS * 1000, json);
}

/** Poll GET /admin/drain until the node has left (or stops answering), printing each change. */
async function follow(target: AdminTarget, first: DrainStatus, timeoutMs: number, json: boolean): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = first;
  let shown = line(first);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    const a = await callAdmin(target, 'GET', '/admin/drain');
    if (!a.ok) {
      if (a.unreachable !== true) continue;
      // A drained node exits: once it has handed everything off, its silence is the end.
      if (last.state === 'done' || last.state === 'closing_clients') return finished(last, json);
      console.error(`iris: ${last.node} stopped answering while ${last.state === 'handing_off' ? 'handing off its shard groups' : 'serving'}: it may have been stopped or crashed; check /cluster/status of another node`);
      return EXIT_FAILURE;
    }
    if (a.status !== 200) return reportRefusal(a.status, a.body);
    last = a.body as unknown as DrainStatus;
    if (last.state === 'done') return finished(last, json);
    if (line(last) !== shown) {
      shown = line(last);
      if (json) console.log(JSON.stringify(last));
      else console.log(`  ${describe(last)}`);
    }
  }
  console.error(`iris: ${last.node} had not finished draining after ${timeoutMs / 1000} s (${describe(last)})`);
  return EXIT_FAILURE;
}

function finished(s: DrainStatus, json: boolean): number {
  if (json) console.log(JSON.stringify(s));
  else console.log(`drained: ${s.node} has left the cluster${s.elapsed_ms !== null ? ` after ${(s.elapsed_ms / 1000).toFixed(1)} s` : ''}`);
  if (s.error !== null) {
    console.error(`iris: the drain of ${s.node} ended with a problem: ${s.error}`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

/** What changes between two printed lines (not the elapsed time). */
function line(s: DrainStatus): string {
  return `${s.state}/${s.shard_groups_held}/${s.connections}`;
}

function describe(s: DrainStatus): string {
  const steps: Record<DrainStatus['state'], string> = {
    serving: 'serving',
    handing_off: 'handing off shard groups (new clients refused)',
    closing_clients: 'clients told to reconnect elsewhere',
    done: 'done, leaving the cluster',
  };
  const held = s.shard_groups_held === null ? '' : `, ${s.shard_groups_held} shard group(s) held`;
  const at = s.elapsed_ms === null ? '' : ` [${(s.elapsed_ms / 1000).toFixed(1)} s]`;
  return `${steps[s.state]}${held}, ${s.connections} connection(s)${at}${s.error !== null ? `; problem: ${s.error}` : ''}`;
}

function usage(message: string): number {
  console.error(`iris node: ${message}\n\nusage:\n${NODE_USAGE}`);
  return EXIT_USAGE;
}
