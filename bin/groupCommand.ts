/**
 * `iris group add|remove|promote|demote|roster`: group administration through the running
 * node's admin API (v1 has no opcodes for it). A change is made as the operator, or with
 * `--as` on the authority of one of the group's admins (the protocol's rules then apply); it
 * is answered once durable. Refusals print the groups server's code (not_admin, not_member,
 * last_admin, already_member, group_full, too_many_groups) and exit 3.
 */
import { GROUP_MEMBER_OPS, type GroupMemberOp } from '../edge/admin/GroupsAdmin.js';
import { ADMIN_CLIENT_FLAG_OPTIONS, ADMIN_CLIENT_USAGE, adminRequest } from './adminClient.js';
import { parseFlags } from './configLayers.js';
import { EXIT_OK, EXIT_USAGE } from './exitCodes.js';

export const GROUP_USAGE = `  group add|remove|promote|demote   change a member of a group (answered once durable)
          --gid G            the group id
          --user U           the member to add, remove, promote or demote
          --as A             make the change as admin A of the group (default: as the operator)
          --json             print the node's JSON answer
  group roster  list the members of a group, one per line: user, tab, role
          --gid G            the group id
          --json             print the node's JSON answer
${ADMIN_CLIENT_USAGE}`;

const PAST_TENSE: Readonly<Record<GroupMemberOp, string>> = { add: 'added', remove: 'removed', promote: 'promoted', demote: 'demoted' };

/** `iris group <sub> …`; returns the exit code. */
export async function groupCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const subs = [...GROUP_MEMBER_OPS, 'roster'];
  if (sub === undefined || !subs.includes(sub)) return usage(sub === undefined ? `missing subcommand: ${subs.join(', ')}` : `unknown subcommand '${sub}': ${subs.join(', ')}`);
  const isRoster = sub === 'roster';
  const values = parseFlags(rest, { ...ADMIN_CLIENT_FLAG_OPTIONS, gid: { type: 'string' }, json: { type: 'boolean' }, ...(isRoster ? {} : { user: { type: 'string' }, as: { type: 'string' } }) });
  if (typeof values === 'string') return usage(values);
  const gid = values['gid'];
  if (typeof gid !== 'string' || gid === '') return usage('--gid is required: the group id');
  const user = values['user'];
  if (!isRoster && (typeof user !== 'string' || user === '')) return usage('--user is required: the member to change');
  const as = values['as'];
  if (as !== undefined && (typeof as !== 'string' || as === '')) return usage('--as: an admin of the group (or leave it out to act as the operator)');
  const path = `/admin/groups/${encodeURIComponent(gid)}`;
  const answer = isRoster ? await adminRequest(values, 'GET', path) : await adminRequest(values, 'POST', `${path}/members`, as === undefined ? { op: sub, user } : { op: sub, user, actor: as });
  if (!answer.ok) return answer.exit;
  const b = answer.body;
  if (values['json'] === true) console.log(JSON.stringify(b));
  else if (isRoster) for (const m of (b['members'] as Array<{ user: string; role: string }> | undefined) ?? []) console.log(`${m.user}\t${m.role}`);
  else console.log(`${PAST_TENSE[sub as GroupMemberOp]} ${String(user)} in group ${gid} (as ${typeof as === 'string' ? as : 'the operator'})`);
  return EXIT_OK;
}

function usage(message: string): number {
  console.error(`iris group: ${message}\n\nusage:\n${GROUP_USAGE}`);
  return EXIT_USAGE;
}
