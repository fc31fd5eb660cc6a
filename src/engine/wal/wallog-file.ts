/**
 * sqld's `wallog` replication-log file (sqld-wire.md §11): a 64-byte header, then committed
 * 4120-byte frames. Frames of a transaction are appended past `frame_count` and fsynced; the
 * header rewrite with the new `frame_count` (fsynced) is the commit point. Bytes past
 * `frame_count` are a torn or rolled-back tail and are cut when the file is opened.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync } from 'node:fs';
import { crc64Chain, crc64ChainWords } from './crc64.js';
import { WallogCorruptError } from './errors.js';
import { decodeFrame, FRAME_HEADER_SIZE, FRAME_SIZE, PAGE_SIZE, type Frame, type PageFrame } from './frame.js';
import { fsyncDirOf, readFully, writeFully } from './fs-util.js';
import { isUuid } from './log-id.js';
import { CAPTURE_IO } from './native-checksums.js';
import {
  decodeWallogHeader,
  DEFAULT_SQLD_VERSION,
  encodeWallogHeader,
  WALLOG_HEADER_SIZE,
  WALLOG_VERSION,
  type SqldVersion,
  type WallogHeader,
} from './wallog-header.js';

/** Appended frames are written out once this many bytes are held back (a whole number of frames). */
const WRITE_BEHIND_BYTES = 256 * FRAME_SIZE;

export interface WallogCreateOptions {
  logId: string;
  startFrameNo: bigint;
  /** Checksum chained into the first frame (0 for a fresh log, the last checksum after compaction). */
  startChecksum: bigint;
  sqldVersion?: SqldVersion;
}

export interface WallogOpenOptions {
  /** Open without write access: a torn tail is ignored instead of cut. */
  readOnly?: boolean;
}

const VERIFY_CHUNK = 64;

/**
 * What writes captured frames straight into the log's write-behind buffer (the WAL reader's native
 * capture, WalReader): encoded frames, whole transactions only, with numbers and checksums chained
 * from what `io` holds (CAPTURE_IO), nothing of its own state changed until `commitFill`.
 */
export interface FrameFiller {
  /** Writes at most `maxFrames` frames at buf[offset…] (which has room for 24 bytes more); returns how many. */
  fillFrames(buf: Buffer, offset: number, maxFrames: number, io: Uint32Array): number;
  /** The log took the `frames` written by the last fillFrames; `io` as that call left it. */
  commitFill(frames: number, io: Uint32Array): void;
  /** The last fillFrames ran out of room with more frames possibly following. */
  readonly fillMore: boolean;
}

function frameOffset(index: bigint): number {
  return WALLOG_HEADER_SIZE + Number(index) * FRAME_SIZE;
}

export class WallogFile {
  readonly path: string;
  /** Bytes found past the committed frames when the file was opened (cut unless read-only). */
  readonly discardedTailBytes: number;
  #fd: number;
  #header: WallogHeader;
  /** Checksum of the last frame as its high and low 32 bits (no bigint per append). */
  #lastHi: number;
  #lastLo: number;
  #readOnly: boolean;
  #closed = false;
  #headerDirty = false;
  /** Encoded frames not yet written, starting at frame index `#wbFrom`. */
  #wb = Buffer.allocUnsafe(WRITE_BEHIND_BYTES);
  /** The same bytes, for the frame header fields (no range checks per field as Buffer's writers do). */
  #wbView = new DataView(this.#wb.buffer, this.#wb.byteOffset, this.#wb.byteLength);
  #wbUsed = 0;
  #wbFrom = 0n;
  /** appendFilled's exchange with the filler (CAPTURE_IO). */
  #fillIo = new Uint32Array(CAPTURE_IO.length);

  private constructor(path: string, fd: number, header: WallogHeader, lastChecksum: bigint, readOnly: boolean, tail: number) {
    this.path = path;
    this.#fd = fd;
    this.#header = header;
    this.#lastHi = Number(lastChecksum >> 32n);
    this.#lastLo = Number(lastChecksum & 0xffff_ffffn);
    this.#readOnly = readOnly;
    this.discardedTailBytes = tail;
  }

  /** Creates a new, empty log; fails if `path` exists. */
  static create(path: string, options: WallogCreateOptions): WallogFile {
    if (!isUuid(options.logId)) throw new RangeError(`logId must be a UUID, got ${options.logId}`);
    const header: WallogHeader = {
      startChecksum: options.startChecksum,
      logId: options.logId.toLowerCase(),
      startFrameNo: options.startFrameNo,
      frameCount: 0n,
      version: WALLOG_VERSION,
      pageSize: PAGE_SIZE,
      sqldVersion: options.sqldVersion ?? DEFAULT_SQLD_VERSION,
    };
    const bytes = encodeWallogHeader(header);
    const fd = openSync(path, 'wx+');
    try {
      writeFully(fd, bytes, 0);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    fsyncDirOf(path);
    return new WallogFile(path, fd, header, options.startChecksum, false, 0);
  }

  /** Opens an existing log, cutting a torn tail and verifying every committed frame. */
  static open(path: string, options: WallogOpenOptions = {}): WallogFile {
    const { fd, header, tail, readOnly } = openHeader(path, options);
    try {
      return new WallogFile(path, fd, header, verifyChain(path, fd, header), readOnly, tail);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * `open`, verifying the frames in slices with a turn of the event loop between them, so a large
   * log does not stall the server while a namespace opens.
   */
  static async openAsync(path: string, options: WallogOpenOptions = {}): Promise<WallogFile> {
    const { fd, header, tail, readOnly } = openHeader(path, options);
    try {
      return new WallogFile(path, fd, header, await verifyChain(path, fd, header, YIELD_EVERY_CHUNKS), readOnly, tail);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  get logId(): string {
    return this.#header.logId;
  }
  get startFrameNo(): bigint {
    return this.#header.startFrameNo;
  }
  get startChecksum(): bigint {
    return this.#header.startChecksum;
  }
  get frameCount(): bigint {
    return this.#header.frameCount;
  }
  get nextFrameNo(): bigint {
    return this.#header.startFrameNo + this.#header.frameCount;
  }
  /** frame_no of the last committed frame, or null when the log holds no frame. */
  get lastCommittedFrameNo(): bigint | null {
    return this.#header.frameCount === 0n ? null : this.nextFrameNo - 1n;
  }
  /** Checksum of the last frame (the start checksum when empty). */
  get lastChecksum(): bigint {
    return (BigInt(this.#lastHi) << 32n) | BigInt(this.#lastLo);
  }
  get sqldVersion(): SqldVersion {
    return this.#header.sqldVersion;
  }

  /**
   * Appends one committed transaction (or several whole ones): assigns frame numbers and chained
   * checksums, writes and fsyncs the frames, then rewrites and fsyncs the header. The last frame
   * must be a commit frame (`sizeAfter` ≠ 0). With `fsync: false` both writes go to the page cache
   * only (durable against a process crash; call `sync()` before relying on it across power loss).
   */
  appendTransaction(
    frames: readonly PageFrame[],
    options: { fsync?: boolean; deferHeader?: boolean; partial?: boolean; collect?: boolean } = {},
  ): { firstFrameNo: bigint; lastFrameNo: bigint; encoded: Buffer | null } {
    const durable = options.fsync ?? true;
    this.#checkOpen();
    if (this.#readOnly) throw new Error(`wallog ${this.path} is open read-only`);
    const last = frames.at(-1);
    if (last === undefined) throw new RangeError('a transaction needs at least one frame');
    // `partial` (with deferHeader): a piece of a transaction too big to hold in memory; the caller
    // appends the rest before the header is written, so readers never see it unfinished.
    if (last.sizeAfter === 0 && !(options.partial && options.deferHeader)) throw new RangeError('the last frame of a transaction must have sizeAfter > 0');
    const firstFrameNo = this.nextFrameNo;
    for (const f of frames) {
      if (f.pageNo < 1 || f.pageNo >>> 0 !== f.pageNo) throw new RangeError(`invalid page number ${f.pageNo}`);
      if (f.sizeAfter >>> 0 !== f.sizeAfter) throw new RangeError(`sizeAfter must be a u32, got ${f.sizeAfter}`);
      if (f.page.length !== PAGE_SIZE) throw new RangeError(`page must be ${PAGE_SIZE} bytes, got ${f.page.length}`);
    }
    if (!options.deferHeader) this.#flushFrames();
    // `collect`: a copy of the encoded frames for the caller (published to the log's readers).
    const out: Buffer[] | null = options.collect ? [] : null;
    let txnStart = this.#wbUsed;
    const wbUsedBefore = this.#wbUsed;
    let flushedDuring = false;
    let hi = this.#lastHi;
    let lo = this.#lastLo;
    let frameNo = Number(firstFrameNo);
    const countBefore = this.#header.frameCount;
    let added = 0;
    try {
      for (const f of frames) {
        // Frames are encoded straight into the write-behind buffer (flushed when full or on demand).
        if (this.#wbUsed + FRAME_SIZE > this.#wb.length) {
          out?.push(Buffer.from(this.#wb.subarray(txnStart, this.#wbUsed)));
          this.#flushFrames();
          txnStart = 0;
          flushedDuring = true;
        }
        if (this.#wbUsed === 0) this.#wbFrom = countBefore + BigInt(added);
        [hi, lo] = crc64ChainWords(hi, lo, f.page);
        const at = this.#wbUsed;
        const view = this.#wbView;
        view.setUint32(at, frameNo % 0x1_0000_0000, true);
        view.setUint32(at + 4, Math.floor(frameNo / 0x1_0000_0000), true);
        view.setUint32(at + 8, lo, true);
        view.setUint32(at + 12, hi, true);
        view.setUint32(at + 16, f.pageNo, true);
        view.setUint32(at + 20, f.sizeAfter, true);
        this.#wb.set(f.page, at + FRAME_HEADER_SIZE);
        this.#wbUsed += FRAME_SIZE;
        frameNo += 1;
        added += 1;
      }
    } catch (err) {
      // Nothing of this transaction counts: frames written past frame_count are a tail the next
      // append overwrites; frames still buffered are dropped (earlier transactions' were flushed).
      this.#wbUsed = flushedDuring ? 0 : wbUsedBefore;
      throw err;
    }
    out?.push(Buffer.from(this.#wb.subarray(txnStart, this.#wbUsed)));
    // The header object is this file's own (nobody else holds it): updated in place, no copy per append.
    this.#header.frameCount = countBefore + BigInt(added);
    this.#lastHi = hi;
    this.#lastLo = lo;
    if (options.deferHeader) {
      this.#headerDirty = true;
    } else {
      this.#flushFrames();
      if (durable) fsyncSync(this.#fd);
      writeFully(this.#fd, encodeWallogHeader(this.#header), 0);
      this.#headerDirty = false;
      if (durable) fsyncSync(this.#fd);
    }
    const encoded = out === null ? null : out.length === 1 ? out[0]! : Buffer.concat(out);
    return { firstFrameNo, lastFrameNo: this.nextFrameNo - 1n, encoded };
  }

  /**
   * Appends whole transactions a FrameFiller encodes straight into the write-behind buffer, as
   * `appendTransaction(frames, {fsync: false, deferHeader: true})` would have encoded them (the same
   * bytes: frame numbers and the CRC-64 chain continue from this file's). `beforeCommit` runs once
   * frames were written and before they count (a fault point); nothing counts when it throws.
   * Returns the frames appended (0: none, see `filler.fillMore`).
   */
  appendFilled(filler: FrameFiller, beforeCommit: () => void): number {
    this.#checkOpen();
    if (this.#readOnly) throw new Error(`wallog ${this.path} is open read-only`);
    let n = this.#fill(filler);
    if (n === 0 && filler.fillMore && this.#wbUsed > 0) {
      // A transaction bigger than what is left of the buffer: write out the buffered frames, try again.
      this.#flushFrames();
      n = this.#fill(filler);
    }
    if (n === 0) return 0;
    beforeCommit();
    if (this.#wbUsed === 0) this.#wbFrom = this.#header.frameCount;
    const io = this.#fillIo;
    this.#wbUsed += n * FRAME_SIZE;
    this.#header.frameCount += BigInt(n);
    this.#lastHi = io[CAPTURE_IO.crcHi]!;
    this.#lastLo = io[CAPTURE_IO.crcLo]!;
    this.#headerDirty = true;
    filler.commitFill(n, io);
    return n;
  }

  #fill(filler: FrameFiller): number {
    if (this.#wbUsed + FRAME_SIZE + FRAME_HEADER_SIZE > this.#wb.length) this.#flushFrames();
    const room = Math.floor((this.#wb.length - this.#wbUsed - FRAME_HEADER_SIZE) / FRAME_SIZE);
    const io = this.#fillIo;
    const frameNo = Number(this.nextFrameNo);
    io[CAPTURE_IO.crcHi] = this.#lastHi;
    io[CAPTURE_IO.crcLo] = this.#lastLo;
    io[CAPTURE_IO.frameNoLo] = frameNo % 0x1_0000_0000;
    io[CAPTURE_IO.frameNoHi] = Math.floor(frameNo / 0x1_0000_0000);
    return filler.fillFrames(this.#wb, this.#wbUsed, room, io);
  }

  /**
   * Reads up to `maxCount` committed frames starting at `fromFrameNo`, verifying their frame
   * numbers and checksum chain. Returns [] at or past the end. Throws RangeError when
   * `fromFrameNo` precedes the log (the caller must serve a snapshot).
   */
  readFrames(fromFrameNo: bigint, maxCount: number): Frame[] {
    this.#checkOpen();
    this.#flushFrames();
    if (fromFrameNo < this.startFrameNo) {
      throw new RangeError(`frame ${fromFrameNo} precedes the log start ${this.startFrameNo}`);
    }
    const available = this.nextFrameNo - fromFrameNo;
    if (available <= 0n || maxCount <= 0) return [];
    const count = Number(available < BigInt(maxCount) ? available : BigInt(maxCount));
    const index = fromFrameNo - this.startFrameNo;
    let prev = this.startChecksum;
    if (index > 0n) {
      const prevHeader = Buffer.alloc(16);
      readFully(this.#fd, prevHeader, 0, 16, frameOffset(index - 1n));
      prev = prevHeader.readBigUInt64LE(8);
    }
    const buf = Buffer.allocUnsafe(count * FRAME_SIZE);
    if (readFully(this.#fd, buf, 0, buf.length, frameOffset(index)) < buf.length) {
      throw new WallogCorruptError(this.path, 'missing_frames', `frames from ${fromFrameNo} are missing from the file`, fromFrameNo);
    }
    return checkFrames(this.path, buf, count, fromFrameNo, prev);
  }

  /** All committed frames in [from, to] (defaults: the whole log), verified, in ascending order. */
  *iterateFrames(from: bigint = this.startFrameNo, to: bigint | null = this.lastCommittedFrameNo): Generator<Frame> {
    if (to === null) return;
    let next = from;
    while (next <= to) {
      const want = to - next + 1n;
      const frames = this.readFrames(next, Number(want < BigInt(VERIFY_CHUNK) ? want : BigInt(VERIFY_CHUNK)));
      if (frames.length === 0) return;
      yield* frames;
      next += BigInt(frames.length);
    }
  }

  /**
   * Writes a header whose `frame_count` was deferred by `appendTransaction({deferHeader: true})`.
   * Until then the file on disk ends at the previous count, and frames past it read as a torn tail.
   */
  flushHeader(): void {
    this.#checkOpen();
    this.#flushFrames();
    if (!this.#headerDirty) return;
    writeFully(this.#fd, encodeWallogHeader(this.#header), 0);
    this.#headerDirty = false;
  }

  /** Flushes appended frames and the header to stable storage. */
  sync(): void {
    this.#checkOpen();
    if (this.#readOnly) return;
    this.flushHeader();
    fsyncSync(this.#fd);
  }

  close(): void {
    if (this.#closed) return;
    if (!this.#readOnly) this.flushHeader();
    this.#closed = true;
    closeSync(this.#fd);
  }

  /** Writes frames held in the write-behind buffer (never the header: that is the commit point). */
  #flushFrames(): void {
    if (this.#wbUsed === 0) return;
    writeFully(this.#fd, this.#wb.subarray(0, this.#wbUsed), frameOffset(this.#wbFrom));
    this.#wbUsed = 0;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`wallog ${this.path} is closed`);
  }
}

/** Verifies `count` frames in `buf` against the expected numbers and chain; returns them. */
function checkFrames(path: string, buf: Buffer, count: number, firstFrameNo: bigint, prev: bigint): Frame[] {
  const frames: Frame[] = [];
  let checksum = prev;
  for (let i = 0; i < count; i++) {
    const frame = decodeFrame(buf, i * FRAME_SIZE);
    const expectedNo = firstFrameNo + BigInt(i);
    if (frame.frameNo !== expectedNo) {
      throw new WallogCorruptError(path, 'frame_no_mismatch', `expected frame ${expectedNo}, found ${frame.frameNo}`, expectedNo);
    }
    checksum = crc64Chain(checksum, frame.page);
    if (frame.checksum !== checksum) {
      throw new WallogCorruptError(path, 'checksum_mismatch', `checksum mismatch at frame ${expectedNo}`, expectedNo);
    }
    frames.push(frame);
  }
  return frames;
}

/** Opens the file and reads its header, cutting a torn tail (unless read-only). */
function openHeader(path: string, options: WallogOpenOptions): { fd: number; header: WallogHeader; tail: number; readOnly: boolean } {
  const readOnly = options.readOnly ?? false;
  const fd = openSync(path, readOnly ? 'r' : 'r+');
  try {
    const size = fstatSync(fd).size;
    const headerBuf = Buffer.alloc(WALLOG_HEADER_SIZE);
    if (readFully(fd, headerBuf, 0, WALLOG_HEADER_SIZE, 0) < WALLOG_HEADER_SIZE) {
      throw new WallogCorruptError(path, 'truncated_header', `file is ${size} bytes, shorter than its header`);
    }
    const decoded = decodeWallogHeader(headerBuf);
    if ('problem' in decoded) throw new WallogCorruptError(path, decoded.problem, decoded.detail);
    const expected = frameOffset(decoded.frameCount);
    if (size < expected) {
      throw new WallogCorruptError(path, 'missing_frames', `header counts ${decoded.frameCount} frames but the file is ${size} bytes`);
    }
    const tail = size - expected;
    if (tail > 0 && !readOnly) {
      ftruncateSync(fd, expected);
      fsyncSync(fd);
    }
    return { fd, header: decoded, tail, readOnly };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Chunks verified between two turns of the event loop by `openAsync` (64 × 64 frames ≈ 17 MB). */
const YIELD_EVERY_CHUNKS = 64;

/**
 * Verifies every committed frame of an opened file; returns the last checksum. With `yieldEvery`,
 * gives the event loop a turn after that many chunks (and returns a promise).
 */
function verifyChain(path: string, fd: number, header: WallogHeader): bigint;
function verifyChain(path: string, fd: number, header: WallogHeader, yieldEvery: number): Promise<bigint>;
function verifyChain(path: string, fd: number, header: WallogHeader, yieldEvery?: number): bigint | Promise<bigint> {
  const steps = verifySteps(path, fd, header);
  if (yieldEvery === undefined) {
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  }
  return (async () => {
    for (let i = 1, r = steps.next(); ; r = steps.next(), i++) {
      if (r.done) return r.value;
      if (i % yieldEvery === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  })();
}

/** The verification, one chunk per step. */
function* verifySteps(path: string, fd: number, header: WallogHeader): Generator<void, bigint> {
  let checksum = header.startChecksum;
  const buf = Buffer.allocUnsafe(VERIFY_CHUNK * FRAME_SIZE);
  let lastSizeAfter = 0;
  for (let index = 0n; index < header.frameCount; ) {
    const left = header.frameCount - index;
    const count = Number(left < BigInt(VERIFY_CHUNK) ? left : BigInt(VERIFY_CHUNK));
    if (readFully(fd, buf, 0, count * FRAME_SIZE, frameOffset(index)) < count * FRAME_SIZE) {
      throw new WallogCorruptError(path, 'missing_frames', 'the file ends inside its committed frames');
    }
    const frames = checkFrames(path, buf, count, header.startFrameNo + index, checksum);
    const last = frames.at(-1);
    if (last !== undefined) {
      checksum = last.checksum;
      lastSizeAfter = last.sizeAfter;
    }
    index += BigInt(count);
    yield;
  }
  if (header.frameCount > 0n && lastSizeAfter === 0) {
    const lastNo = header.startFrameNo + header.frameCount - 1n;
    throw new WallogCorruptError(path, 'uncommitted_tail', `the last committed frame ${lastNo} is not a commit frame`, lastNo);
  }
  return checksum;
}
