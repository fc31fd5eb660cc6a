/**
 * `wallog-capture`: where the current SQLite WAL generation sits in the replication log, and what the
 * database file looked like at the last checkpoint. Written when a WAL generation begins, at every
 * checkpoint and when a new log is seeded — never per commit: atomically, by rename, when a new log
 * is seeded, and in place otherwise (CaptureStateFile).
 *
 * WAL frame i of the generation with these salts is log frame `genStartFrameNo + i`. Salts null =
 * "the next WAL generation, whatever its salts, starts at genStartFrameNo" (a newly seeded log).
 */
import fs from 'node:fs';
import type { FaultInjector } from '../faults.js';
import { writeAtomically, writeFully } from '../wal/fs-util.js';

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

/** The file's length: every state is padded to it, so it fits one disk sector and never changes size. */
export const CAPTURE_STATE_BYTES = 512;

function encodeCaptureState(state: CaptureState): Buffer {
  const text = JSON.stringify({ ...state, genStartFrameNo: state.genStartFrameNo.toString() });
  // Padded with spaces (JSON allows them after the value); a longer state is written as it is.
  return Buffer.from(text.length < CAPTURE_STATE_BYTES ? text.padEnd(CAPTURE_STATE_BYTES, ' ') : text, 'utf8');
}

/**
 * Replaces the state file atomically (write, rename). `durable` adds an fsync: needed only where a
 * power loss must not lose it (log creation); elsewhere a lost or stale state makes recovery start
 * a new log, which is safe.
 */
export function writeCaptureState(file: string, state: CaptureState, faults: FaultInjector, durable = false): void {
  faults.at('capture-state');
  const bytes = encodeCaptureState(state);
  writeAtomically(file, (fd) => writeFully(fd, bytes, 0), { durable });
}

/**
 * The state file of one open log, rewritten at every checkpoint and WAL restart. A durable write
 * (log creation) replaces the file by rename as `writeCaptureState` does; the others overwrite it in
 * place through one descriptor kept open: a single write of one padded sector at offset 0, which a
 * killed process either made whole or not at all (the kernel copies it into the page cache in one
 * piece), and which a power loss can at worst leave stale or unreadable — the same as a rename
 * without fsync, and recovery starts a new log from an unreadable state, which is safe. This saves
 * the temporary file, the rename and, on ext4, the flush a rename over an existing file starts,
 * about half a millisecond each time.
 */
export class CaptureStateFile {
  #fd: number | null = null;

  constructor(
    readonly path: string,
    private readonly faults: FaultInjector,
  ) {}

  write(state: CaptureState, durable = false): void {
    this.faults.at('capture-state');
    const bytes = encodeCaptureState(state);
    if (!durable && bytes.length === CAPTURE_STATE_BYTES) {
      const fd = this.#open();
      if (fd !== null) {
        writeFully(fd, bytes, 0);
        return;
      }
    }
    // The descriptor would name the replaced file: closed first, the next write opens the new one.
    this.close();
    writeAtomically(this.path, (fd) => writeFully(fd, bytes, 0), { durable });
  }

  close(): void {
    if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#fd = null;
  }

  /** The descriptor of a state file of the right length; null when there is none yet (or an older one). */
  #open(): number | null {
    if (this.#fd !== null) return this.#fd;
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (fs.fstatSync(fd).size !== CAPTURE_STATE_BYTES) {
      fs.closeSync(fd);
      return null;
    }
    this.#fd = fd;
    return fd;
  }
}
