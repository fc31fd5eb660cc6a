/**
 * Replays a ~100 MB replication log (sqld's wallog format, checksums verified) into an empty
 * database file and reports MB/s; the baseline is copying the same log file in the same run, so the
 * ratio says how close replay gets to raw sequential I/O on this machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PAGE_SIZE, type PageFrame } from '../src/engine/wal/frame.js';
import { newLogId } from '../src/engine/wal/log-id.js';
import { replayIntoFile } from '../src/engine/wal/replay.js';
import { WallogFile } from '../src/engine/wal/wallog-file.js';
import type { Benchmark, BenchOptions } from './types.js';
import { benchTempDir, bracketed, bracketMean, fmtNumber, mean } from './util.js';

const LOG_MB = 100;
const TXN_FRAMES = 256;

/** A database of about `mb` MB, then a wallog holding its pages as transactions of TXN_FRAMES frames. */
function buildLog(dir: string, mb: number): { logPath: string; dbPath: string; bytes: number } {
  const dbPath = path.join(dir, 'source.db');
  const db = new Database(dbPath);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)');
  const insert = db.prepare('INSERT INTO t (b) VALUES (?)');
  const blob = Buffer.alloc(3000);
  db.transaction(() => {
    for (let i = 0; i < Math.ceil((mb * 1_000_000) / 4130); i++) {
      blob.writeUInt32LE(i, 0);
      insert.run(blob);
    }
  })();
  const pages = Number(db.pragma('page_count', { simple: true }));
  db.close();
  const logPath = path.join(dir, 'wallog');
  const log = WallogFile.create(logPath, { logId: newLogId(), startFrameNo: 0n, startChecksum: 0n });
  const fd = fs.openSync(dbPath, 'r');
  try {
    for (let first = 1; first <= pages; first += TXN_FRAMES) {
      const frames: PageFrame[] = [];
      const last = Math.min(pages, first + TXN_FRAMES - 1);
      for (let p = first; p <= last; p++) {
        const page = Buffer.alloc(PAGE_SIZE);
        fs.readSync(fd, page, 0, PAGE_SIZE, (p - 1) * PAGE_SIZE);
        frames.push({ pageNo: p, sizeAfter: p === last ? pages : 0, page });
      }
      log.appendTransaction(frames, { fsync: false });
    }
    log.sync();
  } finally {
    fs.closeSync(fd);
    log.close();
  }
  return { logPath, dbPath, bytes: fs.statSync(logPath).size };
}

function replayOnce(dir: string, logPath: string, bytes: number, n: number): number {
  const target = path.join(dir, `replayed-${n}.db`);
  const log = WallogFile.open(logPath, { readOnly: true });
  const started = performance.now();
  try {
    replayIntoFile(target, log.iterateFrames());
  } finally {
    log.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const check = new Database(target, { readonly: true });
  try {
    const ok = check.pragma('integrity_check', { simple: true });
    if (ok !== 'ok') throw new Error(`replayed database is not intact: ${String(ok)}`);
  } finally {
    check.close();
    fs.rmSync(target, { force: true });
  }
  return bytes / 1_000_000 / seconds;
}

function copyOnce(dir: string, logPath: string, bytes: number, n: number): number {
  const target = path.join(dir, `copy-${n}`);
  const started = performance.now();
  fs.copyFileSync(logPath, target);
  const fd = fs.openSync(target, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const seconds = (performance.now() - started) / 1000;
  fs.rmSync(target, { force: true });
  return bytes / 1_000_000 / seconds;
}

export const logReplay: Benchmark = {
  name: 'log-replay',
  description: `replay of a ${LOG_MB} MB replication log into an empty database (MB/s) ÷ copying the same file`,
  async run(opts: BenchOptions) {
    const tmp = benchTempDir(opts, 'replay');
    try {
      opts.log(`log-replay: building a ${LOG_MB} MB log`);
      const { logPath, bytes } = buildLog(tmp.dir, LOG_MB);
      let n = 0;
      const { baselines, subjects } = await bracketed(
        Math.max(2, opts.rounds),
        () => Promise.resolve(copyOnce(tmp.dir, logPath, bytes, n++)),
        () => Promise.resolve(replayOnce(tmp.dir, logPath, bytes, n++)),
      );
      const value = mean(subjects);
      const baseline = bracketMean(baselines);
      return {
        name: 'log-replay',
        unit: 'MB/s',
        value,
        baseline,
        ratio: value / baseline,
        target: 0.1,
        comparison: '>=',
        details: [
          `log size ${fmtNumber(bytes / 1_000_000, 1)} MB; replay ${fmtNumber((bytes / 1_000_000 / value) * 1000)} ms per run (integrity_check ok)`,
          `replay runs: ${subjects.map((x) => fmtNumber(x)).join(', ')} MB/s; copy runs: ${baselines.map((x) => fmtNumber(x)).join(', ')} MB/s`,
        ],
      };
    } finally {
      tmp.remove();
    }
  },
};
