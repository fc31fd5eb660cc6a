import fs from 'node:fs';
import path from 'node:path';
import { createClient, type Client } from '@libsql/client';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbPrefix, sqldDbName, tombstoneKey } from '../../src/backup/format/layout.js';
import { listGenerations, readGeneration } from '../../src/backup/restore/catalog.js';
import { restoreDatabase } from '../../src/backup/restore/restore.js';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import type { BottomlessEnv } from '../../src/config/bottomless-config.js';
import type { ServeFlags } from '../../src/config/serve-config.js';
import { ForkError, forkNamespace } from '../../src/server/admin/fork.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/** `POST /v1/namespaces/:from/fork/:to` (plain and point in time) and `DELETE … {keep_backup}`. */

const DB_ID = 'forktest';

interface Answer {
  status: number;
  type: string;
  text: string;
}

interface Server {
  srv: TestServer;
  admin(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
  client(namespace: string): Client;
  rows(namespace: string, sql?: string): Promise<unknown[]>;
  close(): Promise<void>;
}

async function start(dir: string, bottomless: BottomlessEnv | null): Promise<Server> {
  const flags: Partial<ServeFlags> = {
    'db-path': path.join(dir, 'data.sqld'),
    'enable-namespaces': true,
    'admin-listen-addr': '127.0.0.1:0',
    ...(bottomless ? { 'enable-bottomless-replication': true } : {}),
  };
  const srv = await startTestServer(flags, bottomless ? { bottomless } : {});
  const adminUrl = `http://127.0.0.1:${srv.server.adminAddress!.port}`;
  const clients: Client[] = [];
  const client = (namespace: string): Client => {
    const c = createClient({
      url: srv.url,
      fetch: (input: string | URL | Request, init?: RequestInit) => {
        const req = new Request(input, init);
        req.headers.set('x-namespace', namespace);
        return fetch(req);
      },
    });
    clients.push(c);
    return c;
  };
  return {
    srv,
    client,
    admin: async (method, urlPath, body, headers = {}) => {
      const init: RequestInit = { method, headers };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers = { 'content-type': 'application/json', ...headers };
      }
      const res = await fetch(`${adminUrl}${urlPath}`, init);
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
    },
    rows: async (namespace, sql = 'SELECT v FROM t ORDER BY rowid') => (await client(namespace).execute(sql)).rows.map((r) => r['v']),
    close: async () => {
      for (const c of clients) c.close();
      await srv.close();
    },
  };
}

async function ok(answer: Promise<Answer>): Promise<void> {
  const a = await answer;
  expect(a.status, a.text).toBe(200);
}

/** Table `t` of a restored file. */
function restoredRows(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT v FROM t ORDER BY rowid').pluck().all();
  } finally {
    db.close();
  }
}

function error(text: string): string {
  return JSON.stringify({ error: text });
}

describe('fork without backups', () => {
  let dir: string;
  let s: Server;

  beforeAll(async () => {
    dir = tempDir('libsqlctl-admin-fork-');
    s = await start(dir, null);
  });

  afterAll(async () => {
    await s?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const dbsEntries = (): string[] => fs.readdirSync(path.join(s.srv.dbPath, 'dbs')).sort();

  it('copies the data and the settings; the fork is a database of its own, opened as a restored one', async () => {
    await ok(s.admin('POST', '/v1/namespaces/src/create', { max_db_size: '10MB', txn_timeout_s: 7, durability_mode: 'strong' }));
    await ok(s.admin('POST', '/v1/namespaces/src/config', { block_reads: false, block_writes: false, block_reason: 'not blocked', txn_timeout_s: 7, allow_attach: true }));
    await s.client('src').batch(['CREATE TABLE t(v TEXT)', "INSERT INTO t VALUES ('a'), ('b')", 'CREATE INDEX t_v ON t(v)'], 'write');

    await ok(s.admin('POST', '/v1/namespaces/src/fork/copy'));
    expect(await s.rows('copy')).toEqual(['a', 'b']);
    const src = JSON.parse((await s.admin('GET', '/v1/namespaces/src/config')).text) as Record<string, unknown>;
    const copy = JSON.parse((await s.admin('GET', '/v1/namespaces/copy/config')).text) as Record<string, unknown>;
    expect(src['config_version']).toBe(2);
    expect(copy['config_version']).toBe(1);
    expect({ ...copy, config_version: null }).toEqual({ ...src, config_version: null });
    expect(copy['txn_timeout_s']).toBe(7);
    expect(copy['block_reason']).toBe('not blocked');

    // its own history: WAL mode, 4096-byte pages, a replication log started from the copied file
    const db = s.srv.server.context.namespaces.peek('copy')!;
    expect(db.maintenance.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(Number(db.maintenance.pragma('page_size', { simple: true }))).toBe(4096);
    expect(db.frames!.newLogReason).toBe('no replication log');
    expect(db.frames!.logId).not.toBe(s.srv.server.context.namespaces.peek('src')!.frames!.logId);

    // independent both ways
    await s.client('src').execute("INSERT INTO t VALUES ('src-only')");
    await s.client('copy').execute("INSERT INTO t VALUES ('copy-only')");
    expect(await s.rows('src')).toEqual(['a', 'b', 'src-only']);
    expect(await s.rows('copy')).toEqual(['a', 'b', 'copy-only']);
    expect(await s.rows('copy', "SELECT name AS v FROM sqlite_master WHERE type = 'index'")).toEqual(['t_v']);
  });

  it('a fork of a database being written is one consistent state of it', async () => {
    await ok(s.admin('POST', '/v1/namespaces/busy/create', {}));
    await s.client('busy').batch(['CREATE TABLE t(v INTEGER)', 'CREATE TABLE u(v INTEGER)', 'WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) INSERT INTO t SELECT x FROM n'], 'write');
    const writer = s.client('busy');
    let stop = false;
    let written = 0;
    // every transaction inserts into both tables: a consistent copy has equal counts
    const writes = (async () => {
      while (!stop) {
        await writer.batch([`INSERT INTO t VALUES (${-written})`, `INSERT INTO u VALUES (${written})`], 'write');
        written++;
      }
    })();
    try {
      await ok(s.admin('POST', '/v1/namespaces/busy/fork/busy-copy'));
    } finally {
      stop = true;
      await writes;
    }
    const [t, u] = await Promise.all([s.rows('busy-copy', 'SELECT count(*) AS v FROM t'), s.rows('busy-copy', 'SELECT count(*) AS v FROM u')]);
    expect(Number(t[0]) - 20000).toBe(Number(u[0]));
    expect(written).toBeGreaterThan(0);
  });

  it('forks default (which always exists) and refuses a destination that exists, default included', async () => {
    await ok(s.admin('POST', '/v1/namespaces/default/fork/from-default'));
    expect(await s.rows('from-default', "SELECT count(*) AS v FROM sqlite_master WHERE name = 't'")).toEqual([0]);
    for (const to of ['copy', 'default', 'src']) {
      const a = await s.admin('POST', `/v1/namespaces/src/fork/${to}`);
      expect([a.status, a.text]).toEqual([400, error(`Namespace \`${to}\` already exists`)]);
    }
  });

  it('refuses a missing source (404), a bad destination name (400, no folder), a point in time without backups (500)', async () => {
    const missing = await s.admin('POST', '/v1/namespaces/nope/fork/x');
    expect([missing.status, missing.text]).toEqual([404, error('Namespace `nope` doesn\'t exist')]);
    const before = dbsEntries();
    const bad = await s.admin('POST', '/v1/namespaces/src/fork/bad..name');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('Invalid namespace');
    const pitr = await s.admin('POST', '/v1/namespaces/src/fork/at', { timestamp: '2024-05-01T12:00:00' });
    expect([pitr.status, pitr.text]).toEqual([500, error('Failed to fork database: backup service not configured')]);
    expect(dbsEntries()).toEqual(before);
    expect((await s.admin('GET', '/v1/namespaces/at/config')).status).toBe(404);
  });

  it('refuses malformed bodies as every admin route does; an empty object is a plain fork', async () => {
    const shape = 'Failed to deserialize the JSON body into the target type: ';
    const cases: [unknown, Record<string, string>, number, string][] = [
      ['{', {}, 400, 'Failed to parse the request body as JSON'],
      [{ timestamp: 5 }, {}, 422, `${shape}timestamp: invalid type: expected a string`],
      [{ timestamp: 'yesterday' }, {}, 422, `${shape}timestamp: expected a UTC time`],
      [{ timestamp: '2024-02-30T10:00:00' }, {}, 422, `${shape}timestamp: expected a UTC time`],
      [{ timestamp: '2024-05-01T12:00:00+02:00' }, {}, 422, `${shape}timestamp: expected a UTC time`],
      ['{"timestamp": "2024-05-01T12:00:00"}', { 'content-type': 'text/plain' }, 415, 'Expected request with `Content-Type: application/json`'],
    ];
    for (const [body, headers, status, text] of cases) {
      const a = await s.admin('POST', '/v1/namespaces/src/fork/shape', body, headers);
      expect([a.status, a.text.slice(0, text.length)], JSON.stringify(body)).toEqual([status, text]);
    }
    await ok(s.admin('POST', '/v1/namespaces/src/fork/shape', {}));
    expect(await s.rows('shape')).toEqual(['a', 'b', 'src-only']);
  });

  it('a replica forks nothing', async () => {
    const ctx = { namespaces: s.srv.server.context.namespaces, isReplica: true, backups: null };
    const err = await forkNamespace(ctx, 'src', 'on-replica', null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForkError);
    expect((err as ForkError).status).toBe(400);
    expect((err as ForkError).message).toMatch(/^Failed to fork database: a replica cannot fork/);
    expect(dbsEntries()).not.toContain('on-replica');
  });
});

describe('fork and delete with bottomless backups', () => {
  let dir: string;
  let store: string;
  let s: Server;
  let storage: LocalStorage;

  beforeAll(async () => {
    dir = tempDir('libsqlctl-admin-fork-backups-');
    store = path.join(dir, 'store');
    s = await start(dir, { LIBSQL_BOTTOMLESS_ENDPOINT: `file://${store}`, LIBSQL_BOTTOMLESS_BUCKET: 'backups', LIBSQL_BOTTOMLESS_DATABASE_ID: DB_ID, LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: '1' });
    storage = new LocalStorage({ dir: store, bucket: 'backups' });
  });

  afterAll(async () => {
    await storage?.close();
    await s?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Everything the namespace committed is in the store. */
  const savepoint = (ns: string): Promise<void> => s.srv.server.context.backupAdmin!.savepoint(ns);

  async function generations(ns: string): Promise<{ id: string; snapshot: boolean }[]> {
    const db = sqldDbName(DB_ID, ns);
    const out: { id: string; snapshot: boolean }[] = [];
    for await (const id of listGenerations(storage, db)) out.push({ id, snapshot: (await readGeneration(storage, db, id)).snapshot !== null });
    return out;
  }

  async function objects(ns: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const e of storage.list(dbPrefix(sqldDbName(DB_ID, ns)))) if (e.kind === 'object') keys.push(e.key);
    const tombstone = tombstoneKey(sqldDbName(DB_ID, ns));
    if ((await storage.head(tombstone)) !== null) keys.push(tombstone);
    return keys;
  }

  it('a point-in-time fork restores the source as of that time; the fork gets a generation of its own', async () => {
    await ok(s.admin('POST', '/v1/namespaces/origin/create', {}));
    await s.client('origin').batch(['CREATE TABLE t(v TEXT)', "INSERT INTO t VALUES ('early-1')", "INSERT INTO t VALUES ('early-2')"], 'write');
    await savepoint('origin');
    const at = new Date();
    // the later rows commit in a later millisecond than the time asked for
    while (Date.now() <= at.getTime()) await new Promise((resolve) => setImmediate(resolve));
    await s.client('origin').batch(["INSERT INTO t VALUES ('late-1')", "INSERT INTO t VALUES ('late-2')"], 'write');
    await savepoint('origin');

    await ok(s.admin('POST', '/v1/namespaces/origin/fork/past', { timestamp: at.toISOString().slice(0, 23) }));
    expect(await s.rows('past')).toEqual(['early-1', 'early-2']);
    await ok(s.admin('POST', '/v1/namespaces/origin/fork/now'));
    expect(await s.rows('now')).toEqual(['early-1', 'early-2', 'late-1', 'late-2']);

    for (const ns of ['past', 'now']) {
      await s.client(ns).execute(`INSERT INTO t VALUES ('${ns}-own')`);
      await savepoint(ns);
      const gens = await generations(ns);
      expect(gens.length, ns).toBeGreaterThanOrEqual(1);
      expect(gens.at(-1)!.snapshot, `${ns}: its first generation has a snapshot`).toBe(true);
      const out = path.join(dir, `${ns}-restored.db`);
      await restoreDatabase({ storage, db: sqldDbName(DB_ID, ns), out });
      expect(restoredRows(out).at(-1)).toBe(`${ns}-own`);
    }
    // the source's own backup is untouched by the forks
    expect((await generations('origin')).length).toBeGreaterThanOrEqual(1);
  });

  it('a time before the first backup is a 400 naming it; nothing is left', async () => {
    const a = await s.admin('POST', '/v1/namespaces/origin/fork/too-early', { timestamp: '2001-01-01T00:00:00' });
    expect(a.status).toBe(400);
    expect((JSON.parse(a.text) as { error: string }).error).toMatch(/^Failed to fork database: no generation of ns-forktest:origin .* at or before 2001-01-01/);
    expect(fs.readdirSync(path.join(s.srv.dbPath, 'dbs'))).not.toContain('too-early');
    expect((await s.admin('GET', '/v1/namespaces/too-early/config')).status).toBe(404);
  });

  it('delete prunes every backup object of the namespace by default, and only of that namespace', async () => {
    expect((await objects('past')).length).toBeGreaterThan(0);
    await ok(s.admin('DELETE', '/v1/namespaces/past'));
    expect(await objects('past')).toEqual([]);
    expect((await objects('origin')).length).toBeGreaterThan(0);
    expect((await objects('now')).length).toBeGreaterThan(0);
    await ok(s.admin('DELETE', '/v1/namespaces/now', { keep_backup: false }));
    expect(await objects('now')).toEqual([]);
  });

  it('delete with keep_backup: true keeps the backup, with everything committed before the delete', async () => {
    await s.client('origin').execute("INSERT INTO t VALUES ('last')");
    await ok(s.admin('DELETE', '/v1/namespaces/origin', { keep_backup: true }));
    expect((await s.admin('GET', '/v1/namespaces/origin/config')).status).toBe(404);
    expect((await objects('origin')).length).toBeGreaterThan(0);
    const out = path.join(dir, 'origin-kept.db');
    await restoreDatabase({ storage, db: sqldDbName(DB_ID, 'origin'), out });
    expect(restoredRows(out)).toEqual(['early-1', 'early-2', 'late-1', 'late-2', 'last']);
  });
});
