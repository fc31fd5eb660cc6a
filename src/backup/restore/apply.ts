/**
 * Applies WAL frames to a plain database file, one whole transaction at a time: the pages of a
 * transaction are held until its commit frame, then written at `(pageNo - 1) × pageSize` and the
 * file is cut (or grown) to `sizeAfter` pages, as SQLite's checkpoint would. A transaction larger
 * than `memoryLimit` moves its pages to a spill file beside the target, so memory stays bounded
 * whatever the transaction size. Frames left without a commit frame are dropped.
 */
import fs from 'node:fs';
import { readFully, writeFully } from '../../engine/wal/fs-util.js';

export interface ApplyFrame {
  pageNo: number;
  sizeAfter: number;
  page: Uint8Array;
}

const DEFAULT_MEMORY_LIMIT = 64 * 1024 * 1024;

export class PageApplier {
  private readonly fd: number;
  /** Page number → its newest image in memory, or its offset in the spill file. */
  private pending = new Map<number, Buffer | number>();
  private pendingFrames = 0;
  private pendingBytes = 0;
  private spillFd: number | null = null;
  private spillSize = 0;
  private readonly spillPath: string;
  private closed = false;
  /** Transactions applied. */
  transactions = 0;
  /** Frames of applied transactions. */
  framesApplied = 0;
  /** Frames dropped because their transaction had no commit frame. */
  framesDiscarded = 0;
  /** Database size in pages after the last commit (null before any). */
  sizeAfter: number | null = null;
  /** Whether the first applied transaction wrote page 1 (a database that starts from nothing must). */
  firstTransactionWrotePage1: boolean | null = null;

  constructor(
    readonly file: string,
    readonly pageSize: number,
    private readonly memoryLimit = DEFAULT_MEMORY_LIMIT,
  ) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.spillPath = `${file}.spill`;
  }

  /** Frames waiting for their commit. */
  get uncommittedFrames(): number {
    return this.pendingFrames;
  }

  /** Adds the next frame; returns true when it was a commit frame (its transaction is now applied). */
  add(frame: ApplyFrame): boolean {
    if (frame.page.length !== this.pageSize) throw new RangeError(`page of ${frame.page.length} bytes, expected ${this.pageSize}`);
    if (!Number.isInteger(frame.pageNo) || frame.pageNo < 1) throw new RangeError(`invalid page number ${frame.pageNo}`);
    this.stage(frame.pageNo, frame.page);
    this.pendingFrames++;
    if (frame.sizeAfter === 0) return false;
    this.commit(frame.sizeAfter);
    return true;
  }

  /**
   * Drops the frames of an unfinished transaction; returns how many. `uncommitted` false: the
   * transaction commits later but is not wanted (after a point in time), so it is not counted.
   */
  discardPending(uncommitted = true): number {
    const n = this.pendingFrames;
    if (uncommitted) this.framesDiscarded += n;
    this.reset();
    return n;
  }

  /** Drops what is pending, fsyncs and closes the file (and removes the spill file). */
  close(): void {
    if (this.closed) return;
    this.discardPending();
    try {
      fs.fsyncSync(this.fd);
    } finally {
      this.destroy();
    }
  }

  /** Closes without syncing (after a failure); idempotent. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    this.closeSpill();
  }

  private stage(pageNo: number, page: Uint8Array): void {
    if (this.spillFd === null && this.pendingBytes + page.length > this.memoryLimit) this.startSpill();
    if (this.spillFd === null) {
      if (!this.pending.has(pageNo)) this.pendingBytes += page.length;
      this.pending.set(pageNo, Buffer.from(page));
      return;
    }
    writeFully(this.spillFd, page, this.spillSize);
    this.pending.set(pageNo, this.spillSize);
    this.spillSize += page.length;
  }

  private startSpill(): void {
    this.spillFd = fs.openSync(this.spillPath, 'w+', 0o600);
    this.spillSize = 0;
    for (const [pageNo, image] of this.pending) {
      if (typeof image === 'number') continue;
      writeFully(this.spillFd, image, this.spillSize);
      this.pending.set(pageNo, this.spillSize);
      this.spillSize += image.length;
    }
    this.pendingBytes = 0;
  }

  private commit(sizeAfter: number): void {
    const scratch = this.spillFd === null ? null : Buffer.allocUnsafe(this.pageSize);
    for (const [pageNo, image] of this.pending) {
      let bytes: Buffer;
      if (typeof image === 'number') {
        if (readFully(this.spillFd!, scratch!, 0, this.pageSize, image) !== this.pageSize) throw new Error('the spill file is shorter than written');
        bytes = scratch!;
      } else {
        bytes = image;
      }
      writeFully(this.fd, bytes, (pageNo - 1) * this.pageSize);
    }
    fs.ftruncateSync(this.fd, sizeAfter * this.pageSize);
    this.firstTransactionWrotePage1 ??= this.pending.has(1);
    this.transactions++;
    this.framesApplied += this.pendingFrames;
    this.sizeAfter = sizeAfter;
    this.reset();
  }

  private reset(): void {
    this.pending = new Map();
    this.pendingFrames = 0;
    this.pendingBytes = 0;
    if (this.spillFd !== null) this.closeSpill();
  }

  private closeSpill(): void {
    if (this.spillFd !== null) {
      try {
        fs.closeSync(this.spillFd);
      } catch {
        // already closed
      }
      this.spillFd = null;
    }
    this.spillSize = 0;
    fs.rmSync(this.spillPath, { force: true });
  }
}
