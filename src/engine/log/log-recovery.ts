import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { LibsqlctlError } from '../../errors.js';
import type { NamespacePaths } from '../data-dir.js';
import type { SqliteFiles } from '../files/sqlite-files.js';
import { PAGE_SIZE, type PageFrame } from '../wal/frame.js';
import { WallogCorruptError } from '../wal/errors.js';
import { newLogId } from '../wal/log-id.js';
import type { WalReader, WalTransaction } from '../wal/sqlite-wal.js';
import { readCaptureState, sameIdentity, type CaptureState, type CaptureStateFile } from './capture-state.js';
import { dbIdentity } from './db-identity.js';
import { ReplicationLog, type LogContext } from './replication-log.js';

/** Pages read and appended at a time when a new log is seeded from the database. */
const SEED_PIECE_PAGES = 1024;

export interface RecoveryInput {
  log: LogContext;
  files: SqliteFiles;
  /** The maintenance connection. */
  main: Database.Database;
  /** A reader on the engine's WalFile, at its initial state. */
  reader: WalReader;
  /** Where the capture state is written (`paths.captureState`). */
  stateFile: CaptureStateFile;
}

export interface RecoveredLog {
  log: ReplicationLog;
  /** The capture state now on disk. */
  state: CaptureState;
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
 * Continues the existing log when the database file is the one the log last saw and the WAL can be
 * placed in the log exactly, capturing committed WAL frames the log does not hold yet. Returns why
 * not otherwise (the caller starts a new log).
 */
async function tryContinue(input: RecoveryInput, log: ReplicationLog, state: CaptureState | null): Promise<RecoveredLog | string> {
  if (!state) return 'no capture state';
  if (state.logId !== log.logId) return 'capture state belongs to another log';
  if (state.dbIdentity && !sameIdentity(state.dbIdentity, dbIdentity(input.files))) {
    return 'the database file changed behind the server (replaced, restored, or checkpointed by another process)';
  }
  const snapshotProblem = await log.checkSnapshots();
  if (snapshotProblem) return `a log snapshot is unusable (${snapshotProblem})`;
  if (state.salt1 === null && state.genStartFrameNo !== log.nextFrameNo) return 'log and capture state disagree';
  const { reader } = input;
  const { transactions } = reader.readCommitted();
  const gen = reader.state.generation;
  const sameGen = gen !== null && state.salt1 === gen.salt1 && state.salt2 === gen.salt2;
  if (gen === null && state.salt1 !== null) {
    // No WAL on disk: fine only when the database already holds everything the log has of the
    // generation the state names (someone removed a WAL that held logged frames otherwise).
    const logged = log.nextFrameNo - state.genStartFrameNo;
    if (logged > 0n && (state.checkpointedFrames === null || BigInt(state.checkpointedFrames) < logged)) return 'the WAL holding logged frames is missing';
  }
  if (!sameGen && gen !== null && state.salt1 !== null) {
    // Only the engine checkpoints, and a WAL restarts only after a checkpoint: a generation the state
    // does not name is fine only when our last checkpoint covered everything logged before it.
    const logged = log.nextFrameNo - state.genStartFrameNo;
    if (state.checkpointedFrames === null || BigInt(state.checkpointedFrames) < logged) return 'the WAL was restarted behind the server';
  }
  // A WAL generation the state does not name began after our last checkpoint, so none of its
  // frames are in the log yet.
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
  let next = state;
  if (gen !== null && !sameGen && transactions.length > 0) {
    next = { ...state, salt1: gen.salt1, salt2: gen.salt2, genStartFrameNo: genStart, walGeneration: state.walGeneration + 1, checkpointedFrames: null };
    input.stateFile.write(next);
  }
  if (missing.length > 0) log.append(missing);
  return { log, state: next, newLogReason: null, recoveredFrames: missing.length };
}

/**
 * A new log (new log_id) holding every page of the checkpointed database as one transaction. The
 * pages are read through the engine's descriptor inside a read transaction on a fully checkpointed
 * WAL (read lock 0), which keeps any other process from checkpointing into the file meanwhile.
 */
export function seedNewLog(input: RecoveryInput, reason: string): RecoveredLog {
  const { main, files } = input;
  const result = main.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  if (result[0]?.busy) {
    throw new LibsqlctlError('SQLITE_BUSY', 'cannot checkpoint the database to start a new replication log: another process holds it (retried at the next write)');
  }
  const log = ReplicationLog.create(input.log, newLogId());
  main.exec('BEGIN');
  try {
    main.prepare('SELECT 1 FROM sqlite_master LIMIT 1').all();
    const pageCount = Number(main.pragma('page_count', { simple: true }));
    // One transaction holding every page, read and appended in pieces (databases can be large).
    for (let first = 1; first <= pageCount; first += SEED_PIECE_PAGES) {
      const last = Math.min(pageCount, first + SEED_PIECE_PAGES - 1);
      const frames: PageFrame[] = [];
      for (let p = first; p <= last; p++) {
        const page = Buffer.alloc(PAGE_SIZE);
        files.readDb(page, (p - 1) * PAGE_SIZE);
        frames.push({ pageNo: p, sizeAfter: p === pageCount ? pageCount : 0, page });
      }
      if (last === pageCount) log.append(frames);
      else log.appendPart(frames);
    }
    log.sync();
    const state: CaptureState = {
      logId: log.logId,
      salt1: null,
      salt2: null,
      genStartFrameNo: log.nextFrameNo,
      walGeneration: 0,
      checkpointedFrames: null,
      dbIdentity: dbIdentity(files),
    };
    input.stateFile.write(state, true);
    input.reader.restore({ generation: null, offset: 32, checksum: [0, 0] });
    return { log, state, newLogReason: reason, recoveredFrames: 0 };
  } catch (err) {
    log.close();
    throw err;
  } finally {
    main.exec('COMMIT');
  }
}

/**
 * Opens a namespace's replication log before it serves (docs/REPLICATION_LOG.md): continues it when
 * the log, the database file and the WAL agree, otherwise starts a new log from the database. Never
 * serves bad frames.
 */
export async function recoverLog(input: RecoveryInput): Promise<RecoveredLog> {
  const { logger, namespace } = input.log;
  input.log.faults.at('startup');
  let log: ReplicationLog | null = null;
  try {
    log = await ReplicationLog.open(input.log);
  } catch (err) {
    if (!(err instanceof WallogCorruptError)) throw err;
    logger.warn(`namespace ${namespace}: replication log is corrupt (${err.message}); starting a new log from the database`);
  }
  if (!log) return seedNewLog(input, 'no replication log');
  let outcome: RecoveredLog | string;
  try {
    outcome = await tryContinue(input, log, readCaptureState(input.log.paths.captureState));
  } catch (err) {
    log.close();
    throw err;
  }
  if (typeof outcome !== 'string') return outcome;
  logger.warn(`namespace ${namespace}: cannot continue the replication log (${outcome}); starting a new log from the database`);
  log.close();
  input.reader.restore({ generation: null, offset: 32, checksum: [0, 0] });
  return seedNewLog(input, outcome);
}

/**
 * For a namespace that is not open, whose database file something else wrote (a restore, a fork, a
 * loaded dump): its next open starts a new log (new `log_id`) whatever the files say. An open
 * namespace uses `PrimaryRole.startNewLog` instead.
 */
export function invalidateLog(paths: NamespacePaths): void {
  fs.rmSync(paths.captureState, { force: true });
}
