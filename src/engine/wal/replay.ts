/**
 * Applies page frames to a plain database file: each page is written at (pageNo-1)*pageSize and
 * each commit truncates or extends the file to sizeAfter pages. Frames are applied one whole
 * transaction at a time; a trailing transaction without its commit frame is not applied unless
 * asked for.
 */
import { closeSync, constants, fsyncSync, ftruncateSync, openSync } from 'node:fs';
import { writeFully } from './fs-util.js';

/** The part of a frame replay needs (SQLite WAL frames and sqld frames both fit). */
export interface ReplayFrame {
  pageNo: number;
  sizeAfter: number;
  page: Uint8Array;
}

export interface ReplayOptions {
  /** Also write the frames of a trailing transaction that has no commit frame (default false). */
  applyUncommitted?: boolean;
}

export interface ReplayResult {
  /** Transactions applied (commit frames seen). */
  transactions: number;
  /** Frames written, including uncommitted ones when asked for. */
  framesApplied: number;
  /** Frames of a trailing uncommitted transaction that were left out. */
  framesSkipped: number;
  /** Database size in pages after the last applied commit, or null when none was applied. */
  sizeAfter: number | null;
}

function writePage(fd: number, frame: ReplayFrame): void {
  if (!Number.isInteger(frame.pageNo) || frame.pageNo < 1) throw new RangeError(`invalid page number ${frame.pageNo}`);
  writeFully(fd, frame.page, (frame.pageNo - 1) * frame.page.length);
}

/** Replays `frames` (in log order) into the file at `path`, creating it if needed, then fsyncs. */
export function replayIntoFile(path: string, frames: Iterable<ReplayFrame>, options: ReplayOptions = {}): ReplayResult {
  const result: ReplayResult = { transactions: 0, framesApplied: 0, framesSkipped: 0, sizeAfter: null };
  // Read-write, created when missing, never truncated on open (positional writes need no O_APPEND).
  const handle = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    let pending: ReplayFrame[] = [];
    let pageSize = 0;
    for (const frame of frames) {
      if (pageSize === 0) pageSize = frame.page.length;
      if (frame.page.length !== pageSize) throw new RangeError(`mixed page sizes: ${frame.page.length} after ${pageSize}`);
      pending.push(frame);
      if (frame.sizeAfter === 0) continue;
      for (const f of pending) writePage(handle, f);
      ftruncateSync(handle, frame.sizeAfter * pageSize);
      result.transactions += 1;
      result.framesApplied += pending.length;
      result.sizeAfter = frame.sizeAfter;
      pending = [];
    }
    if (options.applyUncommitted === true) {
      for (const f of pending) writePage(handle, f);
      result.framesApplied += pending.length;
    } else {
      result.framesSkipped = pending.length;
    }
    fsyncSync(handle);
  } finally {
    closeSync(handle);
  }
  return result;
}

/** Replays whole transactions (e.g. from `WalReader.readCommitted`) into the file at `path`. */
export function replayTransactions(path: string, transactions: Iterable<{ frames: readonly ReplayFrame[] }>): ReplayResult {
  function* flatten(): Generator<ReplayFrame> {
    for (const t of transactions) yield* t.frames;
  }
  return replayIntoFile(path, flatten());
}
