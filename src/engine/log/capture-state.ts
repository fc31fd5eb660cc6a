/**
 * `wallog-capture`: where the current SQLite WAL generation sits in the replication log, and what the
 * database file looked like at the last checkpoint. Written (atomically, by rename) when a WAL
 * generation begins, at every checkpoint and when a new log is seeded — never per commit.
 *
 * WAL frame i of the generation with these salts is log frame `genStartFrameNo + i`. Salts null =
 * "the next WAL generation, whatever its salts, starts at genStartFrameNo" (a newly seeded log).
 */
import fs from 'node:fs';
import type { FaultInjector } from '../faults.js';
import { writeAtomically } from '../wal/fs-util.js';

/** The database file as the last checkpoint left it: a file replaced behind our back differs. */
export interface DbIdentity {
  /** File size in bytes. */
  size: number;
  mtimeMs: number;
  /** sha1 of page 1 (header: change counter, in-header size, schema cookie, freelist). */
  page1: string;
}

export interface CaptureState {
  logId: string;
  salt1: number | null;
  salt2: number | null;
  genStartFrameNo: bigint;
  /** Counts WAL generations since the log began (WalCoordinates.generation). */
  walGeneration: number;
  /**
   * Frames of this generation our last checkpoint covered (everything captured at that moment), or
   * null when the engine has not checkpointed this generation. A WAL that restarts while frames we
   * read are not covered was restarted behind our back.
   */
  checkpointedFrames: number | null;
  /** The database file after the last checkpoint or seeding; null in files of older versions. */
  dbIdentity: DbIdentity | null;
}

export function sameIdentity(a: DbIdentity, b: DbIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.page1 === b.page1;
}

export function readCaptureState(file: string): CaptureState | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const int = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);
    if (typeof raw.logId !== 'string' || typeof raw.genStartFrameNo !== 'string' || !/^\d+$/.test(raw.genStartFrameNo)) return null;
    const id = raw.dbIdentity as Record<string, unknown> | null | undefined;
    const dbIdentity =
      id && typeof id.size === 'number' && typeof id.mtimeMs === 'number' && typeof id.page1 === 'string' ? { size: id.size, mtimeMs: id.mtimeMs, page1: id.page1 } : null;
    return {
      logId: raw.logId,
      salt1: int(raw.salt1),
      salt2: int(raw.salt2),
      genStartFrameNo: BigInt(raw.genStartFrameNo),
      walGeneration: int(raw.walGeneration) ?? 0,
      checkpointedFrames: int(raw.checkpointedFrames),
      dbIdentity,
    };
  } catch {
    return null;
  }
}

/**
 * Replaces the state file atomically (write, rename). `durable` adds an fsync: needed only where a
 * power loss must not lose it (log creation); elsewhere a lost or stale state makes recovery start
 * a new log, which is safe.
 */
export function writeCaptureState(file: string, state: CaptureState, faults: FaultInjector, durable = false): void {
  faults.at('capture-state');
  const text = JSON.stringify({ ...state, genStartFrameNo: state.genStartFrameNo.toString() });
  writeAtomically(file, (fd) => fs.writeSync(fd, text), { durable });
}
