/**
 * The live namespace list: `GET /v1/namespaces` every `intervalMs`, on its own. A failure keeps the
 * last list, reports the error (unreachable, 401, …) and the loop goes on retrying.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { AdminApiError, type AdminClient, type NamespaceSummary } from '../api/admin-client.js';

export type ConnectionState =
  | { state: 'connecting' }
  | { state: 'ok'; at: Date }
  | { state: 'error'; error: AdminApiError; since: Date; failures: number };

export interface NamespacesState {
  /** Null until the first answer. */
  namespaces: NamespaceSummary[] | null;
  connection: ConnectionState;
  /** Asks again now (after an action, or a key). */
  refresh: () => void;
}

export function asAdminError(err: unknown): AdminApiError {
  return err instanceof AdminApiError ? err : new AdminApiError('ADMIN_BAD_RESPONSE', err instanceof Error ? err.message : String(err), null, { cause: err });
}

export function useNamespaces(client: AdminClient, intervalMs: number): NamespacesState {
  const [namespaces, setNamespaces] = useState<NamespaceSummary[] | null>(null);
  const [connection, setConnection] = useState<ConnectionState>({ state: 'connecting' });
  const wake = useRef<() => void>(() => undefined);

  useEffect(() => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let inFlight = false;
    let again = false;
    const tick = async (): Promise<void> => {
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      clearTimeout(timer);
      try {
        const list = await client.listNamespaces();
        if (stopped) return;
        setNamespaces(list);
        setConnection({ state: 'ok', at: new Date() });
      } catch (err) {
        if (stopped) return;
        const error = asAdminError(err);
        setConnection((prev) => (prev.state === 'error' ? { state: 'error', error, since: prev.since, failures: prev.failures + 1 } : { state: 'error', error, since: new Date(), failures: 1 }));
      } finally {
        inFlight = false;
        if (!stopped) {
          if (again) {
            again = false;
            void tick();
          } else timer = setTimeout(() => void tick(), intervalMs);
        }
      }
    };
    wake.current = () => void tick();
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client, intervalMs]);

  const refresh = useCallback(() => wake.current(), []);
  return { namespaces, connection, refresh };
}
