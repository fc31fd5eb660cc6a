/** Config and stats of one namespace, refreshed on their own while the detail view shows it. */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { AdminApiError, AdminClient, NamespaceConfigDoc, NamespaceStatsDoc } from '../api/admin-client.js';
import { asAdminError } from './use-namespaces.js';

export interface NamespaceDetailState {
  config: NamespaceConfigDoc | null;
  stats: NamespaceStatsDoc | null;
  error: AdminApiError | null;
  refresh: () => void;
}

export function useNamespaceDetail(client: AdminClient, namespace: string | null, intervalMs: number): NamespaceDetailState {
  const [config, setConfig] = useState<NamespaceConfigDoc | null>(null);
  const [stats, setStats] = useState<NamespaceStatsDoc | null>(null);
  const [error, setError] = useState<AdminApiError | null>(null);
  const wake = useRef<() => void>(() => undefined);

  useEffect(() => {
    setConfig(null);
    setStats(null);
    setError(null);
    if (namespace === null) return;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async (): Promise<void> => {
      clearTimeout(timer);
      try {
        const [c, s] = await Promise.all([client.config(namespace), client.stats(namespace)]);
        if (stopped) return;
        setConfig(c);
        setStats(s);
        setError(null);
      } catch (err) {
        if (!stopped) setError(asAdminError(err));
      } finally {
        if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
      }
    };
    wake.current = () => void tick();
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client, namespace, intervalMs]);

  const refresh = useCallback(() => wake.current(), []);
  return { config, stats, error, refresh };
}
