/**
 * `iris cluster status`: a running node's `/cluster/status` as tables an operator reads at a
 * glance: the members (roles, incarnation, up or draining, shard groups each owns and stands by
 * for, addresses) and every shard group (owner, epoch, standbys with their replication lag in
 * entries, a successor while a hand-off runs, why the record was written, the owner's stream
 * head). `--json` prints the node's body unchanged. The page needs no admin token.
 */
import type { ClusterStatusBody } from '../server/ServiceCore.js';
import { ADMIN_CLIENT_SHORTCUTS, callAdmin, nodeTarget, reportRefusal } from './adminClient.js';
import { CONFIG_FLAG_OPTIONS, parseFlags, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exitCodes.js';

export const CLUSTER_USAGE = `  cluster status  members (roles, incarnations, draining), shard-group owners, standbys with
                  their lag, epochs, from a running node's /cluster/status (no token needed)
          --url URL          the node's HTTP address (default: http://<host>:<http_port> of the config)
          --json             print the node's JSON answer`;

/** `iris cluster <sub> …`; returns the exit code. */
export async function clusterCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'status') return usage(sub === undefined ? 'missing subcommand: status' : `unknown subcommand '${sub}': status`);
  const values = parseFlags(rest, { ...CONFIG_FLAG_OPTIONS, url: { type: 'string' }, node: { type: 'string' }, host: { type: 'string' }, 'http-port': { type: 'string' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage(values);
  const cfg = resolveCliConfig(values, ADMIN_CLIENT_SHORTCUTS);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const target = nodeTarget(values, cfg.config);
  if (!target.ok) return reportConfigProblems([target.message]);
  const answer = await callAdmin(target.target, 'GET', '/cluster/status');
  if (!answer.ok) {
    console.error(`iris: ${answer.message}`);
    return EXIT_FAILURE;
  }
  if (answer.status !== 200) return reportRefusal(answer.status, answer.body);
  if (values['json'] === true) console.log(JSON.stringify(answer.body));
  else console.log(renderClusterStatus(answer.body as unknown as ClusterStatusBody));
  return EXIT_OK;
}

/** The status as text: a heading line, the members table, the shard groups table. */
export function renderClusterStatus(s: ClusterStatusBody): string {
  const owns = new Map<string, number>();
  const backs = new Map<string, number>();
  for (const g of s.groups) {
    if (g.owner !== null) owns.set(g.owner, (owns.get(g.owner) ?? 0) + 1);
    for (const b of g.standbys) backs.set(b, (backs.get(b) ?? 0) + 1);
  }
  const unowned = s.groups.filter((g) => g.owner === null || !s.members.some((m) => m.name === g.owner && m.incarnation === g.owner_incarnation)).length;
  const heading =
    `cluster ${s.cluster}, seen from ${s.node}: ${s.members.length} member(s), ${s.shard_groups} shard groups` +
    (s.safe_mode ? ', SAFE MODE (writes refused)' : '') +
    (unowned > 0 ? `, ${unowned} group(s) without a live owner` : '');
  const members = table(
    ['MEMBER', 'ROLES', 'INCARNATION', 'STATE', 'OWNS', 'STANDBY', 'ADDRESSES'],
    s.members.map((m) => [
      m.name + (m.self ? ' *' : ''),
      m.roles.join(','),
      String(m.incarnation),
      m.draining ? 'draining' : 'up',
      String(owns.get(m.name) ?? 0),
      String(backs.get(m.name) ?? 0),
      Object.entries(m.addresses)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
    ]),
  );
  const groups = table(
    ['GROUP', 'OWNER', 'EPOCH', 'STANDBYS (LAG)', 'SUCCESSOR', 'REASON', 'HEAD'],
    s.groups.map((g) => [
      String(g.group),
      g.owner === null ? '-' : g.owner + (s.members.some((m) => m.name === g.owner && m.incarnation === g.owner_incarnation) ? '' : ' (gone)'),
      g.epoch === null ? '-' : String(g.epoch),
      g.standbys.length === 0 ? '-' : g.standbys.map((b) => `${b} (${lagText(g.standby_lag[b])})`).join(', '),
      g.successor ?? '-',
      g.reason ?? '-',
      g.head_seq === null ? '?' : String(g.head_seq),
    ]),
  );
  return `${heading}\n\n${members}\n\n${groups}\n\n* the node that answered; LAG: entries a standby is behind its owner (? = not reported yet)`;
}

function lagText(lag: number | null | undefined): string {
  return lag === null || lag === undefined ? '?' : String(lag);
}

/** Left-aligned columns separated by two spaces. */
function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: readonly string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n');
}

function usage(message: string): number {
  console.error(`iris cluster: ${message}\n\nusage:\n${CLUSTER_USAGE}`);
  return EXIT_USAGE;
}
