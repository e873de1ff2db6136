/**
 * Settings schemas: how a layer declares its configuration keys once (kind, bounds, default,
 * one line of documentation) and how raw values (JSON, environment strings, flags) are checked
 * against them. Each layer owns one schema (core/CoreSettings.ts, edge/EdgeSettings.ts, …); the
 * composition root (server/NodeConfig.ts) merges them. Pure: no files, no environment.
 */

/** One configuration key: its type, bounds and default, declared in exactly one place. */
export type SettingSpec =
  | { readonly kind: 'string'; readonly default: string; readonly doc: string }
  | { readonly kind: 'bool'; readonly default: boolean; readonly doc: string }
  | { readonly kind: 'int'; readonly default: number; readonly min: number; readonly max: number; readonly doc: string }
  | { readonly kind: 'enum'; readonly default: string; readonly values: readonly string[]; readonly doc: string }
  /** A list of strings: a JSON array, or comma-separated text from the environment or a flag. */
  | { readonly kind: 'list'; readonly default: readonly string[]; readonly doc: string };

export type SettingsSchema = Readonly<Record<string, SettingSpec>>;

/** The typed values a schema describes (enum keys keep their literal union when declared `as const`). */
export type SettingsOf<S extends SettingsSchema> = {
  -readonly [K in keyof S]: S[K] extends { kind: 'enum'; values: readonly (infer V)[] }
    ? V
    : S[K] extends { kind: 'list' }
      ? readonly string[]
      : S[K] extends { kind: 'int' }
        ? number
        : S[K] extends { kind: 'bool' }
          ? boolean
          : string;
};

/** The defaults of a schema, as a frozen record. */
export function defaultsOf<S extends SettingsSchema>(schema: S): Readonly<SettingsOf<S>> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema)) out[k] = spec.default;
  return Object.freeze(out) as Readonly<SettingsOf<S>>;
}

export interface SettingProblem {
  key: string;
  /** What is wrong and how to fix it, in one sentence, naming the key and where it came from. */
  message: string;
}

export type CoerceResult = { ok: true; value: unknown } | { ok: false; problem: SettingProblem };

/** Check one raw value against its spec; strings (environment, flags) are converted by kind. */
export function coerceSetting(key: string, spec: SettingSpec, v: unknown, source: string): CoerceResult {
  const bad = (why: string): CoerceResult => ({ ok: false, problem: { key, message: `${key} (from ${source}): ${why}` } });
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string') return bad(`must be a string, got ${typeof v}`);
      return { ok: true, value: v };
    case 'bool':
      if (typeof v === 'boolean') return { ok: true, value: v };
      if (v === 'true' || v === '1') return { ok: true, value: true };
      if (v === 'false' || v === '0') return { ok: true, value: false };
      return bad(`must be true or false, got '${String(v)}'`);
    case 'enum':
      if (typeof v === 'string' && spec.values.includes(v)) return { ok: true, value: v };
      return bad(`must be one of ${spec.values.join(', ')}, got '${String(v)}'`);
    case 'int': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isInteger(n)) return bad(`must be a whole number, got '${String(v)}'`);
      if (n < spec.min) return bad(`must be at least ${spec.min}, got ${n}`);
      if (n > spec.max) return bad(`must be at most ${spec.max}, got ${n}`);
      return { ok: true, value: n };
    }
    case 'list': {
      if (typeof v === 'string') return { ok: true, value: v.split(',').map((s) => s.trim()).filter((s) => s !== '') };
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return { ok: true, value: [...(v as string[])] };
      return bad('must be a list of strings (a JSON array, or comma-separated text)');
    }
  }
}
