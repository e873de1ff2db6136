/**
 * Children for supervisor and application tests: child specs whose processes obey commands
 * and write starts and stops to one shared log, so a test can assert restart and shutdown
 * order, plus a manual clock for restart-intensity arithmetic.
 */
import type { ChildSpec, RestartType, Shutdown, ChildType, StartResult } from '../../actors/Supervisor.js';
import { isExitMessage, type ExitReason } from '../../runtime/ExitReason.js';
import type { Env } from '../../runtime/Env.js';
import type { Pid } from '../../runtime/Pid.js';
import { testEnv } from './kernel.js';

/** Commands a test child obeys (send them with `scheduler.send(pid, cmd, null)`). */
export type ChildCommand = 'crash' | 'normal' | { exit: ExitReason };

export interface TestChildOptions {
  restart?: RestartType;
  shutdown?: Shutdown;
  type?: ChildType;
  /**
   * How the child treats exit signals: not trapped (default, it dies at once); `cleanup`:
   * traps, logs `stop:<id>` (after `cleanupMs`), then exits with the signal's reason;
   * `ignore`: traps, logs `ignored:<id>` and keeps running.
   */
  trap?: 'cleanup' | 'ignore';
  cleanupMs?: number;
  /** Called before each start; return a result to replace the normal start. */
  override?: (attempt: number) => StartResult | undefined;
}

/**
 * A child spec whose process logs `start:<id>` (or `start:<id>:<extra args>`) when started.
 * If the previous copy of this child (same id and args) is still alive when a new one
 * starts, it logs `overlap:<id>` (which no supervisor must ever cause).
 */
export function testChild(id: string, log: string[], opts: TestChildOptions = {}): ChildSpec {
  let attempt = 0;
  const previous = new Map<string, Pid>();
  return {
    id,
    ...(opts.restart !== undefined ? { restart: opts.restart } : {}),
    ...(opts.shutdown !== undefined ? { shutdown: opts.shutdown } : {}),
    ...(opts.type !== undefined ? { type: opts.type } : {}),
    start(ctx, ...extra) {
      const forced = opts.override?.(attempt++);
      if (forced !== undefined) {
        log.push(`refused:${id}`);
        return forced;
      }
      const name = extra.length > 0 ? `${id}:${extra.map(String).join(',')}` : id;
      const before = previous.get(name);
      if (before !== undefined && ctx.isAlive(before)) log.push(`overlap:${name}`);
      log.push(`start:${name}`);
      const pid = ctx.spawnLink(
        (child) => async (msg) => {
          if (msg === 'crash') throw new Error(`${name} crashed`);
          if (msg === 'normal') {
            child.exit('normal');
            return;
          }
          if (isExitMessage(msg)) {
            if (opts.trap === 'ignore') {
              log.push(`ignored:${name}`);
              return;
            }
            if (opts.cleanupMs !== undefined) await child.receive(() => false, opts.cleanupMs);
            log.push(`stop:${name}`);
            child.exit(msg.reason);
            return;
          }
          if (typeof msg === 'object' && msg !== null && 'exit' in msg) child.exit((msg as { exit: ExitReason }).exit);
        },
        { trapExit: opts.trap !== undefined, label: `test-child ${name}` },
      );
      previous.set(name, pid);
      return { ok: true, pid };
    },
  };
}

/** An Env whose monotonic clock only moves when the test says so (timers stay real). */
export function manualClockEnv(): { env: Env; advance(ms: number): void } {
  let now = 1_000_000;
  const base = testEnv();
  return {
    env: { ...base, clock: { monotonicMs: () => now, wallMs: () => now } },
    advance(ms: number) {
      now += ms;
    },
  };
}
