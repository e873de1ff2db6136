/**
 * A scenario: everything a run depends on besides the code. The seed drives every random
 * stream; the rest says how big the run is and which faults may strike (swarm testing: each
 * run enables a random subset, so rare combinations get their turn). `scenarioFromSeed`
 * derives a whole scenario from one number for `npm run sim -- --seed`; fast-check builds
 * scenarios field by field so a failure shrinks to a small one.
 */
import fc from 'fast-check';
import { CANARY_NAMES, type CanaryName } from '../core/Canaries.js';
import { SimRandom } from './SimRandom.js';

export const FAULT_NAMES = [
  /** Client links: latency up to 200 ms with jitter (order per direction kept). */
  'jitter',
  /** Segments split in pieces. */
  'split',
  /** A link stops moving for a while. */
  'clog',
  /** A client's connection is reset. */
  'reset',
  /** Every client's connection is reset at once; they all reconnect. */
  'storm',
  /** The node is killed (unflushed writes lost) and restarted. */
  'crash',
  /** The node stops for a while (GC pause, stopped VM). */
  'pause',
  /** Node clocks skewed and wall clock jumping back and forth. */
  'clock',
  /** fsync takes 20–500 ms. */
  'slow_disk',
  /** Writes fail with disk_full for a while. */
  'disk_full',
  /** fsyncs fail (io_error) now and then. */
  'fsync_fail',
  /** Clients resend their last SEND_SEQ messages after reconnecting. */
  'duplicate',
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export interface Scenario {
  /** Drives every random stream of the run (32-bit). */
  seed: number;
  /** Simulated clients (≥ 2). */
  clients: number;
  /** Mean messages per second per client. */
  rate: number;
  /** Virtual ms of the safety phase (faults on). */
  safetyMs: number;
  /** Virtual ms after the heal during which clients keep sending (all must get through). */
  livenessSendMs: number;
  /** Enabled faults. */
  faults: FaultName[];
  /** Scheduler domains in the node. */
  schedulers: number;
  /** A planted bug (canary tests only). */
  canary?: CanaryName;
}

export function scenarioFromSeed(seed: number, canary?: CanaryName): Scenario {
  const r = SimRandom.stream(seed, 'scenario');
  const faults = FAULT_NAMES.filter(() => r.chance(0.5));
  const s: Scenario = {
    seed: seed >>> 0,
    clients: r.between(3, 8),
    rate: 1 + r.int(8),
    safetyMs: 4000 + r.int(12) * 1000,
    livenessSendMs: 2000,
    faults,
    schedulers: 1 + r.int(2),
  };
  if (canary !== undefined) s.canary = canary;
  return s;
}

/** Scenarios for fast-check: each field shrinks toward a small, fault-free run. */
export function scenarioArbitrary(opts: { canary?: CanaryName; maxClients?: number } = {}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      seed: fc.integer({ min: 0, max: 0xffffffff }),
      clients: fc.integer({ min: 2, max: opts.maxClients ?? 8 }),
      rate: fc.integer({ min: 1, max: 8 }),
      safetyMs: fc.integer({ min: 1, max: 15 }).map((s) => s * 1000),
      faults: fc.subarray([...FAULT_NAMES]),
      schedulers: fc.integer({ min: 1, max: 2 }),
    })
    .map((x) => {
      const s: Scenario = { ...x, livenessSendMs: 2000 };
      if (opts.canary !== undefined) s.canary = opts.canary;
      return s;
    });
}

/** Parse and check a scenario given as JSON (the CLI's --scenario). */
export function parseScenario(json: string): { ok: true; scenario: Scenario } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    return { ok: false, message: `--scenario: not JSON (${(e as Error).message})` };
  }
  const o = v as Partial<Scenario>;
  const int = (x: unknown, lo: number, hi: number): boolean => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  if (typeof v !== 'object' || v === null) return { ok: false, message: '--scenario: expected an object' };
  if (!int(o.seed, 0, 0xffffffff)) return { ok: false, message: '--scenario: seed must be an integer in [0, 2^32)' };
  if (!int(o.clients, 2, 10_000)) return { ok: false, message: '--scenario: clients must be an integer in [2, 10000]' };
  if (typeof o.rate !== 'number' || !(o.rate > 0 && o.rate <= 1000)) return { ok: false, message: '--scenario: rate must be a number in (0, 1000]' };
  if (!int(o.safetyMs, 0, 3_600_000)) return { ok: false, message: '--scenario: safetyMs must be an integer in [0, 3600000]' };
  if (!int(o.livenessSendMs, 0, 3_600_000)) return { ok: false, message: '--scenario: livenessSendMs must be an integer in [0, 3600000]' };
  if (!int(o.schedulers, 1, 16)) return { ok: false, message: '--scenario: schedulers must be an integer in [1, 16]' };
  if (!Array.isArray(o.faults) || !o.faults.every((f) => (FAULT_NAMES as readonly string[]).includes(f))) return { ok: false, message: `--scenario: faults must be a list of ${FAULT_NAMES.join(', ')}` };
  if (o.canary !== undefined && !CANARY_NAMES.includes(o.canary)) return { ok: false, message: `--scenario: canary must be one of ${CANARY_NAMES.join(', ')}` };
  return { ok: true, scenario: o as Scenario };
}

export function describeScenario(s: Scenario): string {
  return JSON.stringify(s);
}
