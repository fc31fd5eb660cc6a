import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import { SqliteFiles } from '../../src/engine/files/sqlite-files.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { LoggedTransaction } from '../../src/engine/pipeline/transactions.js';
import { readClientWalIndex } from '../../src/engine/replica/client-wal-index.js';
import { parseCrashAt } from '../../src/engine/replica/crash-points.js';
import { FrameApplier } from '../../src/engine/replica/frame-applier.js';
import { newLogId } from '../../src/engine/wal/log-id.js';
import { inspectDb, PagePrimary, removeTempDirs, standardWorkload, tempDir, unappliedRedo, writeFrameFile } from '../helpers/page-transactions.js';

/**
 * Crash safety of the replica frame applier: a child process applies a fixture stream (sqld frame
 * format) and is SIGKILLed at a crash point of one batch. After a restart the replica must hold
 * exactly the primary's content at a transaction boundary no earlier than any batch the child
 * reported as applied (nothing lost, nothing torn), and finishing the stream must reach the end.
 */

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/applier-child.js');
const PER_BATCH = 2;
const CASES = ['after-redo:3', 'during-pages:1', 'during-pages:3', 'before-index:3', 'before-index:1'];

const primaries: PagePrimary[] = [];
afterEach(() => {
  for (const p of primaries.splice(0)) p.close();
  removeTempDirs();
});

function runChild(dir: string, frames: string, logId: string, crashAt?: string): { applied: bigint[]; done: boolean; signal: NodeJS.Signals | null; status: number | null; stderr: string } {
  const env = { ...process.env };
  if (crashAt === undefined) delete env.APPLIER_CRASH_AT;
  else env.APPLIER_CRASH_AT = crashAt;
  const r = spawnSync(process.execPath, [CHILD, dir, frames, logId, String(PER_BATCH)], { env, encoding: 'utf8', timeout: 20_000 });
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  return {
    applied: lines.filter((l) => l.startsWith('applied ')).map((l) => BigInt(l.slice('applied '.length))),
    done: lines.includes('done'),
    signal: r.signal,
    status: r.status,
    stderr: r.stderr,
  };
}

function expectReplicaAt(paths: NamespacePaths, primary: PagePrimary, frameNo: bigint): void {
  const state = inspectDb(paths.db);
  expect(state.integrity).toBe('ok');
  expect(state.journalMode).toBe('delete');
  expect(state.dump).toBe(primary.dumps.get(frameNo));
  expect(readClientWalIndex(paths.clientWalIndex)?.committedFrameNo).toBe(frameNo);
  expect(unappliedRedo(paths, frameNo)).toEqual([]);
}

describe('replica frame applier under kill -9', () => {
  it.each(CASES)('recovers after SIGKILL at %s', async (crashAt) => {
    const primary = new PagePrimary();
    primaries.push(primary);
    standardWorkload(primary);
    const txns = primary.transactions;
    const frames = path.join(tempDir(), 'frames');
    writeFrameFile(frames, txns);
    const paths = new NamespacePaths(tempDir());
    const logId = newLogId();
    const at = parseCrashAt(crashAt);
    if (at === null) throw new Error('no crash point');

    const crashed = runChild(paths.dir, frames, logId, crashAt);
    expect(crashed.stderr).toBe('');
    expect(crashed.signal).toBe('SIGKILL');
    expect(crashed.done).toBe(false);
    const batchEnds = txns.filter((_, i) => (i + 1) % PER_BATCH === 0 || i === txns.length - 1).map((t) => t.lastFrameNo);
    expect(crashed.applied).toEqual(batchEnds.slice(0, at.after - 1));

    // restart in-process: the interrupted batch is completed from its redo file
    const files = SqliteFiles.open(paths);
    const applier = await FrameApplier.open({ paths, files, logger: silentLogger() });
    const recovered = applier.appliedFrameNo;
    applier.close();
    files.close();
    expect(recovered).toBe(batchEnds[at.after - 1]);
    expectReplicaAt(paths, primary, recovered ?? -1n);

    const finished = runChild(paths.dir, frames, logId);
    expect(finished.stderr).toBe('');
    expect(finished.status).toBe(0);
    expect(finished.done).toBe(true);
    expect(finished.applied[0]).toBeGreaterThan(recovered ?? -1n);
    expectReplicaAt(paths, primary, (txns[txns.length - 1] as LoggedTransaction).lastFrameNo);
  });
});
