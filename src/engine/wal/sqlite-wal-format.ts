/**
 * SQLite's WAL file format: the 32-byte header, the 24-byte frame header and the cumulative
 * checksum. All header fields are big-endian; the checksum reads the data as 32-bit words in the
 * byte order named by the magic number (0x377f0682 little-endian, 0x377f0683 big-endian).
 */

import { nativeChecksums } from './native-checksums.js';

export const WAL_MAGIC_LE = 0x377f0682;
export const WAL_MAGIC_BE = 0x377f0683;
export const WAL_FORMAT_VERSION = 3007000;
export const WAL_HEADER_SIZE = 32;
export const WAL_FRAME_HEADER_SIZE = 24;

/** The running checksum pair (s0, s1), both unsigned 32-bit. */
export type WalChecksum = readonly [number, number];

export interface WalHeader {
  /** True for magic 0x377f0683 (checksums over big-endian words). */
  bigEndian: boolean;
  formatVersion: number;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  /** Checksum of the first 24 header bytes; also the seed of the first frame's checksum. */
  checksum: WalChecksum;
}

/** A page image as carried by a SQLite WAL frame. */
export interface WalFrame {
  pageNo: number;
  /** Database size in pages after commit for a commit frame, 0 otherwise. */
  sizeAfter: number;
  page: Buffer;
}

const NATIVE_BIG_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

/** The C version (native/checksums.c), for inputs long enough to be worth the call (a page). */
const nativeWalChecksum = nativeChecksums?.walChecksum?.bind(nativeChecksums) ?? null;
const nativeFrameCheck = nativeChecksums?.walFrameCheck?.bind(nativeChecksums) ?? null;
const NATIVE_MIN_BYTES = 256;
const nativeState = new Uint32Array(2);

/**
 * SQLite's WAL checksum: for each pair of 32-bit words (x0, x1) of `data`,
 * s0 += x0 + s1; s1 += x1 + s0 (mod 2^32), starting from `seed` (0, 0 for the header).
 * `data.length` must be a multiple of 8. Chaining calls over consecutive pieces equals one call
 * over their concatenation.
 */
export function walChecksum(data: Uint8Array, bigEndian: boolean, seed: WalChecksum = [0, 0]): [number, number] {
  if (data.length % 8 !== 0) throw new RangeError(`WAL checksum input must be a multiple of 8 bytes, got ${data.length}`);
  if (nativeWalChecksum !== null && data.length >= NATIVE_MIN_BYTES) {
    nativeState[0] = seed[0];
    nativeState[1] = seed[1];
    nativeWalChecksum(nativeState, data, bigEndian);
    return [nativeState[0], nativeState[1]];
  }
  return walChecksumJs(data, bigEndian, seed);
}

/** The JavaScript version of walChecksum (the fallback, and what the tests compare the C one with). */
export function walChecksumJs(data: Uint8Array, bigEndian: boolean, seed: WalChecksum = [0, 0]): [number, number] {
  if (data.length % 8 !== 0) throw new RangeError(`WAL checksum input must be a multiple of 8 bytes, got ${data.length}`);
  let s0 = seed[0] >>> 0;
  let s1 = seed[1] >>> 0;
  if (bigEndian === NATIVE_BIG_ENDIAN && data.byteOffset % 4 === 0) {
    // Words in the machine's byte order (what SQLite writes locally): read them without a DataView.
    const words = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >>> 2);
    for (let i = 0; i < words.length; i += 2) {
      s0 = (s0 + words[i]! + s1) >>> 0;
      s1 = (s1 + words[i + 1]! + s0) >>> 0;
    }
    return [s0, s1];
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const little = !bigEndian;
  for (let i = 0; i < data.length; i += 8) {
    s0 = (s0 + view.getUint32(i, little) + s1) >>> 0;
    s1 = (s1 + view.getUint32(i + 4, little) + s0) >>> 0;
  }
  return [s0, s1];
}

function validPageSize(size: number): boolean {
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0;
}

/**
 * Parses and verifies a WAL header. Returns null when the bytes are not a valid header (wrong
 * magic or version, bad page size, checksum mismatch): SQLite treats such a WAL as empty.
 */
export function parseWalHeader(buf: Uint8Array): WalHeader | null {
  if (buf.length < WAL_HEADER_SIZE) return null;
  const b = Buffer.from(buf.buffer, buf.byteOffset, WAL_HEADER_SIZE);
  const magic = b.readUInt32BE(0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return null;
  const bigEndian = magic === WAL_MAGIC_BE;
  const formatVersion = b.readUInt32BE(4);
  const pageSize = b.readUInt32BE(8);
  if (formatVersion !== WAL_FORMAT_VERSION || !validPageSize(pageSize)) return null;
  const checksum = walChecksum(b.subarray(0, 24), bigEndian);
  if (checksum[0] !== b.readUInt32BE(24) || checksum[1] !== b.readUInt32BE(28)) return null;
  return {
    bigEndian,
    formatVersion,
    pageSize,
    checkpointSeq: b.readUInt32BE(12),
    salt1: b.readUInt32BE(16),
    salt2: b.readUInt32BE(20),
    checksum,
  };
}

/** Encodes a WAL header, computing its checksum (the `checksum` field of the input is ignored). */
export function encodeWalHeader(header: Omit<WalHeader, 'checksum' | 'formatVersion'>): {
  bytes: Buffer;
  checksum: [number, number];
} {
  if (!validPageSize(header.pageSize)) throw new RangeError(`invalid WAL page size ${header.pageSize}`);
  const bytes = Buffer.alloc(WAL_HEADER_SIZE);
  bytes.writeUInt32BE(header.bigEndian ? WAL_MAGIC_BE : WAL_MAGIC_LE, 0);
  bytes.writeUInt32BE(WAL_FORMAT_VERSION, 4);
  bytes.writeUInt32BE(header.pageSize, 8);
  bytes.writeUInt32BE(header.checkpointSeq >>> 0, 12);
  bytes.writeUInt32BE(header.salt1 >>> 0, 16);
  bytes.writeUInt32BE(header.salt2 >>> 0, 20);
  const checksum = walChecksum(bytes.subarray(0, 24), header.bigEndian);
  bytes.writeUInt32BE(checksum[0], 24);
  bytes.writeUInt32BE(checksum[1], 28);
  return { bytes, checksum };
}

/**
 * Encodes one WAL frame (24-byte header + page) that follows a frame (or the header) whose
 * cumulative checksum is `prev`. Returns the bytes and the new cumulative checksum.
 */
export function encodeWalFrame(
  header: Pick<WalHeader, 'bigEndian' | 'pageSize' | 'salt1' | 'salt2'>,
  prev: WalChecksum,
  frame: WalFrame,
): { bytes: Buffer; checksum: [number, number] } {
  if (frame.page.length !== header.pageSize) {
    throw new RangeError(`page must be ${header.pageSize} bytes, got ${frame.page.length}`);
  }
  const bytes = Buffer.allocUnsafe(WAL_FRAME_HEADER_SIZE + header.pageSize);
  bytes.writeUInt32BE(frame.pageNo, 0);
  bytes.writeUInt32BE(frame.sizeAfter, 4);
  bytes.writeUInt32BE(header.salt1 >>> 0, 8);
  bytes.writeUInt32BE(header.salt2 >>> 0, 12);
  frame.page.copy(bytes, WAL_FRAME_HEADER_SIZE);
  const afterHeader = walChecksum(bytes.subarray(0, 8), header.bigEndian, prev);
  const checksum = walChecksum(bytes.subarray(WAL_FRAME_HEADER_SIZE), header.bigEndian, afterHeader);
  bytes.writeUInt32BE(checksum[0], 16);
  bytes.writeUInt32BE(checksum[1], 20);
  return { bytes, checksum };
}

/**
 * Verifies the WAL frame at `offset` of `buf` against `header` and the running checksum `prev`.
 * Returns the frame's new cumulative checksum, or null when the frame is not valid (salt
 * mismatch, page number 0, or checksum mismatch) — which ends the valid part of the WAL.
 */
export function verifyWalFrame(
  buf: Buffer,
  offset: number,
  header: Pick<WalHeader, 'bigEndian' | 'pageSize' | 'salt1' | 'salt2'>,
  prev: WalChecksum,
): [number, number] | null {
  const end = offset + WAL_FRAME_HEADER_SIZE + header.pageSize;
  if (offset < 0 || end > buf.length) return null;
  if (nativeFrameCheck !== null) {
    nativeState[0] = prev[0];
    nativeState[1] = prev[1];
    if (!nativeFrameCheck(nativeState, buf, offset, header.pageSize, header.bigEndian, header.salt1 >>> 0, header.salt2 >>> 0)) return null;
    return [nativeState[0], nativeState[1]];
  }
  if (buf.readUInt32BE(offset) === 0) return null;
  if (buf.readUInt32BE(offset + 8) !== header.salt1 || buf.readUInt32BE(offset + 12) !== header.salt2) return null;
  const afterHeader = walChecksum(buf.subarray(offset, offset + 8), header.bigEndian, prev);
  const checksum = walChecksum(buf.subarray(offset + WAL_FRAME_HEADER_SIZE, end), header.bigEndian, afterHeader);
  if (checksum[0] !== buf.readUInt32BE(offset + 16) || checksum[1] !== buf.readUInt32BE(offset + 20)) return null;
  return checksum;
}
