/**
 * Each configuration key is declared once, documented, and is what the code uses: no key is
 * declared by two layers' schemas (NODE_SETTINGS, CORE_SETTINGS, EDGE_SETTINGS, ADMIN_SETTINGS), every key has
 * a one-line doc and a default inside its own bounds, the node's defaults are exactly the
 * layers' defaults, every core and edge key is read by some code (none is declared and then
 * ignored), and the defaults the code falls back on (OfflineMailbox's caps, the rate limiter's
 * defaults, the decoder's input cap) are the schema defaults, not copies of the numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_SCHEMA, DEFAULT_CONFIG, NODE_SETTINGS } from '../../server/NodeConfig.js';
import { CORE_DEFAULTS, CORE_SETTINGS } from '../../core/CoreSettings.js';
import { EDGE_DEFAULTS, EDGE_SETTINGS } from '../../edge/EdgeSettings.js';
import { ADMIN_SETTINGS } from '../../edge/admin/AdminSettings.js';
import { defaultsOf, type SettingSpec } from '../../runtime/Settings.js';
import { OfflineMailbox } from '../../core/OfflineMailbox.js';
import { RATE_LIMITS_DEFAULT } from '../../edge/limits/defaults.js';
import { V1_INPUT_BUFFER_CAP_DEFAULT, V1_MAX_DELIVERY_BYTES } from '../../edge/protocol/v1Limits.js';
import { openStorage, storageEnv, tempDir } from '../support/storage.js';

const root = new URL('../../../', import.meta.url).pathname;
const LAYERS: Array<[string, Readonly<Record<string, SettingSpec>>]> = [
  ['node', NODE_SETTINGS],
  ['core', CORE_SETTINGS],
  ['edge', EDGE_SETTINGS],
  ['admin', ADMIN_SETTINGS],
];

test('no key is declared in two layers, and the node schema is exactly the union of all the layer schemas', () => {
  const owners = new Map<string, string[]>();
  for (const [layer, schema] of LAYERS) for (const key of Object.keys(schema)) owners.set(key, [...(owners.get(key) ?? []), layer]);
  assert.deepEqual(
    [...owners].filter(([, o]) => o.length > 1),
    [],
  );
  assert.deepEqual(Object.keys(CONFIG_SCHEMA).sort(), [...owners.keys()].sort());
});

test('every key has a one-line doc and a default inside its bounds', () => {
  const problems: string[] = [];
  for (const [layer, schema] of LAYERS) {
    for (const [key, spec] of Object.entries(schema)) {
      if (spec.doc.trim().length < 10 || spec.doc.includes('\n')) problems.push(`${layer}.${key}: doc ${JSON.stringify(spec.doc)}`);
      if (spec.kind === 'int' && !(Number.isInteger(spec.default) && spec.default >= spec.min && spec.default <= spec.max)) problems.push(`${layer}.${key}: default ${spec.default} outside ${spec.min}..${spec.max}`);
      if (spec.kind === 'enum' && !spec.values.includes(spec.default)) problems.push(`${layer}.${key}: default ${spec.default} not one of ${spec.values.join(', ')}`);
    }
  }
  assert.deepEqual(problems, []);
});

test("the node's defaults are the layers' defaults", () => {
  assert.deepEqual({ ...DEFAULT_CONFIG }, { ...defaultsOf(NODE_SETTINGS), ...CORE_DEFAULTS, ...EDGE_DEFAULTS, ...defaultsOf(ADMIN_SETTINGS) });
});

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

test('every core and edge key is read by the code outside its declaration', () => {
  const declarations = new Set([join('core', 'CoreSettings.ts'), join('edge', 'EdgeSettings.ts'), join('server', 'NodeConfig.ts')]);
  const code = ['server', 'core', 'edge']
    .flatMap(sources)
    .filter((f) => !declarations.has(f))
    .map((f) => readFileSync(join(root, f), 'utf8'))
    .join('\n');
  const unread = [...Object.keys(CORE_SETTINGS), ...Object.keys(EDGE_SETTINGS)].filter((key) => !new RegExp(`\\.${key}\\b`).test(code));
  assert.deepEqual(unread, []);
});

test("the defaults the code falls back on are the schema's: OfflineMailbox caps, the rate limiter, the decoder's input cap, the delivery window floor", async () => {
  const dir = tempDir('iris-config-');
  const storage = openStorage(dir.path);
  try {
    const r = OfflineMailbox.open(storageEnv(storage));
    assert.ok(r.ok);
    assert.deepEqual([r.mailbox.capacityPerUser, r.mailbox.maxBytesPerUser], [CORE_DEFAULTS.inbox_cap, CORE_DEFAULTS.inbox_max_bytes]);
  } finally {
    await storage.close();
    dir.remove();
  }
  assert.deepEqual(
    {
      messages: RATE_LIMITS_DEFAULT.messages,
      connectionsPerIp: RATE_LIMITS_DEFAULT.connectionsPerIp,
      failedLogins: RATE_LIMITS_DEFAULT.failedLogins,
      maxConnections: RATE_LIMITS_DEFAULT.maxConnections,
    },
    {
      messages: { burst: EDGE_DEFAULTS.rate_limit_messages_burst, refill: EDGE_DEFAULTS.rate_limit_messages_per_s, intervalMs: 1000 },
      connectionsPerIp: { burst: EDGE_DEFAULTS.rate_limit_connections_per_ip_burst, refill: EDGE_DEFAULTS.rate_limit_connections_per_ip_per_s, intervalMs: 1000 },
      failedLogins: { burst: EDGE_DEFAULTS.rate_limit_failed_logins, refill: EDGE_DEFAULTS.rate_limit_failed_logins_per_min, intervalMs: 60_000 },
      maxConnections: EDGE_DEFAULTS.max_connections,
    },
  );
  assert.equal(V1_INPUT_BUFFER_CAP_DEFAULT, EDGE_DEFAULTS.max_input_buffer_bytes);
  // One largest delivery must always fit the window.
  assert.ok(EDGE_SETTINGS.delivery_window_bytes.min >= V1_MAX_DELIVERY_BYTES);
});
