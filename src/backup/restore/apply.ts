/**
 * Applies WAL frames to a plain database file, one whole transaction at a time, with the result
 * of replaying them in order (write every page at `(pageNo - 1) × pageSize`, then cut or grow the
 * file to `sizeAfter` pages at each commit) but the work of SQLite's checkpoint: committed pages
 * are collected in memory, newest image per page, and written once, in page order, when they
 * exceed `memoryLimit` and at the end. The file is cut only where the database shrank in between
 * (pages above the smallest committed size read as zeros after a cut, as they would have) and set
 * to the last commit's size after each write-out.
 *
 * Frames left without a commit frame are dropped. A transaction that alone exceeds `memoryLimit`
 * moves its pages to a spill file beside the target and is written directly at its commit, so
 * memory stays bounded whatever the transaction size.
 *
 * `held`: the file is not there yet (the snapshot is still being downloaded into it): nothing is
 * read or written until release(); the caller must release before bytesHeld reaches the limit.
 */
import fs from 'node:fs';
import { readFully, writeFully } from '../../engine/wal/fs-util.js';

export interface ApplyFrame {
  pageNo: number;
  sizeAfter: number;
  /** Kept by reference until its transaction's commit frame (then copied) or ownPending(): do not reuse it before. */
  page: Uint8Array;
}

const DEFAULT_MEMORY_LIMIT = 64 * 1024 * 1024;
/** A WAL frame's header, before its page. */
const FRAME_HEADER_BYTES = 24;
/** Buffers per writev (below every platform's IOV_MAX). */
const MAX_IOV = 512;

export class PageApplier {
  private fd: number | null = null;
  /** The transaction being read: page number → its newest image, or its offset in the spill file. */
  private pending = new Map<number, Uint8Array | number>();
  private pendingFrames = 0;
  private pendingBytes = 0;
  private spillFd: number | null = null;
  private spillSize = 0;
  private readonly spillPath: string;
  /** Committed pages not yet written: page number → newest image. */
  private dirty = new Map<number, Buffer>();
  /** Smallest size (pages) the database had since the last write-out (or the file's, if smaller): above it the file was cut. */
  private lowWater = Infinity;
  /** Bytes the file has (as of the last write-out). */
  private fileBytes = 0;
  private held: boolean;
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
  /** Pages written to the file (at most one per page and write-out; frames applied is the replay's count). */
  pagesWritten = 0;

  constructor(
    readonly file: string,
    readonly pageSize: number,
    private readonly memoryLimit = DEFAULT_MEMORY_LIMIT,
    options: { held?: boolean } = {},
  ) {
    this.spillPath = `${file}.spill`;
    this.held = options.held === true;
    if (!this.held) this.open();
  }

  /** Frames waiting for their commit. */
  get uncommittedFrames(): number {
    return this.pendingFrames;
  }

  /** Page bytes in memory (committed and not written, plus the open transaction's). */
  get bytesHeld(): number {
    return this.dirty.size * this.pageSize + this.pendingBytes;
  }

  /** Whether one more page would exceed the memory limit (while held: release first). */
  get full(): boolean {
    return this.bytesHeld + this.pageSize > this.memoryLimit;
  }

  /** The file is complete (the snapshot is in): from now on pages are written to it. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.open();
  }

  /**
   * add() for the WAL frame at `at` in `payload` (its 24-byte header, then the page). A transaction
   * of this one frame (the common case) is committed straight from the payload: no page view, no
   * pending map; otherwise the page is held by reference, as with add().
   */
  addFrame(payload: Buffer, at: number): boolean {
    const pageNo = payload.readUInt32BE(at);
    const sizeAfter = payload.readUInt32BE(at + 4);
    const from = at + FRAME_HEADER_BYTES;
    const oneFrame = sizeAfter !== 0 && this.pendingFrames === 0 && this.spillFd === null && Number.isInteger(pageNo) && pageNo >= 1 && from + this.pageSize <= payload.length;
    if (oneFrame) this.makeRoom(this.pageSize);
    // (makeRoom starts a spill file only under a memory limit below one page: then the spill path)
    if (!oneFrame || this.spillFd !== null) return this.add({ pageNo, sizeAfter, page: payload.subarray(from, from + this.pageSize) });
    this.firstTransactionWrotePage1 ??= pageNo === 1;
    const previous = this.sizeAfter ?? this.lowWater;
    if (pageNo <= sizeAfter) this.keepDirty(pageNo, payload, from);
    this.committed(sizeAfter, previous, 1);
    return true;
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

  /** Copies the open transaction's page images held by reference: the frames added so far may be reused. */
  ownPending(): void {
    for (const [pageNo, image] of this.pending) {
      if (typeof image !== 'number') this.pending.set(pageNo, Buffer.from(image));
    }
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

  /** Drops what is pending and writes every committed page: the file is complete (not synced). */
  flush(): void {
    this.discardPending();
    this.release();
    this.writeOut();
  }

  /** The file's descriptor after flush() (to sync it); null before it is open. */
  get descriptor(): number | null {
    return this.fd;
  }

  /** flush(), then fsyncs and closes the file (and removes the spill file). */
  close(): void {
    if (this.closed) return;
    try {
      this.flush();
      fs.fsyncSync(this.fd!);
    } finally {
      this.destroy();
    }
  }

  /** Closes without writing or syncing (after a failure, or after close's work was done); idempotent. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.closeSpill();
    this.dirty = new Map();
  }

  private open(): void {
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.fileBytes = fs.fstatSync(this.fd).size;
    this.lowWater = Math.min(this.lowWater, Math.floor(this.fileBytes / this.pageSize));
  }

  /** Before `bytes` more are held: the committed pages are written out when full, and a transaction too big for memory starts spilling. */
  private makeRoom(bytes: number): void {
    if (this.spillFd === null && !this.held && this.full) {
      if (this.dirty.size > 0) this.writeOut();
      if (this.pendingBytes + bytes > this.memoryLimit) this.startSpill();
    }
  }

  /** The newest committed image of `pageNo`: `pageSize` bytes of `src` from `start`, copied. */
  private keepDirty(pageNo: number, src: Uint8Array, start: number): void {
    const have = this.dirty.get(pageNo);
    const image = have ?? Buffer.allocUnsafeSlow(this.pageSize);
    if (Buffer.isBuffer(src)) src.copy(image, 0, start, start + this.pageSize);
    else image.set(src.subarray(start, start + this.pageSize));
    if (have === undefined) this.dirty.set(pageNo, image);
  }

  /** The bookkeeping of a commit of `frames` frames (the pages are in `dirty`): cut pages dropped, counters. */
  private committed(sizeAfter: number, previous: number, frames: number): void {
    if (sizeAfter < previous) {
      for (const pageNo of this.dirty.keys()) if (pageNo > sizeAfter) this.dirty.delete(pageNo);
    }
    this.lowWater = Math.min(this.lowWater, sizeAfter);
    this.transactions++;
    this.framesApplied += frames;
    this.sizeAfter = sizeAfter;
  }

  private stage(pageNo: number, page: Uint8Array): void {
    this.makeRoom(page.length);
    if (this.spillFd === null) {
      if (!this.pending.has(pageNo)) this.pendingBytes += page.length;
      this.pending.set(pageNo, page);
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
    this.firstTransactionWrotePage1 ??= this.pending.has(1);
    if (this.spillFd !== null) {
      this.commitSpilled(sizeAfter);
      this.transactions++;
      this.framesApplied += this.pendingFrames;
      this.sizeAfter = sizeAfter;
    } else {
      const previous = this.sizeAfter ?? this.lowWater;
      for (const [pageNo, image] of this.pending) {
        if (pageNo > sizeAfter) continue; // cut away by this very commit
        this.keepDirty(pageNo, image as Uint8Array, 0);
      }
      this.committed(sizeAfter, previous, this.pendingFrames);
    }
    this.reset();
  }

  /** A transaction too large for memory: what came before is written first, then its pages from the spill file. */
  private commitSpilled(sizeAfter: number): void {
    if (this.held) throw new Error('a spilled transaction committed while the file is held');
    this.writeOut();
    const fd = this.fd!;
    const scratch = Buffer.allocUnsafe(this.pageSize);
    const pages = [...this.pending.keys()].sort((a, b) => a - b);
    for (const pageNo of pages) {
      if (pageNo > sizeAfter) continue;
      const image = this.pending.get(pageNo)!;
      let bytes: Uint8Array;
      if (typeof image === 'number') {
        if (readFully(this.spillFd!, scratch, 0, this.pageSize, image) !== this.pageSize) throw new Error('the spill file is shorter than written');
        bytes = scratch;
      } else {
        bytes = image;
      }
      writeFully(fd, bytes, (pageNo - 1) * this.pageSize);
      this.fileBytes = Math.max(this.fileBytes, pageNo * this.pageSize);
      this.pagesWritten++;
    }
    this.setFileSize(sizeAfter);
  }

  /** Writes the committed pages in page order (runs of adjacent pages in one call) and sets the file's size. */
  private writeOut(): void {
    if (this.held || this.sizeAfter === null) return;
    const fd = this.fd!;
    const size = this.pageSize;
    if (this.lowWater * size < this.fileBytes) {
      fs.ftruncateSync(fd, this.lowWater * size);
      this.fileBytes = this.lowWater * size;
    }
    const pages = [...this.dirty.keys()].sort((a, b) => a - b);
    let i = 0;
    while (i < pages.length) {
      const first = pages[i]!;
      const run: Buffer[] = [];
      while (i < pages.length && pages[i] === first + run.length && run.length < MAX_IOV) run.push(this.dirty.get(pages[i++]!)!);
      const at = (first - 1) * size;
      const bytes = run.length * size;
      const n = fs.writevSync(fd, run, at);
      if (n < bytes) writeFully(fd, Buffer.concat(run).subarray(n), at + n);
      this.fileBytes = Math.max(this.fileBytes, at + bytes);
      this.pagesWritten += run.length;
    }
    this.dirty = new Map();
    this.setFileSize(this.sizeAfter);
  }

  private setFileSize(pages: number): void {
    if (this.fileBytes !== pages * this.pageSize) fs.ftruncateSync(this.fd!, pages * this.pageSize);
    this.fileBytes = pages * this.pageSize;
    this.lowWater = pages;
  }

  private reset(): void {
    this.pending.clear();
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
