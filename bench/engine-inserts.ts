/**
 * Single-row INSERT transactions per second through the engine with frame capture on (connection,
 * write lock, capture into the replication log), as a ratio of the same inserts with plain
 * better-sqlite3 in WAL mode in the same process and run. Both sides use synchronous=NORMAL, sqld's
 * default durability, so the ratio measures the engine's overhead and not a different fsync policy.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { compiled, type Compiled } from './compiled.js';
import type { Benchmark, BenchOptions } from './types.js';
import { benchTempDir, bracketed, bracketMean, fmtNumber, mean } from './util.js';

const CREATE = 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)';
const INSERT = 'INSERT INTO t (v) VALUES (?)';

function payload(i: number): string {
  return `value-${i}-${'x'.repeat(i % 64)}`;
}

function plainRun(dir: string, count: number, synchronous: 'NORMAL' | 'FULL' = 'NORMAL'): number {
  const db = new Database(path.join(dir, 'plain.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.exec(CREATE);
    const stmt = db.prepare(INSERT);
    const started = performance.now();
    for (let i = 0; i < count; i++) stmt.run(payload(i));
    return (count / (performance.now() - started)) * 1000;
  } finally {
    db.close();
  }
}

async function engineRun({ NamespaceDb, NamespacePaths, PrimaryRole }: Compiled, dir: string, count: number): Promise<number> {
  const ns = new NamespaceDb({
    paths: new NamespacePaths(dir),
    name: 'default',
    txnTimeoutMs: 5000,
    role: new PrimaryRole({
      checkpoint: { intervalMs: null, walBytes: 4 * 1024 * 1024, prepareTimeoutMs: 5000 },
      compaction: { maxFrames: 200_000_000n / 4120n, maxDurationMs: null, snapshotExec: null, scriptBackupDir: path.join(dir, 'script_backup') },
      outsidePollMs: 1000,
    }),
  });
  await ns.open();
  try {
    const conn = ns.connect();
    const opts = { allowWrite: true, maxResponseBytes: 10_000_000 };
    await conn.execute(CREATE, { positional: [], named: new Map() }, opts);
    const started = performance.now();
    for (let i = 0; i < count; i++) await conn.execute(INSERT, { positional: [payload(i)], named: new Map() }, opts);
    const rate = (count / (performance.now() - started)) * 1000;
    const frames = ns.frames?.log.nextFrameNo ?? 0n;
    if (frames < BigInt(count)) throw new Error(`capture is off: ${frames} frames for ${count} inserts`);
    return rate;
  } finally {
    await ns.close();
  }
}

export const engineInserts: Benchmark = {
  name: 'engine-inserts',
  description: 'single-row INSERT transactions/s with frame capture ÷ plain better-sqlite3 (WAL, synchronous=NORMAL)',
  async run(opts: BenchOptions) {
    const count = Math.max(2000, Math.round(opts.durationS * 3000));
    let n = 0;
    const fresh = (): string => {
      const tmp = benchTempDir(opts, `inserts-${n++}`);
      return tmp.dir;
    };
    const engine = await compiled(opts);
    plainRun(fresh(), 2000);
    await engineRun(engine, fresh(), 2000);
    const { baselines, subjects } = await bracketed(
      Math.max(3, opts.rounds),
      () => Promise.resolve(plainRun(fresh(), count)),
      () => engineRun(engine, fresh(), count),
    );
    const baseline = bracketMean(baselines);
    const value = mean(subjects);
    // Context only: better-sqlite3's default in WAL mode is synchronous=FULL (an fsync per commit).
    const full = plainRun(fresh(), Math.min(count, 2000), 'FULL');
    opts.log(`engine-inserts: ${count} inserts per run; engine ${subjects.map((x) => fmtNumber(x)).join(', ')} tx/s; plain ${baselines.map((x) => fmtNumber(x)).join(', ')} tx/s`);
    return {
      name: 'engine-inserts',
      unit: 'tx/s',
      value,
      baseline,
      ratio: value / baseline,
      target: 0.7,
      comparison: '>=',
      details: [
        `engine runs: ${subjects.map((x) => fmtNumber(x)).join(', ')}`,
        `plain runs: ${baselines.map((x) => fmtNumber(x)).join(', ')}`,
        `context: plain better-sqlite3 with its default synchronous=FULL: ${fmtNumber(full)} tx/s (engine ÷ that = ${fmtNumber(value / full, 2)})`,
      ],
    };
  },
};
