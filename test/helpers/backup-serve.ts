/**
 * What the kill -9 tests of backups share: a child `serve` backing up to a local store, a write
 * whose outcome is unknown when the server dies under it, and the restore compared with the
 * server's own database.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { sqldDbName } from '../../src/backup/format/layout.js';
import { restoreDatabase, type RestoreReport } from '../../src/backup/restore/restore.js';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import { bannerUrl, killChild, spawnCli, type CliProcess } from './child-server.js';
import { inspectFile } from './engine-log.js';
import { isObj, pipeline } from './pipeline.js';

/** The store's environment: a local directory, bucket `backups`, 1 s batches. */
export function backupEnv(store: string): Record<string, string> {
  return { LIBSQL_BOTTOMLESS_ENDPOINT: `file://${store}`, LIBSQL_BOTTOMLESS_BUCKET: 'backups', LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: '1' };
}

/** `serve --enable-bottomless-replication` on `dbPath`, checkpointing every second. */
export async function startBackupServe(dbPath: string, store: string, extraArgs: string[] = []): Promise<{ child: CliProcess; url: string }> {
  const args = ['serve', '--db-path', dbPath, '--http-listen-addr', '127.0.0.1:0', '--enable-bottomless-replication', '--checkpoint-interval-s', '1', '--shutdown-timeout', '3', ...extraArgs];
  const child = spawnCli(args, { env: backupEnv(store) });
  try {
    return { child, url: await bannerUrl(child) };
  } catch (err) {
    await killChild(child);
    throw new Error(`serve did not start: ${String(err)}\n${child.stderr()}`, { cause: err });
  }
}

/** True when the statement was acknowledged; false when it failed or the server died under it (unknown). */
export async function executeOk(url: string, sql: string): Promise<boolean> {
  try {
    const res = await pipeline(url, [{ type: 'execute', stmt: { sql } }], 5000);
    const first: unknown = isObj(res.body) && Array.isArray(res.body.results) ? res.body.results[0] : null;
    return res.status === 200 && isObj(first) && first.type === 'ok';
  } catch {
    return false;
  }
}

/**
 * Restores the default namespace's backup into `out`: every check passed, the file is intact and
 * equals the server's database; returns the report and the ids of table `t`.
 */
export async function restoreMatchesServer(store: string, dbPath: string, out: string): Promise<{ report: RestoreReport; ids: Set<number> }> {
  const local = inspectFile(path.join(dbPath, 'dbs', 'default', 'data'));
  const storage = new LocalStorage({ dir: store, bucket: 'backups' });
  try {
    const report = await restoreDatabase({ storage, db: sqldDbName('', 'default'), out });
    expect(report.checks.filter((c) => c.status === 'failed'), 'restore checks').toEqual([]);
    const restored = inspectFile(out);
    expect(restored.integrity).toBe('ok');
    expect(restored.dump === local.dump, 'the backup equals the server database').toBe(true);
    const db = new Database(out, { readonly: true });
    try {
      return { report, ids: new Set((db.prepare('SELECT id FROM t').pluck().all() as number[]).map(Number)) };
    } finally {
      db.close();
    }
  } finally {
    await storage.close();
  }
}
