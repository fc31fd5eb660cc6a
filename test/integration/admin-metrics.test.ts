/** `GET /metrics` on the admin port: Prometheus text (read with a parser), request and namespace metrics. */
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminTestServer, createNamespace, startAdminServer } from '../helpers/admin.js';

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
  await createNamespace(srv, 'books');
});

afterAll(async () => {
  await srv?.close();
});

async function scrape(): Promise<Map<string, PrometheusFamily>> {
  const res = await srv.admin('GET', '/metrics');
  expect(res.status).toBe(200);
  expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Map(parsePrometheusTextFormat(res.text).map((f) => [f.name, f]));
}

function sample(families: Map<string, PrometheusFamily>, name: string, labels: Record<string, string>): number | undefined {
  const family = families.get(name);
  const found = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return found?.value === undefined ? undefined : Number(found.value);
}

describe('GET /metrics', () => {
  it('counts user requests by route and status, and reports each namespace from the engine', async () => {
    const client = srv.client('books');
    await client.execute('CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT)');
    for (let i = 0; i < 5; i++) await client.execute({ sql: 'INSERT INTO book (title) VALUES (?)', args: [`t${i}`] });
    await client.execute('SELECT * FROM book');
    const before = await scrape();
    const requests = before.get('libsqlctl_http_requests_total');
    expect(requests?.type).toBe('COUNTER');
    const pipeline = requests!.metrics.filter((m) => m.labels?.['route']?.endsWith('/pipeline') === true && m.labels['status'] === '200');
    expect(pipeline.reduce((n, m) => n + Number(m.value), 0)).toBeGreaterThanOrEqual(7);
    expect(before.get('libsqlctl_http_request_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(sample(before, 'libsqlctl_namespace_rows_written_total', { namespace: 'books' })).toBe(5);
    expect(sample(before, 'libsqlctl_namespace_rows_read_total', { namespace: 'books' })).toBeGreaterThanOrEqual(5);
    expect(sample(before, 'libsqlctl_namespace_storage_bytes', { namespace: 'books' })).toBeGreaterThan(0);
    expect(sample(before, 'libsqlctl_namespace_replication_index', { namespace: 'books' })).toBeGreaterThan(0);
    expect(sample(before, 'libsqlctl_namespace_rows_written_total', { namespace: 'default' })).toBe(0);
    // No backups configured: no upload lag to report.
    expect(before.get('libsqlctl_namespace_backup_upload_lag_frames')?.metrics).toEqual([]);
    expect(before.get('libsqlctl_process_resident_memory_bytes')?.type).toBe('GAUGE');

    await client.execute("INSERT INTO book (title) VALUES ('one more')");
    const after = await scrape();
    expect(sample(after, 'libsqlctl_namespace_rows_written_total', { namespace: 'books' })).toBe(6);
    expect(sample(after, 'libsqlctl_namespace_replication_index', { namespace: 'books' })).toBeGreaterThan(sample(before, 'libsqlctl_namespace_replication_index', { namespace: 'books' })!);
  });

  it('needs the admin key like every admin route', async () => {
    expect((await srv.admin('GET', '/metrics', undefined, { authorization: 'Basic wrong' })).status).toBe(401);
  });
});
