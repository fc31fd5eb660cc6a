/**
 * sqld's replication frame (sqld-wire.md §6.8): a 24-byte little-endian header followed by one
 * 4096-byte page. The same layout is used on the wire, in `wallog` files and in snapshot files.
 */

export const PAGE_SIZE = 4096;
export const FRAME_HEADER_SIZE = 24;
export const FRAME_SIZE = FRAME_HEADER_SIZE + PAGE_SIZE; // 4120

/** A page image without replication metadata (what capture hands to the log). */
export interface PageFrame {
  /** 1-based SQLite page number. */
  pageNo: number;
  /** Database size in pages after commit on the last frame of a transaction, 0 otherwise. */
  sizeAfter: number;
  page: Buffer;
}

/** A replication frame as stored in `wallog` and snapshot files. */
export interface Frame extends PageFrame {
  frameNo: bigint;
  checksum: bigint;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const U32_MAX = 0xffff_ffff;

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new RangeError(`${name} must be a u32, got ${value}`);
  }
}

function checkU64(name: string, value: bigint): void {
  if (value < 0n || value > U64_MAX) throw new RangeError(`${name} must be a u64, got ${value}`);
}

/**
 * Writes `frame` into `out` at `offset` (allocating a fresh 4120-byte buffer when `out` is
 * omitted) and returns the buffer written to.
 */
export function encodeFrame(frame: Frame, out?: Buffer, offset = 0): Buffer {
  checkU64('frameNo', frame.frameNo);
  checkU64('checksum', frame.checksum);
  checkU32('pageNo', frame.pageNo);
  checkU32('sizeAfter', frame.sizeAfter);
  if (frame.page.length !== PAGE_SIZE) {
    throw new RangeError(`page must be ${PAGE_SIZE} bytes, got ${frame.page.length}`);
  }
  const buf = out ?? Buffer.allocUnsafe(FRAME_SIZE);
  if (offset < 0 || offset + FRAME_SIZE > buf.length) {
    throw new RangeError(`no room for a frame at offset ${offset} in ${buf.length} bytes`);
  }
  buf.writeBigUInt64LE(frame.frameNo, offset);
  buf.writeBigUInt64LE(frame.checksum, offset + 8);
  buf.writeUInt32LE(frame.pageNo, offset + 16);
  buf.writeUInt32LE(frame.sizeAfter, offset + 20);
  frame.page.copy(buf, offset + FRAME_HEADER_SIZE);
  return buf;
}

/**
 * Reads the frame at `offset` of `buf`. The returned `page` is a view into `buf` (no copy):
 * callers that reuse `buf` must copy the page first.
 */
export function decodeFrame(buf: Buffer, offset = 0): Frame {
  if (offset < 0 || offset + FRAME_SIZE > buf.length) {
    throw new RangeError(`no frame at offset ${offset} in ${buf.length} bytes`);
  }
  return {
    frameNo: buf.readBigUInt64LE(offset),
    checksum: buf.readBigUInt64LE(offset + 8),
    pageNo: buf.readUInt32LE(offset + 16),
    sizeAfter: buf.readUInt32LE(offset + 20),
    page: buf.subarray(offset + FRAME_HEADER_SIZE, offset + FRAME_SIZE),
  };
}
