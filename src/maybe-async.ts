/**
 * A value now, or a promise of it: for request paths that stay synchronous when nothing has to
 * wait (docs/PERFORMANCE.md, "The synchronous path"). Each turn of the promise queue a request
 * saves is CPU time on the hot path; a path that has to wait simply continues as a promise.
 */
export type MaybePromise<T> = T | Promise<T>;

/** Applies `fn` at once to a value, or once its promise resolves. */
export function andThen<T, U>(value: MaybePromise<T>, fn: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}
