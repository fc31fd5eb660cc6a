import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { executeOk, restoreMatchesServer, startBackupServe } from '../helpers/backup-serve.js';
import { killChild, stopChild, type CliProcess } from '../helpers/child-server.js';
import { crashScratch } from '../helpers/crash-scratch.js';

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

function startServer(): Promise<{ child: CliProcess; url: string }> {
  return startBackupServe(dbPath, store, ['--log-level', 'debug']);
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
    expect(await executeOk(server.url, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)')).toBe(true);
    const restarts: string[] = [];
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        let stop = false;
        const url = server.url;
        const writers = Array.from({ length: WRITERS }, async () => {
          while (!stop) {
            const id = nextId++;
            if (await executeOk(url, `INSERT INTO t(id, v) VALUES (${id}, '${'x'.repeat(300 + (id % 5) * 400)}')`)) acked.add(id);
            else if (!stop) return; // the server is gone
          }
        });
        // The periodic checkpoint (1 s) of a WAL the writers keep filling; killed the moment it is
        // logged (odd rounds) or once one more write is acknowledged after it (even rounds: the WAL
        // restarted by that write, its frames only in memory and in the log).
        await server.child.waitForStderr(CHECKPOINTED, 10_000);
        if (round % 2 === 0) {
          const id = nextId++;
          if (await executeOk(url, `INSERT INTO t(id, v) VALUES (${id}, 'after the checkpoint')`)) acked.add(id);
        }
        await killChild(server.child);
        stop = true;
        await Promise.all(writers);
        if (round > 1) restarts.push(server.child.stderr());
        scratch.context.push(`round ${round}: SIGKILL after a checkpoint, ${acked.size} rows acknowledged so far`);
        server = await startServer();
      }
      expect(await executeOk(server.url, "INSERT INTO t(id, v) VALUES (0, 'last')")).toBe(true);
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

    const { report, ids } = await restoreMatchesServer(store, dbPath, path.join(scratch.dir, 'restored.db'));
    expect([report.gaps, report.laterGaps, report.stoppedAt]).toEqual([[], [], null]);
    // One snapshot, the first generation's: each later one (if a checkpoint restarted the WAL) has a .dep.
    expect(report.chain.map((g) => g.snapshot)).toEqual(report.chain.map((_g, i) => i === 0));
    expect([...acked].filter((id) => !ids.has(id)), 'acknowledged rows missing from the restore').toEqual([]);
  });
});
