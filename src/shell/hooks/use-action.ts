/**
 * Admin actions (block, checkpoint, fork, …) started from the keyboard: one at a time, each ending
 * in a status line that tells what happened, with the server's own text when it refused.
 */
import { useCallback, useRef, useState } from 'react';
import { asAdminError } from './use-namespaces.js';

export type ActionStatus = { kind: 'busy'; text: string } | { kind: 'ok'; text: string } | { kind: 'error'; text: string } | null;

export interface ActionState {
  status: ActionStatus;
  /** Runs `fn` unless another action is running; `done` text on success; then `after` (a refresh). */
  run: (label: string, fn: () => Promise<void>, done: string, after?: () => void) => void;
  clear: () => void;
}

export function useAction(): ActionState {
  const [status, setStatus] = useState<ActionStatus>(null);
  const busy = useRef(false);
  const run = useCallback((label: string, fn: () => Promise<void>, done: string, after?: () => void) => {
    if (busy.current) return;
    busy.current = true;
    setStatus({ kind: 'busy', text: `${label}…` });
    fn().then(
      () => setStatus({ kind: 'ok', text: done }),
      (err: unknown) => setStatus({ kind: 'error', text: `${label} failed: ${asAdminError(err).message}` }),
    ).finally(() => {
      busy.current = false;
      after?.();
    });
  }, []);
  const clear = useCallback(() => setStatus(null), []);
  return { status, run, clear };
}
