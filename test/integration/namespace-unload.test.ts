import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { listGenerations, readGeneration } from '../../src/backup/restore/catalog.js';
import { sqldDbName } from '../../src/backup/format/layout.js';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import type { Namespaces } from '../../src/engine/namespaces.js';
import { createNamespace, startAdminServer, type AdminTestServer } from '../helpers/admin.js';
import { tempDir } from '../helpers/test-server.js';

/**
 * `--max-active-namespaces`: idle namespaces beyond the limit are closed least recently used first
 * and open again, data intact, on their next request; busy ones stay; backups go on in the same
 * history without a generation per unload.
 */

const dirs: string[] = [];
const servers: AdminTestServer[] = [];

afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function start(extra: Parameters<typeof startAdminServer>[0] = {}, env: Parameters<typeof startAdminServer>[2] = {}): Promise<AdminTestServer> {
  const dir = tempDir('libsqlctl-unload-');
  dirs.push(dir);
  const srv = await startAdminServer({ 'db-path': path.join(dir, 'data.sqld'), 'max-active-namespaces': '2', ...extra }, {}, env);
  servers.push(srv);
  return srv;
}

function openNames(namespaces: Namespaces): string[] {
  return namespaces
    .list()
    .map((db) => db.name)
    .sort();
}

/** Waits until exactly these namespaces are open (an unload waits out its grace period first). */
async function settlesTo(namespaces: Namespaces, names: string[]): Promise<void> {
  await expect.poll(() => openNames(namespaces), { timeout: 30_000, interval: 50, message: `open namespaces to settle to ${names.join(', ')}` }).toEqual(names);
  await namespaces.unloaded();
}

async function values(srv: AdminTestServer, ns: string): Promise<unknown[]> {
  return (await srv.client(ns).execute('SELECT v FROM t ORDER BY v')).rows.map((r) => r['v']);
}

describe('--max-active-namespaces', () => {
  it('unloads the least recently used idle namespace and reopens it transparently, data intact', async () => {
    const srv = await start();
    const namespaces = srv.server.context.namespaces;
    for (const ns of ['a', 'b', 'c']) {
      await createNamespace(srv, ns);
      await srv.client(ns).batch(['CREATE TABLE t (v TEXT)', `INSERT INTO t VALUES ('${ns}1'), ('${ns}2')`], 'write');
    }
    await settlesTo(namespaces, ['b', 'c']);
    // unloaded, not deleted: the files stay, the listing still has it (closed)
    expect(fs.existsSync(path.join(srv.dbPath, 'dbs', 'a', 'data'))).toBe(true);
    const listed = (await srv.admin('GET', '/v1/namespaces')).json as { name: string; open: boolean }[];
    expect(listed.filter((n) => ['a', 'b', 'c'].includes(n.name)).map((n) => [n.name, n.open])).toEqual([
      ['a', false],
      ['b', true],
      ['c', true],
    ]);

    expect(await values(srv, 'a')).toEqual(['a1', 'a2']);
    await srv.client('a').execute("INSERT INTO t VALUES ('a3')");
    // b is now the least recently used
    await settlesTo(namespaces, ['a', 'c']);
    expect(await values(srv, 'b')).toEqual(['b1', 'b2']);
    await settlesTo(namespaces, ['a', 'b']);
    expect(await values(srv, 'a')).toEqual(['a1', 'a2', 'a3']);
    expect(await values(srv, 'c')).toEqual(['c1', 'c2']);
    // the statement counters outlive the unloads
    const stats = (await srv.admin('GET', '/v1/namespaces/a/stats')).json as { rows_written_count: number };
    expect(stats.rows_written_count).toBe(3);
  });

  it('keeps a namespace with an open transaction or a WebSocket session loaded', async () => {
    const srv = await start();
    const namespaces = srv.server.context.namespaces;
    for (const ns of ['a', 'b', 'c']) {
      await createNamespace(srv, ns);
      await srv.client(ns).execute('CREATE TABLE t (v TEXT)');
    }
    await settlesTo(namespaces, ['b', 'c']);
    // b (the least recently used) holds a transaction open: a is unloaded in its place once used
    const txn = await srv.client('b').transaction('write');
    await txn.execute("INSERT INTO t VALUES ('in-txn')");
    await values(srv, 'c');
    await values(srv, 'a');
    await settlesTo(namespaces, ['a', 'b']);
    await txn.commit();
    txn.close();
    expect(await values(srv, 'b')).toEqual(['in-txn']);
    await settlesTo(namespaces, ['a', 'b']);

    // a WebSocket session on a (now the least recently used) keeps it: b goes when c opens
    const ws = new WebSocket(srv.wsUrl, ['hrana3'], { headers: { 'x-namespace': 'a' } });
    try {
      await once(ws, 'open');
      ws.send(JSON.stringify({ type: 'hello', jwt: null }));
      const [hello] = (await once(ws, 'message')) as [Buffer];
      expect(JSON.parse(hello.toString())).toEqual({ type: 'hello_ok' });
      await values(srv, 'b');
      await values(srv, 'c');
      await settlesTo(namespaces, ['a', 'c']);
    } finally {
      ws.close();
    }
    // once the session ended, a is the one to go
    await once(ws, 'close');
    await values(srv, 'b');
    await settlesTo(namespaces, ['b', 'c']);
  });

  it('an unload and reopen does not start a backup generation; the next write continues the history', async () => {
    const dir = tempDir('libsqlctl-unload-store-');
    dirs.push(dir);
    const store = path.join(dir, 'store');
    const srv = await start(
      { 'enable-bottomless-replication': true, 'max-active-namespaces': '1' },
      { bottomless: { LIBSQL_BOTTOMLESS_ENDPOINT: `file://${store}`, LIBSQL_BOTTOMLESS_BUCKET: 'backups', LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: '1', LIBSQL_BOTTOMLESS_DATABASE_ID: 'unload' } },
    );
    const namespaces = srv.server.context.namespaces;
    const storage = new LocalStorage({ dir: store, bucket: 'backups' });
    const db = sqldDbName('unload', 'a');
    const generations = async (): Promise<string[]> => {
      const found: string[] = [];
      for await (const g of listGenerations(storage, db)) found.push(g);
      return found;
    };
    try {
      await createNamespace(srv, 'a');
      await srv.client('a').batch(['CREATE TABLE t (v TEXT)', "INSERT INTO t VALUES ('a1')"], 'write');
      // a namespace with uploads pending stays loaded (b, idle, would go instead)
      await expect.poll(() => srv.server.context.backupStatus('a')?.uploadLagFrames, { timeout: 30_000, interval: 50, message: 'the upload lag of a to reach 0' }).toBe(0);
      await createNamespace(srv, 'b');
      await settlesTo(namespaces, ['b']);
      const before = await generations();
      expect(before.length).toBe(1);
      // reopened to read: nothing new in the store
      expect(await values(srv, 'a')).toEqual(['a1']);
      await settlesTo(namespaces, ['a']);
      expect(await generations()).toEqual(before);
      // a write after the reopen goes on from the same history: a generation with a .dep, no snapshot
      await srv.client('a').execute("INSERT INTO t VALUES ('a2')");
      await expect.poll(async () => (await srv.admin('GET', '/v1/namespaces')).json as { name: string; backup_lag_frames: number | null }[], { timeout: 30_000, interval: 100, message: 'the upload lag of a to reach 0' }).toContainEqual(expect.objectContaining({ name: 'a', backup_lag_frames: 0 }));
      const after = await generations();
      expect(after.slice(1)).toEqual(before);
      const newest = await readGeneration(storage, db, after[0]!);
      expect([newest.parent, newest.snapshot]).toEqual([before[0], null]);
    } finally {
      await storage.close();
    }
  });
});
