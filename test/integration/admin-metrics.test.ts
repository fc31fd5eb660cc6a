/** `GET /metrics` on the admin port: Prometheus text (read with a parser), request and namespace metrics. */
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminTestServer, createNamespace, startAdminServer } from '../helpers/admin.js';
import { startTestServer } from '../helpers/test-server.js';

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
  await createNamespace(srv, 'books');
});

afterAll(async () => {
  await srv?.close();
});

async function scrape(adminUrl?: string): Promise<Map<string, PrometheusFamily>> {
  const res = adminUrl === undefined ? await srv.admin('GET', '/metrics') : await fetch(`${adminUrl}/metrics`).then(async (r) => ({ status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() }));
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

  it('a replica reports its lag behind the primary and whether its stream is up', async () => {
    const primary = await startTestServer({ 'grpc-listen-addr': '127.0.0.1:0' });
    let primaryOpen = true;
    const replica = await startTestServer({ 'primary-grpc-url': `http://127.0.0.1:${primary.server.cluster.grpcAddress!.port}`, 'admin-listen-addr': '127.0.0.1:0' });
    try {
      const adminUrl = `http://127.0.0.1:${replica.server.adminAddress!.port}`;
      const client = srv.client('default', { url: primary.url });
      await client.batch(['CREATE TABLE t (v)', ...Array.from({ length: 10 }, (_, i) => `INSERT INTO t VALUES (${i})`)], 'write');
      const index = Number(primary.server.context.namespaces.peek('default')!.replicationIndex());
      const replicaView = async (): Promise<(number | undefined)[]> => {
        const m = await scrape(adminUrl);
        return ['libsqlctl_namespace_replication_index', 'libsqlctl_namespace_replica_lag_frames', 'libsqlctl_namespace_replica_connected'].map((name) => sample(m, name, { namespace: 'default' }));
      };
      await expect.poll(replicaView, { timeout: 20_000, interval: 100 }).toEqual([index, 0, 1]);
      const listed = (await (await fetch(`${adminUrl}/v1/namespaces`)).json()) as Record<string, unknown>[];
      expect(listed.find((n) => n['name'] === 'default')).toMatchObject({ replica_lag_frames: 0, replication_index: index });
      // the primary has no replica figures of its own
      const onPrimary = await scrape();
      expect([onPrimary.get('libsqlctl_namespace_replica_lag_frames')?.metrics, onPrimary.get('libsqlctl_namespace_replica_connected')?.metrics]).toEqual([[], []]);
      // the primary goes away: the replica says its stream is down
      await primary.close();
      primaryOpen = false;
      await expect.poll(async () => (await replicaView())[2], { timeout: 20_000, interval: 100 }).toBe(0);
    } finally {
      await replica.close();
      if (primaryOpen) await primary.close();
    }
  });
});
