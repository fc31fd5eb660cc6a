import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApiError, AdminClient } from '../../src/shell/api/admin-client.js';
import { SqlClient, SqlClientError } from '../../src/shell/api/sql-client.js';
import { ADMIN_KEY, startAdminServer, type AdminTestServer } from '../helpers/admin.js';
import { closedLoopbackPort } from '../helpers/free-port.js';

/**
 * The admin shell's plain clients (src/shell/api/) against a real server: namespaces enabled, the
 * admin API on a free loopback port behind a key, SQL through the user port.
 */

let srv: AdminTestServer;
let admin: AdminClient;
let sql: SqlClient;

beforeAll(async () => {
  srv = await startAdminServer();
  admin = new AdminClient({ baseUrl: srv.adminUrl, authKey: ADMIN_KEY });
  sql = new SqlClient({ baseUrl: srv.url });
});

afterAll(async () => {
  await srv?.close();
});

async function adminError(p: Promise<unknown>): Promise<AdminApiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AdminApiError);
  return err as AdminApiError;
}

describe('AdminClient', () => {
  it('creates namespaces and lists them with their counters', async () => {
    await admin.create('books', { max_db_size: '10MB' });
    expect(await admin.ping()).toBe('Welcome to the sqld admin API');
    const r = await sql.execute('books', 'CREATE TABLE t (a INTEGER, b TEXT)');
    expect(r.kind).toBe('rows');
    await sql.execute('books', "INSERT INTO t VALUES (1, 'one'), (2, NULL)");
    const list = await admin.listNamespaces();
    expect(list.map((n) => n.name)).toEqual(['books', 'default']);
    const books = list[0]!;
    expect(books).toMatchObject({ name: 'books', blockReads: false, blockWrites: false, blockReason: null, backupLagFrames: null });
    expect(books.rowsWrittenCount).toBe(2);
    expect(books.storageBytesUsed).toBeGreaterThan(0);
    expect(books.replicationIndex).toBeGreaterThan(0);
    expect(books.maxDbSizeBytes).toBe(Math.floor(10_000_000 / 4096) * 4096);
    const stats = await admin.stats('books');
    expect(stats.rows_written_count).toBe(2);
    expect(stats.top_queries.length).toBeGreaterThan(0);
  });

  it('changes some settings and keeps the others (sqld clears missing ones on POST)', async () => {
    await admin.updateConfig('books', { txn_timeout_s: 7 });
    await admin.updateConfig('books', { block_writes: true, block_reason: 'maintenance' });
    const cfg = await admin.config('books');
    expect(cfg).toMatchObject({ block_writes: true, block_reads: false, block_reason: 'maintenance', txn_timeout_s: 7, max_db_size: '10.0 MB' });
    const refused = await sql.execute('books', 'INSERT INTO t VALUES (3, NULL)');
    expect(refused).toMatchObject({ kind: 'error', code: 'BLOCKED' });
    expect(refused.kind === 'error' && refused.message).toMatch(/maintenance/);
    const listed = (await admin.listNamespaces()).find((n) => n.name === 'books');
    expect(listed).toMatchObject({ blockWrites: true, blockReason: 'maintenance' });
    await admin.updateConfig('books', { block_reads: false, block_writes: false, block_reason: null, max_db_size: '20MB' });
    expect(await admin.config('books')).toMatchObject({ block_writes: false, block_reason: null, txn_timeout_s: 7, max_db_size: '20.0 MB' });
    expect((await sql.execute('books', 'INSERT INTO t VALUES (3, NULL)')).kind).toBe('rows');
  });

  it('checkpoints, refuses with the server\'s text, deletes', async () => {
    await admin.checkpoint('books');
    const exists = await adminError(admin.create('books'));
    expect(exists).toMatchObject({ code: 'ADMIN_REQUEST_REFUSED', status: 400 });
    expect(exists.message).toContain('Namespace `books` already exists');
    const missing = await adminError(admin.config('nope'));
    expect(missing).toMatchObject({ code: 'ADMIN_NOT_FOUND', status: 404 });
    expect(missing.message).toContain("Namespace `nope` doesn't exist");
    const bad = await adminError(admin.updateConfig('books', { max_db_size: 'lots' }));
    expect(bad.code).toBe('ADMIN_REQUEST_REFUSED');
    await admin.create('scratch');
    await admin.delete('scratch');
    expect((await admin.listNamespaces()).map((n) => n.name)).toEqual(['books', 'default']);
  });

  it('forks a namespace, and reports a refused fork as a readable error', async () => {
    await admin.fork('books', 'books-copy');
    expect((await admin.listNamespaces()).map((n) => n.name)).toContain('books-copy');
    const refused = await admin.fork('books', 'books-copy').then(
      () => 'forked',
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(AdminApiError);
    expect((refused as AdminApiError).status).toBe(400);
    expect((refused as AdminApiError).message).toMatch(/^Namespace `books-copy` already exists/);
    await admin.delete('books-copy');
  });

  it('tells a wrong key (401) from an unreachable server', async () => {
    const wrong = await adminError(new AdminClient({ baseUrl: srv.adminUrl, authKey: 'not-the-key' }).listNamespaces());
    expect(wrong).toMatchObject({ code: 'ADMIN_UNAUTHORIZED', status: 401 });
    const none = await adminError(new AdminClient({ baseUrl: srv.adminUrl }).listNamespaces());
    expect(none.code).toBe('ADMIN_UNAUTHORIZED');
    const port = await closedLoopbackPort();
    const away = await adminError(new AdminClient({ baseUrl: `http://127.0.0.1:${port}` }).listNamespaces());
    expect(away).toMatchObject({ code: 'ADMIN_UNREACHABLE', status: null });
    expect(away.message).toMatch(/ECONNREFUSED/);
  });
});

describe('SqlClient (Hrana over HTTP on the user port)', () => {
  it('returns typed rows as text, statement errors as results', async () => {
    const r = await sql.execute('books', "SELECT a, b, 1.5 AS f, x'0aff' AS bl FROM t ORDER BY a");
    expect(r).toMatchObject({ kind: 'rows', columns: ['a', 'b', 'f', 'bl'] });
    expect(r.kind === 'rows' && r.rows).toEqual([
      ['1', 'one', '1.5', "x'0aff'"],
      ['2', null, '1.5', "x'0aff'"],
      ['3', null, '1.5', "x'0aff'"],
    ]);
    const e = await sql.execute('books', 'SELECT * FROM missing_table');
    expect(e).toMatchObject({ kind: 'error' });
    expect(e.kind === 'error' && e.message).toMatch(/no such table/);
  });

  it('fails with a code for an unknown namespace and an unreachable port', async () => {
    const nf = await sql.execute('nope', 'SELECT 1').catch((err: unknown) => err);
    expect(nf).toBeInstanceOf(SqlClientError);
    expect(nf).toMatchObject({ code: 'SQL_HTTP_ERROR', status: 404 });
    const port = await closedLoopbackPort();
    const away = await new SqlClient({ baseUrl: `http://127.0.0.1:${port}` }).execute('books', 'SELECT 1').catch((err: unknown) => err);
    expect(away).toMatchObject({ code: 'SQL_UNREACHABLE' });
  });
});
