import { generateKeyPairSync } from 'node:crypto';
import { LibsqlError } from '@libsql/client';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createNamespace, startAdminServer, type AdminTestServer } from '../helpers/admin.js';

/** Namespace config set through the admin API, enforced on the user API (spec §4.7, §3.1). */

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
});

afterAll(async () => {
  await srv?.close();
});

type Msg = Record<string, unknown>;

/** One Hrana-over-WebSocket session on a namespace: hello, then execute statements on one stream. */
async function wsSession(namespace: string, jwt: string | null, statements: string[]): Promise<Msg[]> {
  const ws = new WebSocket(srv.wsUrl, ['hrana2'], { headers: { 'x-namespace': namespace } });
  const inbox: Msg[] = [];
  let wake: (() => void) | null = null;
  ws.on('message', (data: Buffer) => {
    inbox.push(JSON.parse(data.toString('utf8')) as Msg);
    wake?.();
  });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const expected = 1 + (statements.length > 0 ? 1 + statements.length : 0);
  ws.send(JSON.stringify({ type: 'hello', jwt }));
  if (statements.length > 0) {
    ws.send(JSON.stringify({ type: 'request', request_id: 0, request: { type: 'open_stream', stream_id: 1 } }));
    statements.forEach((sql, i) => ws.send(JSON.stringify({ type: 'request', request_id: i + 1, request: { type: 'execute', stream_id: 1, stmt: { sql, want_rows: true } } })));
  }
  const closedEarly = closed.then(() => 'closed' as const);
  while (inbox.length < expected) {
    const woke = new Promise<'message'>((resolve) => (wake = () => resolve('message')));
    if ((await Promise.race([woke, closedEarly])) === 'closed') break;
  }
  ws.close();
  await closed;
  return inbox;
}

async function rejection(p: Promise<unknown>): Promise<LibsqlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LibsqlError);
  return err as LibsqlError;
}

async function setConfig(name: string, config: Record<string, unknown>): Promise<void> {
  const r = await srv.admin('POST', `/v1/namespaces/${name}/config`, { block_reads: false, block_writes: false, ...config });
  expect(r.status, r.text).toBe(200);
}

describe('block_reads and block_writes', () => {
  it('refuse writes (and DDL) with BLOCKED and the reason on every user path; reads go on', async () => {
    await createNamespace(srv, 'blocky');
    const db = srv.client('blocky');
    await db.execute('CREATE TABLE t (x INTEGER)');
    await db.execute('INSERT INTO t VALUES (1)');
    await setConfig('blocky', { block_writes: true, block_reason: 'maintenance' });

    const write = await rejection(db.execute('INSERT INTO t VALUES (2)'));
    expect(write.code).toBe('BLOCKED');
    expect(write.message).toContain('Operation was blocked: maintenance');
    expect((await rejection(db.execute('CREATE TABLE u (y)'))).code).toBe('BLOCKED');
    expect((await db.execute('SELECT count(*) AS n FROM t')).rows[0]?.['n']).toBe(1);

    const legacy = await fetch(`${srv.url}/`, { method: 'POST', headers: { 'x-namespace': 'blocky' }, body: JSON.stringify({ statements: ['INSERT INTO t VALUES (3)'] }) });
    expect(await legacy.json()).toEqual([{ error: 'Operation was blocked: maintenance' }]);
    const v1 = await fetch(`${srv.url}/v1/execute`, { method: 'POST', headers: { 'x-namespace': 'blocky' }, body: JSON.stringify({ stmt: { sql: 'INSERT INTO t VALUES (3)' } }) });
    expect(v1.status).toBe(400);
    expect(await v1.json()).toEqual({ message: 'Operation was blocked: maintenance', code: 'BLOCKED' });

    const [hello, open, insert, select] = await wsSession('blocky', null, ['INSERT INTO t VALUES (4)', 'SELECT x FROM t']);
    expect(hello).toEqual({ type: 'hello_ok' });
    expect(open).toMatchObject({ type: 'response_ok' });
    expect(insert).toMatchObject({ type: 'response_error', error: { code: 'BLOCKED', message: 'Operation was blocked: maintenance' } });
    expect(select).toMatchObject({ type: 'response_ok' });
  });

  it('block_reads refuses reads and transactions too, without a reason when none is given', async () => {
    const db = srv.client('blocky');
    await setConfig('blocky', { block_reads: true });
    const read = await rejection(db.execute('SELECT 1'));
    expect(read.code).toBe('BLOCKED');
    expect(read.message).toMatch(/Operation was blocked$/);
    expect((await rejection(db.execute('INSERT INTO t VALUES (5)'))).code).toBe('BLOCKED');
    expect((await rejection(db.batch(['SELECT 1'], 'read'))).code).toBe('BLOCKED');
    await setConfig('blocky', {});
    expect((await db.execute('SELECT count(*) AS n FROM t')).rows[0]?.['n']).toBe(1);
    await db.execute('INSERT INTO t VALUES (6)');
  });
});

describe('max_db_size', () => {
  it('refuses writes that would grow the database past the limit with SQLITE_FULL; a higher limit lets them in', async () => {
    await createNamespace(srv, 'tiny', { max_db_size: '64KiB' });
    const db = srv.client('tiny');
    await db.execute('CREATE TABLE big (b BLOB)');
    let full: LibsqlError | null = null;
    for (let i = 0; i < 20 && full === null; i++) {
      try {
        await db.execute('INSERT INTO big VALUES (randomblob(8000))');
      } catch (err) {
        full = err as LibsqlError;
      }
    }
    expect(full).toBeInstanceOf(LibsqlError);
    expect(full?.code).toBe('SQLITE_FULL');
    const rows = Number((await db.execute('SELECT count(*) AS n FROM big')).rows[0]?.['n']);
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThan(8);
    await setConfig('tiny', { max_db_size: '10MB' });
    await db.execute('INSERT INTO big VALUES (randomblob(8000))');
    expect(Number((await db.execute('SELECT count(*) AS n FROM big')).rows[0]?.['n'])).toBe(rows + 1);
  });
});

describe('durability_mode and allow_attach', () => {
  it('durability_mode sets PRAGMA synchronous on client connections, also on a change', async () => {
    await createNamespace(srv, 'durable', { durability_mode: 'strong' });
    const db = srv.client('durable');
    expect((await db.execute('PRAGMA synchronous')).rows[0]?.[0]).toBe(2);
    await setConfig('durable', { durability_mode: 'off' });
    expect((await db.execute('PRAGMA synchronous')).rows[0]?.[0]).toBe(0);
    await setConfig('durable', {});
    expect((await db.execute('PRAGMA synchronous')).rows[0]?.[0]).toBe(0);
  });

  it('allow_attach is stored, but ATTACH stays refused', async () => {
    await createNamespace(srv, 'attachable', { allow_attach: true });
    expect(((await srv.admin('GET', '/v1/namespaces/attachable/config')).json as Record<string, unknown>)['allow_attach']).toBe(true);
    const err = await rejection(srv.client('default').execute('ATTACH attachable AS a'));
    expect(err.message).toMatch(/403/);
    const legacy = await fetch(`${srv.url}/`, { method: 'POST', headers: { 'x-namespace': 'default' }, body: JSON.stringify({ statements: ['ATTACH attachable AS a'] }) });
    expect(legacy.status).toBe(403);
    expect(await legacy.json()).toEqual({ error: 'Authorization forbidden: Namespace `attachable` doesn\'t allow attach' });
  });
});

describe('txn_timeout_s', () => {
  it('lets a waiting writer take the lock from a transaction after the namespace’s timeout', async () => {
    await createNamespace(srv, 'quick', { txn_timeout_s: 1 });
    const a = srv.client('quick');
    const b = srv.client('quick');
    await a.execute('CREATE TABLE t (x INTEGER)');
    const tx = await a.transaction('write');
    await tx.execute('INSERT INTO t VALUES (1)');
    const started = performance.now();
    await b.execute('INSERT INTO t VALUES (2)');
    const waited = performance.now() - started;
    // the server's own timeout is 5 s: the namespace's 1 s applied
    expect(waited).toBeGreaterThan(800);
    expect(waited).toBeLessThan(4000);
    expect((await rejection(tx.execute('SELECT 1'))).code).toBe('TRANSACTION_TIMEOUT');
    tx.close();
    expect((await b.execute('SELECT x FROM t')).rows.map((r) => r['x'])).toEqual([2]);
  });
});

describe('jwt_key', () => {
  const keys = generateKeyPairSync('ed25519');
  const pem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const other = generateKeyPairSync('ed25519');
  const token = (key = keys.privateKey): Promise<string> => new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).sign(key);

  it('makes the namespace need a JWT signed by its key on HTTP and WebSocket; other namespaces stay as they were', async () => {
    await createNamespace(srv, 'secure', { jwt_key: pem });
    const anonymous = await rejection(srv.client('secure').execute('SELECT 1'));
    expect(anonymous.message).toMatch(/401|Unauthorized|Authentication/i);
    const wrongKey = await rejection(srv.client('secure', { authToken: await token(other.privateKey) }).execute('SELECT 1'));
    expect(wrongKey.message).toMatch(/401|Unauthorized|invalid/i);
    const ok = await srv.client('secure', { authToken: await token() }).execute('SELECT 1 AS one');
    expect(ok.rows[0]?.['one']).toBe(1);
    // a namespace without a key keeps the server's auth (none here)
    expect((await srv.client('default').execute('SELECT 1 AS one')).rows[0]?.['one']).toBe(1);

    const [refused] = await wsSession('secure', null, []);
    expect(refused).toMatchObject({ type: 'hello_error', error: { code: 'AUTH_HEADER_NOT_FOUND' } });
    const [hello, , select] = await wsSession('secure', await token(), ['SELECT 1']);
    expect(hello).toEqual({ type: 'hello_ok' });
    expect(select).toMatchObject({ type: 'response_ok' });
  });

  it('is dropped by a config change without it (sqld overwrites jwt_key)', async () => {
    const before = (await srv.admin('GET', '/v1/namespaces/secure/config')).json as Record<string, unknown>;
    expect(before['jwt_key']).toBe(pem);
    await setConfig('secure', {});
    const after = (await srv.admin('GET', '/v1/namespaces/secure/config')).json as Record<string, unknown>;
    expect(after).toMatchObject({ jwt_key: null, config_version: Number(before['config_version']) + 1 });
    expect((await srv.client('secure').execute('SELECT 1 AS one')).rows[0]?.['one']).toBe(1);
  });
});
