import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, startAdminServer, type AdminTestServer } from '../helpers/admin.js';
import { tempDir } from '../helpers/test-server.js';

/** Namespaces made by the admin API: from dumps, all or nothing, and across a restart. */

const DUMP = [
  'PRAGMA foreign_keys=OFF;',
  'BEGIN TRANSACTION;',
  'CREATE TABLE IF NOT EXISTS books (title TEXT, year INTEGER);',
  "INSERT INTO books VALUES('Dune', 1965);",
  "INSERT INTO books VALUES('Solaris; a novel', 1961);",
  'COMMIT;',
  '',
].join('\n');

let dir: string;
let srv: AdminTestServer;
let dumpServer: http.Server;
let dumpUrl: string;
const dumps = new Map<string, string>();

beforeAll(async () => {
  dir = tempDir('libsqlctl-admin-ns-');
  srv = await startAdminServer({ 'db-path': path.join(dir, 'data.sqld') });
  dumpServer = http.createServer((req, res) => {
    const body = dumps.get(req.url ?? '');
    res.statusCode = body === undefined ? 404 : 200;
    res.end(body ?? 'no such dump');
  });
  await new Promise<void>((resolve) => dumpServer.listen(0, '127.0.0.1', () => resolve()));
  dumpUrl = `http://127.0.0.1:${(dumpServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await srv?.close();
  await new Promise<void>((resolve) => (dumpServer ? dumpServer.close(() => resolve()) : resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

function dbsEntries(): string[] {
  const dbs = path.join(srv.dbPath, 'dbs');
  return fs.existsSync(dbs) ? fs.readdirSync(dbs).sort() : [];
}

function writeDump(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

async function titles(namespace: string, s = srv): Promise<unknown[]> {
  return (await s.client(namespace).execute('SELECT title FROM books ORDER BY year')).rows.map((r) => r['title']);
}

describe('create with dump_url', () => {
  it('loads a file: dump and an http: dump', async () => {
    await createNamespace(srv, 'from-file', { dump_url: `file://${writeDump('good.sql', DUMP)}` });
    expect(await titles('from-file')).toEqual(['Solaris; a novel', 'Dune']);
    dumps.set('/dump.sql', DUMP);
    await createNamespace(srv, 'from-http', { dump_url: `${dumpUrl}/dump.sql` });
    expect(await titles('from-http')).toEqual(['Solaris; a novel', 'Dune']);
  });

  it('refuses dumps that are not one transaction, and bad URLs, with sqld’s texts and no folder left', async () => {
    const cases: [string, string, string][] = [
      ['no-txn', `file://${writeDump('no-txn.sql', 'CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n')}`, 'A dump should execute within a transaction.'],
      ['after-commit', `file://${writeDump('after.sql', 'BEGIN;\nCREATE TABLE t (x);\nCOMMIT;\nINSERT INTO t VALUES (1);\n')}`, 'A dump should execute within a transaction.'],
      ['no-commit', `file://${writeDump('open.sql', 'BEGIN;\nCREATE TABLE t (x);\n')}`, 'The dump should commit the transaction.'],
      ['bad-stmt', `file://${writeDump('bad.sql', 'BEGIN;\nCREATE TABLE t (x);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n')}`, 'Error while loading dump: SQLite error: no such table: nope'],
      ['attach', `file://${writeDump('attach.sql', "BEGIN;\nATTACH 'x.db' AS x;\nCOMMIT;\n")}`, 'Error while loading dump: ATTACH is not permitted in a dump'],
      ['relative', 'file:dumps/x.sql', 'The passed dump file path is not absolute: dumps/x.sql'],
      ['missing', `file://${path.join(dir, 'missing.sql')}`, `The passed dump file path doesn't exist: ${path.join(dir, 'missing.sql')}`],
      ['http-404', `${dumpUrl}/gone.sql`, `Error while loading dump: ${dumpUrl}/gone.sql answered HTTP 404`],
      ['ftp', 'ftp://example.com/x.sql', 'Unsupported dump url scheme: ftp'],
    ];
    for (const [name, url, error] of cases) {
      const r = await srv.admin('POST', `/v1/namespaces/${name}/create`, { dump_url: url });
      expect(r.status, name).toBe(400);
      expect(r.json, name).toEqual({ error });
      expect(dbsEntries(), name).not.toContain(name);
      expect((await srv.admin('GET', `/v1/namespaces/${name}/config`)).status, name).toBe(404);
    }
    const intoDefault = await srv.admin('POST', '/v1/namespaces/default/create', { dump_url: `file://${path.join(dir, 'good.sql')}` });
    expect(intoDefault.json).toEqual({ error: 'Cannot load from a dump if a database already exists.' });
  });
});

describe('namespaces across a restart', () => {
  it('keeps namespaces, their data and their config; --disable-default-namespace refuses requests without one', async () => {
    await createNamespace(srv, 'kept', { max_db_size: '1MB' });
    const db = srv.client('kept');
    await db.execute('CREATE TABLE t (x)');
    await db.execute('INSERT INTO t VALUES (42)');
    await srv.admin('POST', '/v1/namespaces/kept/config', { block_reads: false, block_writes: true, block_reason: 'frozen' });
    // creating `default` again only replaces its settings
    expect((await srv.admin('POST', '/v1/namespaces/default/create', { txn_timeout_s: 3 })).status).toBe(200);
    const before = (await srv.admin('GET', '/v1/namespaces/kept/config')).json;
    await srv.close();

    srv = await startAdminServer({ 'db-path': path.join(dir, 'data.sqld'), 'disable-default-namespace': true });
    expect((await srv.admin('GET', '/v1/namespaces/kept/config')).json).toEqual(before);
    expect(((await srv.admin('GET', '/v1/namespaces/default/config')).json as Record<string, unknown>)['txn_timeout_s']).toBe(3);
    const kept = srv.client('kept');
    expect((await kept.execute('SELECT x FROM t')).rows[0]?.['x']).toBe(42);
    await expect(kept.execute('INSERT INTO t VALUES (1)')).rejects.toMatchObject({ code: 'BLOCKED' });
    expect(await titles('from-file')).toEqual(['Solaris; a novel', 'Dune']);
    const names = ((await srv.admin('GET', '/v1/namespaces')).json as { name: string }[]).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'from-file', 'from-http', 'kept']));
    expect(names).not.toContain('no-txn');

    // a Host without a dot names no namespace (fetch would send 127.0.0.1:<port>, namespace `127`)
    const noNamespace = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: srv.server.httpAddress.port, method: 'POST', path: '/v2/pipeline', headers: { host: 'localhost' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end('{"requests":[]}');
    });
    expect(noNamespace.status).toBe(400);
    expect(JSON.parse(noNamespace.body)).toEqual({ error: 'Invalid host header: `host header should be in the format <namespace>.<...>`' });
  });

  it('removes a folder a create left behind before the name is created again', async () => {
    const leftover = path.join(srv.dbPath, 'dbs', 'half-made');
    fs.mkdirSync(leftover, { recursive: true });
    fs.writeFileSync(path.join(leftover, 'data'), 'not a database');
    expect((await srv.admin('GET', '/v1/namespaces/half-made/config')).status).toBe(404);
    await createNamespace(srv, 'half-made');
    await srv.client('half-made').execute('CREATE TABLE t (x)');
  });

  it('deleting a namespace ends its open transactions', async () => {
    await createNamespace(srv, 'busy-delete');
    const db = srv.client('busy-delete');
    await db.execute('CREATE TABLE t (x)');
    const tx = await db.transaction('write');
    await tx.execute('INSERT INTO t VALUES (1)');
    expect((await srv.admin('DELETE', '/v1/namespaces/busy-delete')).status).toBe(200);
    await expect(tx.execute('SELECT 1')).rejects.toBeInstanceOf(Error);
    tx.close();
    expect(dbsEntries()).not.toContain('busy-delete');
  });
});
