/** The 64-byte header of sqld's `wallog` replication-log file (sqld-wire.md §11). */
import { PAGE_SIZE } from './frame.js';
import { readLogId, writeLogId } from './log-id.js';

export const WALLOG_HEADER_SIZE = 64;
/** The bytes "SQLDWAL\0". */
export const WALLOG_MAGIC = Buffer.from('SQLDWAL\0', 'latin1');
export const WALLOG_VERSION = 2;

/** Version stamped into new logs: four u16 = [0, major, minor, patch]. */
export type SqldVersion = readonly [number, number, number];
export const DEFAULT_SQLD_VERSION: SqldVersion = [0, 24, 33];

export interface WallogHeader {
  startChecksum: bigint;
  /** UUID string. */
  logId: string;
  startFrameNo: bigint;
  /** Committed frames only. */
  frameCount: bigint;
  version: number;
  pageSize: number;
  sqldVersion: SqldVersion;
}

export function encodeWallogHeader(h: WallogHeader): Buffer {
  const buf = Buffer.alloc(WALLOG_HEADER_SIZE);
  WALLOG_MAGIC.copy(buf, 0);
  buf.writeBigUInt64LE(h.startChecksum, 8);
  writeLogId(h.logId, buf, 16);
  buf.writeBigUInt64LE(h.startFrameNo, 32);
  buf.writeBigUInt64LE(h.frameCount, 40);
  buf.writeUInt32LE(h.version, 48);
  buf.writeInt32LE(h.pageSize, 52);
  buf.writeUInt16LE(0, 56);
  buf.writeUInt16LE(h.sqldVersion[0], 58);
  buf.writeUInt16LE(h.sqldVersion[1], 60);
  buf.writeUInt16LE(h.sqldVersion[2], 62);
  return buf;
}

export type WallogHeaderProblem = 'bad_magic' | 'unsupported_version' | 'bad_page_size';

/** Decodes a header; returns the problem instead when it is not a usable version-2 header. */
export function decodeWallogHeader(buf: Buffer): WallogHeader | { problem: WallogHeaderProblem; detail: string } {
  if (!buf.subarray(0, 8).equals(WALLOG_MAGIC)) {
    return { problem: 'bad_magic', detail: `bad magic ${buf.subarray(0, 8).toString('hex')}` };
  }
  const version = buf.readUInt32LE(48);
  if (version !== WALLOG_VERSION) {
    return { problem: 'unsupported_version', detail: `unsupported log version ${version}` };
  }
  const pageSize = buf.readInt32LE(52);
  if (pageSize !== PAGE_SIZE) return { problem: 'bad_page_size', detail: `unsupported page size ${pageSize}` };
  return {
    startChecksum: buf.readBigUInt64LE(8),
    logId: readLogId(buf, 16),
    startFrameNo: buf.readBigUInt64LE(32),
    frameCount: buf.readBigUInt64LE(40),
    version,
    pageSize,
    sqldVersion: [buf.readUInt16LE(58), buf.readUInt16LE(60), buf.readUInt16LE(62)],
  };
}
