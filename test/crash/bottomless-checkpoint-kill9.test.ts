import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sqldDbName } from '../../src/backup/format/layout.js';
import { restoreDatabase } from '../../src/backup/restore/restore.js';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import { bannerUrl, killChild, spawnCli, stopChild, type CliProcess } from '../helpers/child-server.js';
import { crashScratch } from '../helpers/crash-scratch.js';
import { inspectFile } from '../helpers/engine-log.js';
import { isObj, pipeline } from '../helpers/pipeline.js';

/**
 * kill -9 right after a checkpoint (docs/BOTTOMLESS.md "Restart"): a child `serve` with backups
 * checkpoints every second under write load; the moment its uploader logs (debug) that a checkpoint
 * finished, it is SIGKILLed — at once, or after one more acknowledged write (the next WAL generation
 * begun, nothing of it staged). It restarts on the same data directory each time. The restarts
 * continue the backup (no fresh generation, no uploader warning, no gap), and after a graceful stop a
 * restore holds every acknowledged row and equals the server's database. (Killed before any write,
 * the restarted server's WAL goes on after recovery: the same generation continues.)
 */

const ROUNDS = 2;
const WRITERS = 2;
const CHECKPOINTED = /checkpointed WAL generation \d+ \(\d+ frames\)/;

const scratch = crashScratch('libsqlctl-bottomless-ckpt-kill9-');
const store = path.join(scratch.dir, 'store');
const dbPath = path.join(scratch.dir, 'data.sqld');
const ENV = { LIBSQL_BOTTOMLESS_ENDPOINT: `file://${store}`, LIBSQL_BOTTOMLESS_BUCKET: 'backups', LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: '1' };

async function startServer(): Promise<{ child: CliProcess; url: string }> {
  const args = ['serve', '--db-path', dbPath, '--http-listen-addr', '127.0.0.1:0', '--enable-bottomless-replication', '--checkpoint-interval-s', '1', '--log-level', 'debug', '--shutdown-timeout', '3'];
  const child = spawnCli(args, { env: ENV });
  try {
    return { child, url: await bannerUrl(child) };
  } catch (err) {
    await killChild(child);
    throw new Error(`serve did not start: ${String(err)}\n${child.stderr()}`, { cause: err });
  }
}

async function execute(url: string, sql: string): Promise<boolean> {
  try {
    const res = await pipeline(url, [{ type: 'execute', stmt: { sql } }], 5000);
    const first: unknown = isObj(res.body) && Array.isArray(res.body.results) ? res.body.results[0] : null;
    return res.status === 200 && isObj(first) && first.type === 'ok';
  } catch {
    return false; // the server died under the request: its outcome is unknown
  }
}

/** The uploader's warnings and errors in a server's log (JSON lines): a restart must need none. */
function uploaderTrouble(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.includes('"level":40') || line.includes('"level":50'))
    .filter((line) => line.includes('bottomless'));
}

describe('bottomless: kill -9 right after a checkpoint (child process)', () => {
  it(`${ROUNDS} rounds: SIGKILL as the checkpoint's log line appears; the restarts continue without a gap, the restore equals the server`, async () => {
    scratch.context.length = 0;
    const acked = new Set<number>();
    let nextId = 1;
    let server = await startServer();
    expect(await execute(server.url, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)')).toBe(true);
    const restarts: string[] = [];
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        let stop = false;
        const url = server.url;
        const writers = Array.from({ length: WRITERS }, async () => {
          while (!stop) {
            const id = nextId++;
            if (await execute(url, `INSERT INTO t(id, v) VALUES (${id}, '${'x'.repeat(300 + (id % 5) * 400)}')`)) acked.add(id);
            else if (!stop) return; // the server is gone
          }
        });
        // The periodic checkpoint (1 s) of a WAL the writers keep filling; killed the moment it is
        // logged (odd rounds) or once one more write is acknowledged after it (even rounds: the WAL
        // restarted by that write, its frames only in memory and in the log).
        await server.child.waitForStderr(CHECKPOINTED, 10_000);
        if (round % 2 === 0) {
          const id = nextId++;
          if (await execute(url, `INSERT INTO t(id, v) VALUES (${id}, 'after the checkpoint')`)) acked.add(id);
        }
        await killChild(server.child);
        stop = true;
        await Promise.all(writers);
        if (round > 1) restarts.push(server.child.stderr());
        scratch.context.push(`round ${round}: SIGKILL after a checkpoint, ${acked.size} rows acknowledged so far`);
        server = await startServer();
      }
      expect(await execute(server.url, "INSERT INTO t(id, v) VALUES (0, 'last')")).toBe(true);
      acked.add(0);
      const exit = await stopChild(server.child, 40_000);
      restarts.push(server.child.stderr());
      expect(exit, server.child.stderr()).toEqual({ code: 0, signal: null });
    } catch (err) {
      scratch.context.push(`last server's stderr:\n${server.child.stderr()}`);
      await killChild(server.child);
      throw err;
    }
    // Every restart went on from the state the kill left: no fresh generation, no lost frame.
    expect(restarts.flatMap(uploaderTrouble), 'uploader warnings after a restart').toEqual([]);

    const local = inspectFile(path.join(dbPath, 'dbs', 'default', 'data'));
    const storage = new LocalStorage({ dir: store, bucket: 'backups' });
    try {
      const out = path.join(scratch.dir, 'restored.db');
      const report = await restoreDatabase({ storage, db: sqldDbName('', 'default'), out });
      expect(report.checks.filter((c) => c.status === 'failed'), 'restore checks').toEqual([]);
      expect([report.gaps, report.laterGaps, report.stoppedAt]).toEqual([[], [], null]);
      // One snapshot, the first generation's: each later one (if a checkpoint restarted the WAL) has a .dep.
      expect(report.chain.map((g) => g.snapshot)).toEqual(report.chain.map((_g, i) => i === 0));
      const restored = inspectFile(out);
      expect(restored.integrity).toBe('ok');
      expect(restored.dump === local.dump, 'the backup equals the server database').toBe(true);
      const db = new Database(out, { readonly: true });
      const ids = new Set((db.prepare('SELECT id FROM t').pluck().all() as number[]).map(Number));
      db.close();
      expect([...acked].filter((id) => !ids.has(id)), 'acknowledged rows missing from the restore').toEqual([]);
    } finally {
      await storage.close();
    }
  });
});
