/**
 * The configuration as every `iris` command reads it: defaults < the JSON file of `--config`
 * < `IRIS_<KEY>` environment variables < flags (`--set key=value` and the command's own
 * shortcuts such as `--data`). `iris start` and the commands that talk to a node or sign
 * tokens resolve the same layers, so a command run with the node's flags and environment
 * sees the node's secret, issuer, ports and data directory.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { layerFromEnv, resolveConfig, type IrisConfig, type RawLayer } from '../server/NodeConfig.js';
import { EXIT_USAGE } from './exitCodes.js';

/** parseArgs options every config-reading command accepts. */
export const CONFIG_FLAG_OPTIONS = {
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
} as const;

/** Flag values as parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export type CliConfigResult = { ok: true; config: IrisConfig; warnings: string[] } | { ok: false; problems: string[] };

/**
 * Resolves the layers. `shortcuts` maps a command's flags to config keys (e.g. ['data',
 * 'wal_directory']); `storageOnTmpfs` is the tmpfs check (only `iris start` needs it).
 */
export function resolveCliConfig(values: FlagValues, shortcuts: ReadonlyArray<readonly [string, keyof IrisConfig]>, storageOnTmpfs?: (dir: string) => boolean): CliConfigResult {
  const layers: Array<[string, RawLayer]> = [];
  const file = values['config'];
  if (typeof file === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      return { ok: false, problems: [`--config ${file}: ${(err as Error).message}`] };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, problems: [`--config ${file}: must hold a JSON object of config keys`] };
    layers.push([file, parsed as RawLayer]);
  }
  layers.push(['environment', layerFromEnv(process.env)]);
  const flags: RawLayer = {};
  for (const [flag, key] of shortcuts) if (values[flag] !== undefined) flags[key] = values[flag];
  const sets = values['set'];
  for (const kv of Array.isArray(sets) ? sets : []) {
    const i = kv.indexOf('=');
    if (i <= 0) return { ok: false, problems: [`--set ${kv}: expected key=value`] };
    flags[kv.slice(0, i)] = kv.slice(i + 1);
  }
  layers.push(['flags', flags]);
  const resolved = resolveConfig(layers, storageOnTmpfs);
  return resolved.ok ? resolved : { ok: false, problems: resolved.problems.map((p) => p.message) };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flags (no positionals), or the parse error's message naming the flag. */
export function parseFlags(argv: readonly string[], options: Options): FlagValues | string {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Prints configuration problems (each names the key and the fix); returns exit code 2. */
export function reportConfigProblems(problems: readonly string[]): number {
  console.error('iris: the configuration is not valid:');
  for (const p of problems) console.error(`  - ${p}`);
  return EXIT_USAGE;
}
