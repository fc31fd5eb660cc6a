import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BottomlessEnv } from '../../src/config/bottomless-config.js';
import { sqldDbName } from '../../src/backup/format/layout.js';
import { listGenerations, readGeneration } from '../../src/backup/restore/catalog.js';
import { restoreDatabase } from '../../src/backup/restore/restore.js';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import { inspectFile } from '../helpers/engine-log.js';
import { postJson, startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

const dirs: string[] = [];
const servers: TestServer[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function sql(server: TestServer, ...statements: string[]): Promise<unknown[][]> {
  const res = await postJson(`${server.url}/v2/pipeline`, { requests: [...statements.map((s) => ({ type: 'execute', stmt: { sql: s } })), { type: 'close' }] });
  expect(res.status, res.text).toBe(200);
  const results = (res.body as { results: { type: string; response?: { result: { rows: { value?: string }[][] } }; error?: unknown }[] }).results;
  const failed = results.find((r) => r.type !== 'ok');
  expect(failed?.error).toBeUndefined();
  return results.slice(0, -1).map((r) => (r.response?.result.rows ?? []).map((row) => row.map((v) => v.value ?? null)));
}

async function start(dbPath: string, store: string, snapshotEvery?: number, admin = false): Promise<TestServer> {
  const bottomless: BottomlessEnv = { LIBSQL_BOTTOMLESS_ENDPOINT: `file://${store}`, LIBSQL_BOTTOMLESS_BUCKET: 'backups', LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: '1' };
  const flags = {
    'db-path': dbPath,
    'enable-bottomless-replication': true,
    ...(snapshotEvery === undefined ? {} : { 'bottomless-snapshot-every-generations': snapshotEvery }),
    ...(admin ? { 'admin-listen-addr': '127.0.0.1:0' } : {}),
  };
  const server = await startTestServer(flags, { bottomless });
  servers.push(server);
  return server;
}

async function stop(server: TestServer): Promise<void> {
  servers.splice(servers.indexOf(server), 1);
  await server.close();
}

describe('serve --enable-bottomless-replication', () => {
  it("the admin API's namespace listing shows the upload lag, down to 0 once the batch is stored", async () => {
    const dir = tempDir('libsqlctl-bottomless-serve-');
    dirs.push(dir);
    const server = await start(path.join(dir, 'one.sqld'), path.join(dir, 'store'), undefined, true);
    const listing = async (): Promise<Record<string, unknown> | undefined> => {
      const res = await fetch(`http://127.0.0.1:${server.server.adminAddress!.port}/v1/namespaces`);
      return ((await res.json()) as Record<string, unknown>[]).find((e) => e['name'] === 'default');
    };
    await sql(server, 'CREATE TABLE t(v)', ...Array.from({ length: 20 }, (_, i) => `INSERT INTO t VALUES (${i})`));
    const status = server.server.context.backupStatus('default');
    expect(status).not.toBeNull();
    expect(typeof (await listing())?.['backup_lag_frames']).toBe('number');
    await expect.poll(async () => (await listing())?.['backup_lag_frames'], { timeout: 20_000, interval: 100 }).toBe(0);
    expect(server.server.context.backupStatus('default')?.lastDurableFrameNo).not.toBeNull();
    await stop(server);
  });

  it('backs up every commit across checkpoints; a restore equals the database; an empty data directory restores at start', async () => {
    const dir = tempDir('libsqlctl-bottomless-serve-');
    dirs.push(dir);
    const store = path.join(dir, 'store');
    const first = await start(path.join(dir, 'one.sqld'), store);
    await sql(first, 'CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT)', ...Array.from({ length: 30 }, (_, i) => `INSERT INTO t(v) VALUES ('a${i}')`));
    // a checkpoint ends the WAL generation: the next writes go to a new bottomless generation
    expect(await first.server.context.namespaces.peek('default')!.frames!.checkpoint()).toBe(true);
    await sql(first, ...Array.from({ length: 30 }, (_, i) => `INSERT INTO t(v) VALUES ('b${i}')`));
    const dbFile = path.join(first.dbPath, 'dbs', 'default', 'data');
    await stop(first);
    const expected = inspectFile(dbFile).dump;
    expect(expected).toContain('b29');

    const storage = new LocalStorage({ dir: store, bucket: 'backups' });
    const db = sqldDbName('', 'default');
    const generations: string[] = [];
    for await (const g of listGenerations(storage, db)) generations.push(g);
    expect(generations.length).toBeGreaterThanOrEqual(2);
    // by default only the first generation carries a snapshot; the next one has a .dep on it
    const newest = await readGeneration(storage, db, generations[0]!);
    const oldest = await readGeneration(storage, db, generations.at(-1)!);
    expect([newest.snapshot, oldest.snapshot !== null, newest.parent]).toEqual([null, true, generations[1]]);
    const out = path.join(dir, 'restored.db');
    const report = await restoreDatabase({ storage, db, out });
    expect(report.checks.filter((c) => c.status === 'failed')).toEqual([]);
    expect(inspectFile(out).dump).toBe(expected);
    await storage.close();

    // a new machine: an empty data directory with the same store serves the restored data
    const second = await start(path.join(dir, 'two.sqld'), store);
    expect(await sql(second, 'SELECT count(*) FROM t', "SELECT v FROM t WHERE v = 'b29'")).toEqual([[['60']], [['b29']]]);
    await sql(second, "INSERT INTO t(v) VALUES ('c0')");
    await stop(second);
    const storage2 = new LocalStorage({ dir: store, bucket: 'backups' });
    const out2 = path.join(dir, 'restored2.db');
    await restoreDatabase({ storage: storage2, db, out: out2 });
    expect(inspectFile(out2).dump).toContain('c0');
    await storage2.close();
  });

  it('--bottomless-snapshot-every-generations 1 snapshots every generation', async () => {
    const dir = tempDir('libsqlctl-bottomless-serve-');
    dirs.push(dir);
    const store = path.join(dir, 'store');
    const server = await start(path.join(dir, 'one.sqld'), store, 1);
    await sql(server, 'CREATE TABLE t(v TEXT)', "INSERT INTO t VALUES ('a')");
    expect(await server.server.context.namespaces.peek('default')!.frames!.checkpoint()).toBe(true);
    await sql(server, "INSERT INTO t VALUES ('b')");
    await stop(server);
    const storage = new LocalStorage({ dir: store, bucket: 'backups' });
    const db = sqldDbName('', 'default');
    const snapshots: boolean[] = [];
    for await (const g of listGenerations(storage, db)) snapshots.push((await readGeneration(storage, db, g)).snapshot !== null);
    await storage.close();
    expect(snapshots).toEqual([true, true]);
  });
});
