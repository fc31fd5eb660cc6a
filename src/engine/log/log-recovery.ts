import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { PAGE_SIZE, type PageFrame } from '../wal/frame.js';
import { WallogCorruptError } from '../wal/errors.js';
import { newLogId } from '../wal/log-id.js';
import { WalReader, type WalTransaction } from '../wal/sqlite-wal.js';
import { warn } from '../warn.js';
import { readCaptureState, writeCaptureState, type CaptureState } from './capture-state.js';
import { ReplicationLog, type CompactionPolicy } from './replication-log.js';

/** Pages read and appended at a time when a new log is seeded from the database. */
const SEED_PIECE_PAGES = 1024;

export interface RecoveredLog {
  log: ReplicationLog;
  reader: WalReader;
  /** The WAL generation the capture state describes (null: the next one starts at the log's end). */
  generation: { salt1: number; salt2: number } | null;
  /** Why a new log was started, or null when the old one continued. */
  newLogReason: string | null;
  /** WAL frames appended to the log during recovery. */
  recoveredFrames: number;
}

export function toPageFrames(txns: readonly WalTransaction[]): PageFrame[] {
  const frames: PageFrame[] = [];
  for (const t of txns) for (const f of t.frames) frames.push({ pageNo: f.pageNo, sizeAfter: f.sizeAfter, page: f.page });
  return frames;
}

/**
 * Continues the existing log when the WAL can be placed in it exactly, capturing committed WAL frames
 * the log does not hold yet. Returns null when that is not possible (the caller starts a new log).
 */
function tryContinue(dir: string, walPath: string, log: ReplicationLog, state: CaptureState | null): RecoveredLog | string {
  if (!state) return 'no capture state';
  const snapshotProblem = log.checkSnapshots();
  if (snapshotProblem) return `a log snapshot is unusable (${snapshotProblem})`;
  if (state.logId !== log.logId) return 'capture state belongs to another log';
  if (state.salt1 === null && state.genStartFrameNo !== log.nextFrameNo) return 'log and capture state disagree';
  const reader = new WalReader(walPath);
  const { transactions } = reader.readCommitted();
  const gen = reader.state.generation;
  const sameGen = gen !== null && state.salt1 === gen.salt1 && state.salt2 === gen.salt2;
  // A WAL generation the state does not name began after our last checkpoint (only the engine
  // checkpoints, and only once everything is captured), so none of its frames are in the log yet.
  const genStart = sameGen ? state.genStartFrameNo : log.nextFrameNo;
  const captured = log.nextFrameNo - genStart;
  if (captured < 0n) return 'log is shorter than the capture state says';
  let seen = 0n;
  let i = 0;
  while (i < transactions.length && seen < captured) seen += BigInt(transactions[i++]!.frames.length);
  if (seen !== captured) return 'WAL and log do not meet at a transaction boundary';
  // Safety net: the last captured WAL frame must be the log's last frame (unless compaction moved it
  // into a snapshot, where only the newest page images are kept).
  if (captured > 0n && log.nextFrameNo - 1n >= log.startFrameNo) {
    const lastWal = transactions[i - 1]!.frames.at(-1)!;
    const [lastLog] = log.readFrames(log.nextFrameNo - 1n, 1);
    if (!lastLog || lastLog.pageNo !== lastWal.pageNo || !lastLog.page.equals(lastWal.page)) return 'WAL content differs from the log';
  }
  const missing = toPageFrames(transactions.slice(i));
  let generation: RecoveredLog['generation'] = sameGen ? { salt1: gen.salt1, salt2: gen.salt2 } : null;
  if (missing.length > 0 && gen !== null) {
    if (!sameGen) writeCaptureState(dir, { logId: log.logId, salt1: gen.salt1, salt2: gen.salt2, genStartFrameNo: genStart });
    generation = { salt1: gen.salt1, salt2: gen.salt2 };
    log.append(missing);
  }
  return { log, reader, generation, newLogReason: null, recoveredFrames: missing.length };
}

/** A new log (new log_id) holding every page of the checkpointed database as one transaction. */
function seedNewLog(dir: string, namespace: string, walPath: string, main: Database.Database, policy: CompactionPolicy, reason: string): RecoveredLog {
  const result = main.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  if (result[0]?.busy) throw new Error('cannot checkpoint the database to start a new replication log');
  const log = ReplicationLog.create(dir, namespace, policy, newLogId());
  const pageCount = Number(main.pragma('page_count', { simple: true }));
  if (pageCount > 0) {
    // One transaction holding every page, read and appended in pieces (databases can be large).
    const fd = fs.openSync(main.name, 'r');
    try {
      for (let first = 1; first <= pageCount; first += SEED_PIECE_PAGES) {
        const last = Math.min(pageCount, first + SEED_PIECE_PAGES - 1);
        const frames: PageFrame[] = [];
        for (let p = first; p <= last; p++) {
          const page = Buffer.alloc(PAGE_SIZE);
          fs.readSync(fd, page, 0, PAGE_SIZE, (p - 1) * PAGE_SIZE);
          frames.push({ pageNo: p, sizeAfter: p === pageCount ? pageCount : 0, page });
        }
        if (last === pageCount) log.append(frames);
        else log.appendPart(frames);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  log.sync();
  writeCaptureState(dir, { logId: log.logId, salt1: null, salt2: null, genStartFrameNo: log.nextFrameNo }, true);
  return { log, reader: new WalReader(walPath), generation: null, newLogReason: reason, recoveredFrames: 0 };
}

/**
 * Opens a namespace's replication log before it serves (docs/REPLICATION_LOG.md): continues it when
 * the log and the WAL agree, otherwise starts a new log from the database. Never serves bad frames.
 */
export function recoverLog(dir: string, namespace: string, walPath: string, main: Database.Database, policy: CompactionPolicy): RecoveredLog {
  let log: ReplicationLog | null = null;
  try {
    log = ReplicationLog.open(dir, namespace, policy);
  } catch (err) {
    if (!(err instanceof WallogCorruptError)) throw err;
    warn(`namespace ${namespace}: replication log is corrupt (${err.message}); starting a new log from the database`);
  }
  if (log) {
    let outcome: RecoveredLog | string;
    try {
      outcome = tryContinue(dir, walPath, log, readCaptureState(dir));
    } catch (err) {
      log.close();
      throw err;
    }
    if (typeof outcome !== 'string') return outcome;
    warn(`namespace ${namespace}: cannot continue the replication log (${outcome}); starting a new log from the database`);
    log.close();
    return seedNewLog(dir, namespace, walPath, main, policy, outcome);
  }
  return seedNewLog(dir, namespace, walPath, main, policy, 'no replication log');
}
