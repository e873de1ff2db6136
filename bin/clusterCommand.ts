/**
 * `iris cluster status`: a running node's `/cluster/status` as tables an operator reads at a
 * glance: the members (roles, incarnation, up or draining, shard groups each owns and stands by
 * for, addresses) and every shard group (owner, epoch, standbys with their replication lag in
 * entries, a successor while a hand-off runs, why the record was written, the owner's stream
 * head). `--json` prints the node's body unchanged. The page needs no admin token.
 *
 * `iris cluster wait` polls the same page until the cluster is whole (`settledProblems`: no
 * safe mode, the expected member count, every group owned by a live member with its standbys
 * caught up and no hand-off under way, owners balanced), so a runbook step or a script waits on
 * the state it needs rather than on a sleep; exit 1 with what is still missing at its timeout.
 */
import type { ClusterStatusBody } from '../server/ServiceCore.js';
import { ADMIN_CLIENT_SHORTCUTS, callAdmin, nodeTarget, reportRefusal, type AdminTarget } from './adminClient.js';
import { CONFIG_FLAG_OPTIONS, parseFlags, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exitCodes.js';

/** How often `cluster wait` asks the node. */
export const CLUSTER_WAIT_POLL_MS = 250;
/** `cluster wait` gives up after this long without --timeout (seconds). */
export const CLUSTER_WAIT_DEFAULT_S = 60;

export const CLUSTER_USAGE = `  cluster status  members (roles, incarnations, draining), shard-group owners, standbys with
                  their lag, epochs, from a running node's /cluster/status (no token needed)
          --url URL          the node's HTTP address (default: http://<host>:<http_port> of the config)
          --json             print the node's JSON answer
  cluster wait    wait until the cluster is whole: no safe mode, every member up and not
                  draining, every shard group owned by a live member with min(2, core nodes - 1)
                  standbys caught up and no hand-off under way, owners balanced; exit 1 at the
                  timeout, naming what is missing
          --members N        also wait until exactly N members are up
          --max-lag N        entries a standby may be behind (default 0)
          --timeout S        give up after S seconds (default ${CLUSTER_WAIT_DEFAULT_S})
          --url URL          as for status`;

/** `iris cluster <sub> …`; returns the exit code. */
export async function clusterCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'status' && sub !== 'wait') return usage(sub === undefined ? 'missing subcommand: status or wait' : `unknown subcommand '${sub}': status or wait`);
  const values = parseFlags(rest, {
    ...CONFIG_FLAG_OPTIONS,
    url: { type: 'string' },
    node: { type: 'string' },
    host: { type: 'string' },
    'http-port': { type: 'string' },
    json: { type: 'boolean' },
    ...(sub === 'wait' ? { members: { type: 'string' }, 'max-lag': { type: 'string' }, timeout: { type: 'string' } } : {}),
  } as const);
  if (typeof values === 'string') return usage(values);
  const cfg = resolveCliConfig(values, ADMIN_CLIENT_SHORTCUTS);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const target = nodeTarget(values, cfg.config);
  if (!target.ok) return reportConfigProblems([target.message]);
  if (sub === 'wait') {
    const members = wholeFlag(values['members'], '--members', null, 1);
    const maxLag = wholeFlag(values['max-lag'], '--max-lag', 0, 0);
    const timeoutS = wholeFlag(values['timeout'], '--timeout', CLUSTER_WAIT_DEFAULT_S, 1);
    for (const v of [members, maxLag, timeoutS]) if (typeof v === 'string') return usage(v);
    return waitSettled(target.target, { members: members as number | null, maxLag: maxLag as number }, (timeoutS as number) * 1000);
  }
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

/** What the cluster still lacks to be whole, one line each; empty when it is. */
export function settledProblems(s: ClusterStatusBody, want: { members: number | null; maxLag: number }): string[] {
  const out: string[] = [];
  if (s.safe_mode) out.push(`${s.node} is in safe mode`);
  if (want.members !== null && s.members.length !== want.members) out.push(`${s.members.length} member(s) up, waiting for ${want.members}`);
  for (const m of s.members) if (m.draining) out.push(`${m.name} is draining`);
  const live = (name: string | null, inc?: number | null): boolean => s.members.some((m) => m.name === name && !m.draining && (inc === undefined || m.incarnation === inc));
  const core = s.members.filter((m) => m.roles.includes('core') && !m.draining);
  const standbys = Math.max(0, Math.min(2, core.length - 1));
  const owns = new Map<string, number>(core.map((m) => [m.name, 0]));
  for (const g of s.groups) {
    if (!live(g.owner, g.owner_incarnation)) {
      out.push(`group ${g.group} has no live owner (${g.owner ?? 'none'})`);
      continue;
    }
    owns.set(g.owner!, (owns.get(g.owner!) ?? 0) + 1);
    if (g.head_seq === null) out.push(`group ${g.group}: its owner ${g.owner} has not reported its head`);
    if (g.successor !== null) out.push(`group ${g.group}: hand-off to ${g.successor} under way`);
    if (g.standbys.length !== standbys) out.push(`group ${g.group}: ${g.standbys.length} standby(s), wanted ${standbys}`);
    for (const b of g.standbys) {
      const lag = g.standby_lag[b];
      if (!live(b)) out.push(`group ${g.group}: standby ${b} is not a live member`);
      else if (lag === null || lag === undefined || lag > want.maxLag) out.push(`group ${g.group}: standby ${b} lag ${lag ?? 'unknown'}`);
    }
  }
  if (core.length > 0) {
    const lo = Math.floor(s.shard_groups / core.length);
    const hi = Math.ceil(s.shard_groups / core.length);
    for (const [name, n] of owns) if (n < lo || n > hi) out.push(`${name} owns ${n} group(s), balanced is ${lo === hi ? lo : `${lo}-${hi}`}`);
  }
  return out;
}

/** Poll /cluster/status until `settledProblems` is empty; a node that does not answer is asked again. */
async function waitSettled(target: AdminTarget, want: { members: number | null; maxLag: number }, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last = ['no answer yet'];
  while (Date.now() - t0 < timeoutMs) {
    const answer = await callAdmin(target, 'GET', '/cluster/status');
    if (answer.ok && answer.status === 200) {
      const s = answer.body as unknown as ClusterStatusBody;
      last = settledProblems(s, want);
      if (last.length === 0) {
        console.log(`cluster ${s.cluster} is whole: ${s.members.length} member(s) up, ${s.shard_groups} shard groups owned with their standbys caught up (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        return EXIT_OK;
      }
    } else last = [answer.ok ? `${target.url.href} answered ${answer.status}` : answer.message];
    await new Promise((r) => setTimeout(r, CLUSTER_WAIT_POLL_MS));
  }
  console.error(`iris: the cluster was not whole after ${timeoutMs / 1000} s:\n${last.slice(0, 10).map((l) => `  - ${l}`).join('\n')}${last.length > 10 ? `\n  … and ${last.length - 10} more` : ''}`);
  return EXIT_FAILURE;
}

/** A whole-number flag at least `min` (its default when absent), or the usage message. */
function wholeFlag(v: string | boolean | string[] | undefined, flag: string, dflt: number | null, min: number): number | null | string {
  if (v === undefined) return dflt;
  const n = Number(v);
  return typeof v === 'string' && Number.isInteger(n) && n >= min ? n : `${flag} ${String(v)}: a whole number >= ${min}`;
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
