import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, createNamespace, startAdminServer, type AdminTestServer } from '../helpers/admin.js';
import { cliScratch, killAllChildServers, spawnCli, stopChild } from '../helpers/child-server.js';
import { startTestServer } from '../helpers/test-server.js';

/** The admin API (spec §9, docs/ADMIN.md) against a real server: routes, auth, bad input, stats. */

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
});

afterAll(async () => {
  await srv?.close();
  await killAllChildServers();
});

const scratch = cliScratch('libsqlctl-admin-cli-');

function dbsEntries(): string[] {
  const dbs = path.join(srv.dbPath, 'dbs');
  return fs.existsSync(dbs) ? fs.readdirSync(dbs).sort() : [];
}

/** A raw HTTP request (fetch does not let one set Host, and it normalises `..` in paths). */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function userRequest(host: string, body: unknown): Promise<{ status: number; body: string }> {
  return rawRequest(srv.server.httpAddress.port, 'POST', '/v2/pipeline', { host, 'content-type': 'application/json' }, JSON.stringify(body));
}

const selectOne = { requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] };

describe('admin API: listener and key', () => {
  it('is off unless --admin-listen-addr is given', async () => {
    const plain = await startTestServer();
    try {
      expect(plain.server.adminAddress).toBeNull();
    } finally {
      await plain.close();
    }
  });

  it('greets on GET / with the key, in any case of the scheme and with any whitespace', async () => {
    for (const authorization of [`Basic ${ADMIN_KEY}`, `basic ${ADMIN_KEY}`, `BASIC \t ${ADMIN_KEY}`]) {
      const r = await srv.admin('GET', '/', undefined, { authorization });
      expect(r.status).toBe(200);
      expect(r.text).toBe('Welcome to the sqld admin API');
      expect(r.type).toMatch(/^text\/plain/);
    }
  });

  it('answers 401 with an empty body on every route without the right key', async () => {
    const wrong: Record<string, string>[] = [{}, { authorization: 'Basic nope' }, { authorization: `Bearer ${ADMIN_KEY}` }, { authorization: `Basic ${Buffer.from(ADMIN_KEY).toString('base64')}` }, { authorization: ADMIN_KEY }];
    for (const headers of wrong) {
      const res = await fetch(`${srv.adminUrl}/v1/namespaces`, { headers });
      expect(res.status).toBe(401);
      expect(await res.text()).toBe('');
    }
    const create = await fetch(`${srv.adminUrl}/v1/namespaces/sneaky/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(create.status).toBe(401);
    expect(dbsEntries()).not.toContain('sneaky');
    const unknown = await fetch(`${srv.adminUrl}/nothing-here`);
    expect(unknown.status).toBe(401);
  });

  it('takes its address and key from sqld’s variables, and names itself in the banner', async () => {
    const cwd = fs.mkdtempSync(path.join(scratch, 'env-'));
    const child = spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', '--enable-namespaces'], { cwd, env: { SQLD_ADMIN_LISTEN_ADDR: '127.0.0.1:0', LIBSQL_ADMIN_AUTH_KEY: 'from-env' } });
    const [, port] = await child.waitForStdout(/admin API\s+http:\/\/127\.0\.0\.1:(\d+)\s+\(key required\)/);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/namespaces`, { headers: { authorization: 'Basic from-env' } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual([expect.objectContaining({ name: 'default' })]);
    expect(await stopChild(child)).toEqual({ code: 0, signal: null });
  });

  it('answers 404 with an empty body for an unknown route', async () => {
    const r = await srv.admin('GET', '/nothing-here');
    expect(r.status).toBe(404);
    expect(r.text).toBe('');
  });
});

describe('admin API: creating namespaces and selecting them', () => {
  it('creates a namespace that the user API then serves by x-namespace, x-namespace-bin and Host', async () => {
    await createNamespace(srv, 'books');
    const db = srv.client('books');
    await db.execute('CREATE TABLE t (title TEXT)');
    await db.execute("INSERT INTO t VALUES ('Dune')");
    expect((await db.execute('SELECT title FROM t')).rows[0]?.['title']).toBe('Dune');

    const bin = await fetch(`${srv.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'x-namespace-bin': Buffer.from('books').toString('base64').replace(/=+$/, '') },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM t' } }] }),
    });
    expect(bin.status).toBe(200);
    const byHost = await userRequest('books.example.com', { requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM t' } }] });
    expect(byHost.status).toBe(200);
    expect(byHost.body).toContain('"type":"ok"');
    // the default namespace has no such table
    expect((await userRequest(`localhost:${srv.server.httpAddress.port}`, { requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM t' } }] })).body).toContain('no such table');
  });

  it('answers 404 for an unknown namespace on the user API and 400 for a second create', async () => {
    const missing = await userRequest('nowhere.example.com', selectOne);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({ error: 'Namespace `nowhere` doesn\'t exist' });
    await createNamespace(srv, 'twice');
    const again = await srv.admin('POST', '/v1/namespaces/twice/create', {});
    expect(again.status).toBe(400);
    expect(again.json).toEqual({ error: 'Namespace `twice` already exists' });
  });

  it('lets one of two concurrent creates of a name win; the other gets 400', async () => {
    const answers = await Promise.all([srv.admin('POST', '/v1/namespaces/race/create', {}), srv.admin('POST', '/v1/namespaces/race/create', {})]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 400]);
    expect(dbsEntries().filter((n) => n === 'race')).toHaveLength(1);
  });

  it('refuses names that break our rules, leaving nothing behind', async () => {
    const before = dbsEntries();
    for (const dots of ['..', '.']) {
      const r = await rawRequest(srv.server.adminAddress!.port, 'POST', `/v1/namespaces/${dots}/create`, { authorization: `Basic ${ADMIN_KEY}`, 'content-type': 'application/json' }, '{}');
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toEqual({ error: 'Invalid namespace: `the name is "." or contains ".."`' });
    }
    const bad = ['%2F', 'a%2Fb', 'a%5Cb', 'nul%00', 'tab%09', 'x'.repeat(129), 'a..b', 'BOOKS'];
    for (const name of bad) {
      const r = await srv.admin('POST', `/v1/namespaces/${name}/create`, {});
      expect(r.status, name).toBe(400);
      expect((r.json as { error: string }).error, name).toMatch(/^Invalid namespace: `/);
    }
    expect(dbsEntries()).toEqual(before);
    // 128 bytes is the longest name; non-ASCII names count in UTF-8 bytes
    await createNamespace(srv, 'y'.repeat(128));
    expect((await srv.admin('POST', `/v1/namespaces/${encodeURIComponent('é'.repeat(65))}/create`, {})).status).toBe(400);
    await createNamespace(srv, 'ns-with-dash_and:colon');
  });

  it('refuses bodies as sqld does: 415 without a JSON content type, 400 for malformed JSON, 422 for the wrong shape', async () => {
    const noType = await srv.admin('POST', '/v1/namespaces/typeless/create', '{}', { 'content-type': 'text/plain' });
    expect(noType.status).toBe(415);
    expect(noType.text).toBe('Expected request with `Content-Type: application/json`');
    const malformed = await srv.admin('POST', '/v1/namespaces/malformed/create', '{"max_db_size":');
    expect(malformed.status).toBe(400);
    expect(malformed.text).toMatch(/^Failed to parse the request body as JSON: /);
    const shape = await srv.admin('POST', '/v1/namespaces/shape/create', { allow_attach: 'yes' });
    expect(shape.status).toBe(422);
    expect(shape.text).toMatch(/^Failed to deserialize the JSON body into the target type: allow_attach/);
    const size = await srv.admin('POST', '/v1/namespaces/size/create', { max_db_size: '10 parsecs' });
    expect(size.status).toBe(422);
    const key = await srv.admin('POST', '/v1/namespaces/key/create', { jwt_key: 'not a key' });
    expect(key.status).toBe(400);
    expect((key.json as { error: string }).error).toMatch(/^Invalid jwt_key: /);
    for (const name of ['typeless', 'malformed', 'shape', 'size', 'key']) expect(dbsEntries()).not.toContain(name);
  });
});

describe('admin API: config', () => {
  it('reports defaults, applies sqld’s overwrite rules and bumps the config version', async () => {
    await createNamespace(srv, 'cfg', { max_db_size: '10MB', txn_timeout_s: 7, allow_attach: true, durability_mode: 'strong' });
    const first = await srv.admin('GET', '/v1/namespaces/cfg/config');
    expect(first.status).toBe(200);
    expect(first.json).toEqual({
      block_reads: false,
      block_writes: false,
      block_reason: null,
      max_db_size: '10.0 MB',
      heartbeat_url: null,
      jwt_key: null,
      allow_attach: true,
      txn_timeout_s: 7,
      durability_mode: 'strong',
      config_version: 1,
    });
    // block_reason, allow_attach, txn_timeout_s and jwt_key are overwritten; max_db_size and durability_mode kept
    expect((await srv.admin('POST', '/v1/namespaces/cfg/config', { block_reads: false, block_writes: true, block_reason: 'moving' })).status).toBe(200);
    const second = (await srv.admin('GET', '/v1/namespaces/cfg/config')).json as Record<string, unknown>;
    expect(second).toMatchObject({ block_writes: true, block_reason: 'moving', allow_attach: false, txn_timeout_s: null, max_db_size: '10.0 MB', durability_mode: 'strong', config_version: 2 });
    expect((await srv.admin('POST', '/v1/namespaces/cfg/config', { block_reads: false, block_writes: false, max_db_size: 5 * 1024 * 1024 * 1024 })).status).toBe(200);
    const third = (await srv.admin('GET', '/v1/namespaces/cfg/config')).json as Record<string, unknown>;
    expect(third).toMatchObject({ block_writes: false, block_reason: null, max_db_size: '5.4 GB', config_version: 3 });
    expect(((await srv.admin('GET', '/v1/namespaces/default/config')).json as Record<string, unknown>)['max_db_size']).toBe('17.6 TB');
  });

  it('needs block_reads and block_writes, and an existing namespace', async () => {
    const missing = await srv.admin('POST', '/v1/namespaces/cfg/config', { block_reads: true });
    expect(missing.status).toBe(422);
    expect(missing.text).toBe('Failed to deserialize the JSON body into the target type: missing field `block_writes`');
    expect((await srv.admin('GET', '/v1/namespaces/ghost/config')).status).toBe(404);
    const post = await srv.admin('POST', '/v1/namespaces/ghost/config', { block_reads: false, block_writes: false });
    expect(post.status).toBe(404);
    expect(post.json).toEqual({ error: 'Namespace `ghost` doesn\'t exist' });
  });
});

describe('admin API: stats, checkpoint, diagnostics, listing, delete', () => {
  it('counts rows and statements, keeps top and slowest lists, and resets them', async () => {
    await createNamespace(srv, 'busy');
    const db = srv.client('busy');
    await db.execute('CREATE TABLE n (x INTEGER)');
    await db.execute('WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 50) INSERT INTO n SELECT i FROM s');
    await db.execute('SELECT * FROM n');
    const stats = (await srv.admin('GET', '/v1/namespaces/busy/stats')).json as Record<string, unknown>;
    expect(stats).toMatchObject({ rows_read_count: 50, rows_written_count: 50, query_count: 3, write_requests_delegated: 0 });
    expect(stats['storage_bytes_used']).toBeGreaterThanOrEqual(8192);
    expect(stats['replication_index']).toBeGreaterThan(0);
    expect(stats['top_queries']).toEqual(
      expect.arrayContaining([
        { rows_written: 50, rows_read: 0, query: 'WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 50) INSERT INTO n SELECT i FROM s' },
        { rows_written: 0, rows_read: 50, query: 'SELECT * FROM n' },
      ]),
    );
    expect((stats['slowest_queries'] as unknown[]).length).toBe(3);
    expect((await srv.admin('DELETE', '/v1/namespaces/busy/stats/top')).status).toBe(200);
    expect((await srv.admin('DELETE', '/v1/namespaces/busy/stats/slowest')).status).toBe(200);
    const after = (await srv.admin('GET', '/v1/namespaces/busy/stats')).json as Record<string, unknown>;
    expect(after).toMatchObject({ top_queries: [], slowest_queries: [], query_count: 3 });
    const bogus = await srv.admin('DELETE', '/v1/namespaces/busy/stats/fastest');
    expect(bogus.status).toBe(500);
    expect(bogus.json).toEqual({ error: 'Internal Error: `Invalid stats type`' });
    expect((await srv.admin('GET', '/v1/namespaces/ghost/stats')).status).toBe(404);
  });

  it('checkpoints, lists live HTTP streams and every namespace (our extension)', async () => {
    expect((await srv.admin('POST', '/v1/namespaces/busy/checkpoint')).status).toBe(200);
    expect((await srv.admin('POST', '/v1/namespaces/ghost/checkpoint')).status).toBe(404);
    const diagnostics = await srv.admin('GET', '/v1/diagnostics');
    expect(diagnostics.status).toBe(200);
    expect(Array.isArray(diagnostics.json)).toBe(true);
    await srv.admin('POST', '/v1/namespaces/busy/config', { block_reads: false, block_writes: true, block_reason: 'full' });
    const list = (await srv.admin('GET', '/v1/namespaces')).json as Record<string, unknown>[];
    const names = list.map((e) => e['name']);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['books', 'busy', 'default']));
    expect(list.find((e) => e['name'] === 'busy')).toMatchObject({ open: true, rows_written_count: 50, block_reads: false, block_writes: true, block_reason: 'full', config_version: 2, backup_lag_frames: null });
  });

  it('deletes a namespace with its files; then it is 404 everywhere', async () => {
    await createNamespace(srv, 'doomed');
    await srv.client('doomed').execute('CREATE TABLE t (x)');
    expect(dbsEntries()).toContain('doomed');
    expect((await srv.admin('DELETE', '/v1/namespaces/doomed', { keep_backup: true })).status).toBe(200);
    expect(dbsEntries()).not.toContain('doomed');
    expect((await userRequest('doomed.example.com', selectOne)).status).toBe(404);
    const again = await srv.admin('DELETE', '/v1/namespaces/doomed');
    expect(again.status).toBe(404);
    expect(again.json).toEqual({ error: 'Namespace `doomed` doesn\'t exist' });
    // the name is free again
    await createNamespace(srv, 'doomed');
    expect((await srv.client('doomed').execute("SELECT count(*) AS n FROM sqlite_schema WHERE name = 't'")).rows[0]?.['n']).toBe(0);
  });
});
