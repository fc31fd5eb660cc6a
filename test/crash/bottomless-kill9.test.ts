import { randomInt } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { executeOk, restoreMatchesServer, startBackupServe } from '../helpers/backup-serve.js';
import { killChild, stopChild, type CliProcess } from '../helpers/child-server.js';
import { crashScratch } from '../helpers/crash-scratch.js';
import { prng } from '../helpers/prng.js';

/**
 * Backups survive kill -9 (docs/BOTTOMLESS.md "Uploader"): a child `serve` with backups to a local
 * store takes writes from several clients, checkpoints every second, and is SIGKILLed at random
 * moments (mid-batch, mid-upload, near checkpoints); it restarts on the same data directory each
 * time. After a final graceful stop, a restore from the store holds every acknowledged row and
 * equals the server's own database. Seed: BOTTOMLESS_KILL9_SEED=<n> (printed on failure).
 */

const ROUNDS = 3;
const WRITERS = 4;
const KILL_DELAY_MS: readonly [number, number] = [200, 900];
const SEED = process.env.BOTTOMLESS_KILL9_SEED !== undefined ? Number(process.env.BOTTOMLESS_KILL9_SEED) : randomInt(2 ** 31);

const scratch = crashScratch('libsqlctl-bottomless-kill9-');
const store = path.join(scratch.dir, 'store');
const dbPath = path.join(scratch.dir, 'data.sqld');

function startServer(): Promise<{ child: CliProcess; url: string }> {
  return startBackupServe(dbPath, store);
}

describe('bottomless under kill -9 (child process)', () => {
  it(`${ROUNDS} rounds of SIGKILL under write load: after a graceful stop the backup restores every acknowledged row`, async () => {
    scratch.context.length = 0;
    scratch.context.push(`bottomless kill9 seed ${SEED} (rerun with BOTTOMLESS_KILL9_SEED=${SEED})`);
    const random = prng(SEED);
    const acked = new Set<number>();
    let nextId = 1;
    let server = await startServer();
    expect(await executeOk(server.url, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)')).toBe(true);
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        let stop = false;
        const url = server.url;
        const writers = Array.from({ length: WRITERS }, async () => {
          while (!stop) {
            const id = nextId++;
            if (await executeOk(url, `INSERT INTO t(id, v) VALUES (${id}, '${'x'.repeat(200 + (id % 7) * 300)}')`)) acked.add(id);
            else if (!stop) return; // the server is gone
          }
        });
        const delay = KILL_DELAY_MS[0] + Math.floor(random() * (KILL_DELAY_MS[1] - KILL_DELAY_MS[0]));
        await new Promise((resolve) => setTimeout(resolve, delay));
        scratch.context.push(`round ${round}: SIGKILL after ${delay} ms, ${acked.size} rows acknowledged so far\n${server.child.stderr()}`);
        await killChild(server.child);
        stop = true;
        await Promise.all(writers);
        server = await startServer();
      }
      expect(await executeOk(server.url, "INSERT INTO t(id, v) VALUES (0, 'last')")).toBe(true);
      acked.add(0);
      const exit = await stopChild(server.child, 40_000);
      expect(exit, server.child.stderr()).toEqual({ code: 0, signal: null });
    } catch (err) {
      await killChild(server.child);
      throw err;
    }

    const { report, ids } = await restoreMatchesServer(store, dbPath, path.join(scratch.dir, 'restored.db'));
    const missing = [...acked].filter((id) => !ids.has(id));
    expect(missing, 'acknowledged rows missing from the restore').toEqual([]);
    console.log(`bottomless kill9 seed ${SEED}: ${acked.size} rows acknowledged, ${ids.size} restored from ${report.chain.length} generation(s), ${report.frames} frames`);
  });
});
