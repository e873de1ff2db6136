/**
 * What a reader on one scheduler can know about a pid without asking anyone: a pid on this
 * scheduler is alive or not for certain; a pid elsewhere must be monitored to find out.
 */
import type { Pid } from '../../runtime/Pid.js';
import { isContext, type Sender } from '../Call.js';

/** True when `pid` lives on `where`'s scheduler and has exited (elsewhere we cannot tell). */
export function knownDead(where: Sender, pid: Pid): boolean {
  const sched = isContext(where) ? where.schedulerId : where.id;
  return pid.node === where.node && pid.sched === sched && !where.isAlive(pid);
}
