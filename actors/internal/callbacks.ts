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
