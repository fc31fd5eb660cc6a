/**
 * `GET /metrics` on the admin port (spec §9): Prometheus text from prom-client. Built only when the
 * admin listener is on (prom-client is loaded then, not by every server).
 *
 * - per request of the user port, counted in an onResponse hook: `libsqlctl_http_requests_total`
 *   and `libsqlctl_http_request_duration_seconds` by method, route pattern and status;
 * - per namespace, read at scrape time from the same source as the admin routes (stats-source.ts):
 *   rows read and written, statements, storage bytes, replication index, backup upload lag, and on
 *   a replica its lag behind the primary and whether its stream is up;
 * - the process: prom-client's default metrics (CPU, memory, event loop lag), prefixed `libsqlctl_`.
 */
import type { NamespaceStatsSource } from './stats-source.js';

type PromClient = typeof import('prom-client');

export interface ServerMetrics {
  /** One answered request of the user port. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** The exposition text and its content type. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The metrics of a server; `stats` is read at each scrape. */
export async function createServerMetrics(stats: () => NamespaceStatsSource | null): Promise<ServerMetrics> {
  const prom: PromClient = await import('prom-client');
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry, prefix: 'libsqlctl_' });

  const requests = new prom.Counter({
    name: 'libsqlctl_http_requests_total',
    help: 'Requests answered on the user port, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const durations = new prom.Histogram({
    name: 'libsqlctl_http_request_duration_seconds',
    help: 'Time from a request to its answer on the user port, by method and route pattern.',
    labelNames: ['method', 'route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });

  type Status = ReturnType<NamespaceStatsSource['status']>;
  /** Each namespace's value at scrape time (null: none to report). */
  const values = (read: (s: Status) => number | null): [string, number][] => {
    const source = stats();
    if (source === null) return [];
    return source.names().flatMap((ns): [string, number][] => {
      const v = read(source.status(ns));
      return v === null ? [] : [[ns, v]];
    });
  };
  // Per-namespace values at scrape time; totals the engine keeps are counters set to them.
  const perNamespace = (kind: 'counter' | 'gauge', name: string, help: string, read: (s: Status) => number | null): void => {
    const config = { name, help, labelNames: ['namespace'] as const, registers: [registry] };
    if (kind === 'counter') {
      new prom.Counter({ ...config, collect() { this.reset(); for (const [namespace, v] of values(read)) this.inc({ namespace }, v); } });
    } else {
      new prom.Gauge({ ...config, collect() { this.reset(); for (const [namespace, v] of values(read)) this.set({ namespace }, v); } });
    }
  };
  const counter = (name: string, help: string, read: (s: Status) => number | null): void => perNamespace('counter', name, help, read);
  const gauge = (name: string, help: string, read: (s: Status) => number | null): void => perNamespace('gauge', name, help, read);
  counter('libsqlctl_namespace_rows_read_total', 'Rows read by client statements since the server started.', (s) => s.stats.rowsRead);
  counter('libsqlctl_namespace_rows_written_total', 'Rows written by client statements since the server started.', (s) => s.stats.rowsWritten);
  counter('libsqlctl_namespace_queries_total', 'Client statements run since the server started.', (s) => s.stats.queryCount);
  gauge('libsqlctl_namespace_storage_bytes', 'Size of the database file.', (s) => s.storageBytes);
  gauge('libsqlctl_namespace_replication_index', 'Last frame in the replication log (primary) or applied (replica).', (s) =>
    s.replicationIndex === null ? null : Number(s.replicationIndex),
  );
  gauge('libsqlctl_namespace_backup_upload_lag_frames', 'Frames committed but not yet durable in the backup store.', (s) => s.backupLagFrames);
  gauge('libsqlctl_namespace_replica_lag_frames', 'Replica: frames committed on the primary and not yet applied here.', (s) => s.replicaLagFrames);
  gauge('libsqlctl_namespace_replica_connected', "Replica: 1 while the stream from the primary is up, else 0.", (s) => (s.replicaConnected === null ? null : Number(s.replicaConnected)));

  return {
    observeRequest(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      durations.observe({ method, route }, seconds);
    },
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
