/**
 * Process identifiers and unique references.
 *
 * A Pid names the node, the scheduler (and that scheduler's incarnation), a slot and the
 * slot's generation, so a pid kept after its process died never reaches a process that
 * later reuses the slot, nor one on a restarted scheduler. Pids are plain values: they
 * travel inside messages between threads and nodes and compare with `pidEquals`/`key`.
 * A Ref is a node-unique token used for monitors, calls and timers.
 */

export class Pid {
  /** Same-thread shortcut to the live process; cleared when it exits. Never serialised. */
  $p: unknown = undefined;
  private k: string | undefined = undefined;

  constructor(
    readonly node: string,
    readonly sched: number,
    readonly inc: number,
    readonly slot: number,
    readonly gen: number,
  ) {}

  /**
   * A string that is equal for equal pids; use it as a Map key. Built by `join`, which makes
   * one flat string: a template literal leaves a chain of ~9 cons strings (~300 bytes) that
   * every long-lived pid key (links, monitors) would keep.
   */
  get key(): string {
    return (this.k ??= [this.node, '/', this.sched, '.', this.inc, '.', this.slot, '.', this.gen].join(''));
  }

  toString(): string {
    return `<${this.node}.${this.sched}.${this.slot}.${this.gen}>`;
  }

  toJSON(): string {
    return this.toString();
  }
}

export function pidEquals(a: Pid | null | undefined, b: Pid | null | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.slot === b.slot && a.gen === b.gen && a.sched === b.sched && a.inc === b.inc && a.node === b.node;
}

export function isPid(x: unknown): x is Pid {
  return x instanceof Pid;
}

export class Ref {
  private k: string | undefined = undefined;
  constructor(
    readonly node: string,
    readonly sched: number,
    readonly inc: number,
    readonly n: number,
  ) {}

  get key(): string {
    return (this.k ??= [this.node, '/', this.sched, '.', this.inc, '#', this.n].join(''));
  }

  toString(): string {
    return `#Ref<${this.node}.${this.sched}.${this.n}>`;
  }

  toJSON(): string {
    return this.toString();
  }
}

export function refEquals(a: Ref | null | undefined, b: Ref | null | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.n === b.n && a.sched === b.sched && a.inc === b.inc && a.node === b.node;
}

export function isRef(x: unknown): x is Ref {
  return x instanceof Ref;
}
