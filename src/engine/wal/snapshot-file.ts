/**
 * Snapshot files (sqld-wire.md §8.3, §11): a 48-byte header, then the newest image of every page
 * changed in a compacted frame range, in strictly descending frame_no, each with size_after 0.
 * The header records the range and the database size after its newest commit.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { SnapshotCorruptError } from './errors.js';
import { decodeFrame, encodeFrame, FRAME_SIZE, type Frame } from './frame.js';
import { readFully, writeAtomically, writeFully } from './fs-util.js';
import { isUuid, readLogId, writeLogId } from './log-id.js';
import type { WallogFile } from './wallog-file.js';

export const SNAPSHOT_HEADER_SIZE = 48;

export interface SnapshotHeader {
  logId: string;
  startFrameNo: bigint;
  endFrameNo: bigint;
  frameCount: bigint;
  /** Database size in pages after `endFrameNo`. */
  sizeAfter: number;
}

/** Frames in ascending frame_no from `logId`'s log, or a range of an open `wallog`. */
export type SnapshotSource =
  | { logId: string; frames: Iterable<Frame> }
  | { wallog: WallogFile; fromFrameNo?: bigint; toFrameNo?: bigint };

const WRITE_CHUNK = 64;

/** `<log_id>-<start>-<end>.snap` with decimal frame numbers. */
export function snapshotFileName(logId: string, startFrameNo: bigint, endFrameNo: bigint): string {
  return `${logId}-${startFrameNo}-${endFrameNo}.snap`;
}

const NAME_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-(\d+)-(\d+)\.snap$/i;

export function parseSnapshotFileName(name: string): { logId: string; startFrameNo: bigint; endFrameNo: bigint } | null {
  const m = NAME_RE.exec(basename(name));
  if (m === null) return null;
  const [, logId, start, end] = m;
  if (logId === undefined || start === undefined || end === undefined) return null;
  return { logId: logId.toLowerCase(), startFrameNo: BigInt(start), endFrameNo: BigInt(end) };
}

export function encodeSnapshotHeader(h: SnapshotHeader): Buffer {
  const buf = Buffer.alloc(SNAPSHOT_HEADER_SIZE);
  writeLogId(h.logId, buf, 0);
  buf.writeBigUInt64LE(h.startFrameNo, 16);
  buf.writeBigUInt64LE(h.endFrameNo, 24);
  buf.writeBigUInt64LE(h.frameCount, 32);
  buf.writeUInt32LE(h.sizeAfter, 40);
  return buf;
}

interface Kept {
  frameNo: bigint;
  pageNo: number;
  load: () => Frame;
}

/** Collects the newest frame of each page, the range and the final size from a source. */
function collect(source: SnapshotSource): { logId: string; kept: Kept[]; start: bigint; end: bigint; sizeAfter: number } {
  const newest = new Map<number, Kept>();
  let start: bigint | null = null;
  let end: bigint | null = null;
  let sizeAfter = 0;
  const isWallog = 'wallog' in source;
  const frames = isWallog ? source.wallog.iterateFrames(source.fromFrameNo, source.toFrameNo) : source.frames;
  for (const f of frames) {
    if (end !== null && f.frameNo <= end) throw new RangeError(`frames must ascend: ${f.frameNo} after ${end}`);
    start ??= f.frameNo;
    end = f.frameNo;
    sizeAfter = f.sizeAfter;
    let load: () => Frame;
    if (isWallog) {
      const { wallog } = source;
      const frameNo = f.frameNo;
      load = () => {
        const [frame] = wallog.readFrames(frameNo, 1);
        if (frame === undefined) throw new RangeError(`frame ${frameNo} vanished from ${wallog.path}`);
        return frame;
      };
    } else {
      const copy: Frame = { ...f, page: Buffer.from(f.page) };
      load = () => copy;
    }
    newest.set(f.pageNo, { frameNo: f.frameNo, pageNo: f.pageNo, load });
  }
  if (start === null || end === null) throw new RangeError('a snapshot needs at least one frame');
  if (sizeAfter === 0) throw new RangeError(`the snapshot range must end at a commit frame (frame ${end} is not one)`);
  const limit = sizeAfter;
  // Pages past the final database size are cut by the commit that ends the range.
  const kept = [...newest.values()].filter((k) => k.pageNo <= limit).sort((a, b) => (a.frameNo > b.frameNo ? -1 : 1));
  return { logId: isWallog ? source.wallog.logId : source.logId, kept, start, end, sizeAfter };
}

/**
 * Writes a snapshot of `source` to `outPath` (through a temporary file, fsynced and renamed) and
 * returns its header. The range must end at a commit frame.
 */
export function buildSnapshot(source: SnapshotSource, outPath: string): SnapshotHeader {
  const { logId, kept, start, end, sizeAfter } = collect(source);
  if (!isUuid(logId)) throw new RangeError(`logId must be a UUID, got ${logId}`);
  const header: SnapshotHeader = { logId, startFrameNo: start, endFrameNo: end, frameCount: BigInt(kept.length), sizeAfter };
  writeAtomically(
    outPath,
    (fd) => {
      writeFully(fd, encodeSnapshotHeader(header), 0);
      const buf = Buffer.allocUnsafe(WRITE_CHUNK * FRAME_SIZE);
      for (let i = 0; i < kept.length; i += WRITE_CHUNK) {
        const batch = kept.slice(i, i + WRITE_CHUNK);
        batch.forEach((k, j) => {
          const f = k.load();
          encodeFrame({ ...f, sizeAfter: 0 }, buf, j * FRAME_SIZE);
        });
        writeFully(fd, buf.subarray(0, batch.length * FRAME_SIZE), SNAPSHOT_HEADER_SIZE + i * FRAME_SIZE);
      }
    },
    { durable: true },
  );
  return header;
}

function readHeaderFd(path: string, fd: number): SnapshotHeader {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(SNAPSHOT_HEADER_SIZE);
  if (readFully(fd, buf, 0, SNAPSHOT_HEADER_SIZE, 0) < SNAPSHOT_HEADER_SIZE) {
    throw new SnapshotCorruptError(path, 'truncated_header', `file is ${size} bytes, shorter than its header`);
  }
  const header: SnapshotHeader = {
    logId: readLogId(buf, 0),
    startFrameNo: buf.readBigUInt64LE(16),
    endFrameNo: buf.readBigUInt64LE(24),
    frameCount: buf.readBigUInt64LE(32),
    sizeAfter: buf.readUInt32LE(40),
  };
  if (header.startFrameNo > header.endFrameNo || header.frameCount > header.endFrameNo - header.startFrameNo + 1n) {
    throw new SnapshotCorruptError(path, 'bad_range', `range ${header.startFrameNo}-${header.endFrameNo} cannot hold ${header.frameCount} frames`);
  }
  const expected = BigInt(SNAPSHOT_HEADER_SIZE) + header.frameCount * BigInt(FRAME_SIZE);
  if (BigInt(size) !== expected) {
    throw new SnapshotCorruptError(path, 'bad_size', `header counts ${header.frameCount} frames but the file is ${size} bytes`);
  }
  return header;
}

/** Reads and validates a snapshot's header (range, frame count against the file size). */
export function readSnapshotHeader(path: string): SnapshotHeader {
  const fd = openSync(path, 'r');
  try {
    return readHeaderFd(path, fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a snapshot: the validated header, and its frames (newest first) checked for strictly
 * descending frame_no inside the header's range, size_after 0, and no repeated page. With
 * `fromFrameNo`, frames older than it are not yielded.
 */
export function readSnapshot(path: string, options: { fromFrameNo?: bigint } = {}): { header: SnapshotHeader; frames: Generator<Frame> } {
  const header = readSnapshotHeader(path);
  return { header, frames: snapshotFrames(path, options.fromFrameNo ?? 0n) };
}

function* snapshotFrames(path: string, fromFrameNo: bigint): Generator<Frame> {
  const fd = openSync(path, 'r');
  try {
    const header = readHeaderFd(path, fd);
    const total = Number(header.frameCount);
    const seen = new Set<number>();
    let prev: bigint | null = null;
    for (let i = 0; i < total; i += WRITE_CHUNK) {
      const count = Math.min(WRITE_CHUNK, total - i);
      const buf = Buffer.allocUnsafe(count * FRAME_SIZE);
      if (readFully(fd, buf, 0, buf.length, SNAPSHOT_HEADER_SIZE + i * FRAME_SIZE) < buf.length) {
        throw new SnapshotCorruptError(path, 'bad_size', 'the file ends inside its frames');
      }
      for (let j = 0; j < count; j++) {
        const f = decodeFrame(buf, j * FRAME_SIZE);
        checkSnapshotFrame(path, header, f, prev, seen);
        prev = f.frameNo;
        if (f.frameNo < fromFrameNo) return;
        yield f;
      }
    }
  } finally {
    closeSync(fd);
  }
}

function checkSnapshotFrame(path: string, header: SnapshotHeader, f: Frame, prev: bigint | null, seen: Set<number>): void {
  if (prev !== null && f.frameNo >= prev) {
    throw new SnapshotCorruptError(path, 'frame_order', `frame ${f.frameNo} follows ${prev}; frames must strictly descend`);
  }
  if (f.frameNo < header.startFrameNo || f.frameNo > header.endFrameNo) {
    throw new SnapshotCorruptError(path, 'frame_out_of_range', `frame ${f.frameNo} is outside ${header.startFrameNo}-${header.endFrameNo}`);
  }
  if (f.sizeAfter !== 0) throw new SnapshotCorruptError(path, 'frame_size_after', `frame ${f.frameNo} has size_after ${f.sizeAfter}`);
  if (f.pageNo < 1 || seen.has(f.pageNo)) {
    throw new SnapshotCorruptError(path, 'bad_page_no', `frame ${f.frameNo} has page ${f.pageNo} (zero or repeated)`);
  }
  seen.add(f.pageNo);
}
