/**
 * Helpers for running behaviour callbacks that may or may not be async: the hot path stays
 * synchronous and only a callback that returns a promise makes its process busy.
 */
import { describeReason, type ExitReason } from '../../runtime/ExitReason.js';

export type Maybe<T> = T | Promise<T>;

export function isPromise(x: unknown): x is Promise<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/** The exit reason of a callback that returned something its behaviour does not accept. */
export function badReturn(value: unknown): ExitReason {
  let text: string;
  try {
    text = describeReason(value as ExitReason);
  } catch {
    text = String(value);
  }
  return { bad_return_value: text };
}

/**
 * Run a callback and pass its result on: synchronously when it returns a value, after it
 * settles when it returns a promise; a throw or a rejection goes to `crash`.
 */
export function runCallback<R>(invoke: () => unknown, apply: (result: unknown) => R, crash: (err: unknown) => R): R | Promise<R> {
  let r: unknown;
  try {
    r = invoke();
  } catch (err) {
    return crash(err);
  }
  return isPromise(r) ? r.then(apply, crash) : apply(r);
}
