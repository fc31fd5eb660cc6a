/**
 * State that key handlers can read back at once. Ink may deliver several keys (typed text, then
 * Enter) before React renders again, so a handler that read a rendered value would act on stale
 * state: here `get()` always returns the last value set, and each set still re-renders.
 */
import { useCallback, useReducer, useRef } from 'react';

export type SyncState<T> = readonly [value: T, set: (next: T | ((prev: T) => T)) => void, get: () => T];

export function useSyncState<T>(initial: T | (() => T)): SyncState<T> {
  const ref = useRef<{ v: T } | null>(null);
  if (ref.current === null) ref.current = { v: typeof initial === 'function' ? (initial as () => T)() : initial };
  const [, render] = useReducer((n: number) => n + 1, 0);
  const box = ref.current;
  const set = useCallback((next: T | ((prev: T) => T)) => {
    const v = typeof next === 'function' ? (next as (prev: T) => T)(box.v) : next;
    if (Object.is(v, box.v)) return;
    box.v = v;
    render();
  }, [box]);
  const get = useCallback(() => box.v, [box]);
  return [box.v, set, get] as const;
}
