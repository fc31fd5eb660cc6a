/**
 * sqld's `client_wal_index` (sqld-wire.md §11): the replica's commit record, 32 bytes.
 *
 * | offset | size | field                                                          |
 * |--------|------|----------------------------------------------------------------|
 * | 0      | 16   | `log_id` u128 LE (the UUID's big-endian value, stored LE)      |
 * | 16     | 8    | `committed_frame_no` u64 LE (`0xFFFF_FFFF_FFFF_FFFF` = none)   |
 * | 24     | 8    | zero bytes                                                     |
 *
 * An empty (or missing) file means "not initialised". Every write replaces the file atomically
 * (temporary file, fsync, rename, fsync of the directory): a crash leaves the old or the new record.
 */
import { readFileSync } from 'node:fs';
import { LibsqlctlError } from '../../errors.js';
import { writeAtomically, writeFully } from '../wal/fs-util.js';
import { LOG_ID_SIZE, readLogId, writeLogId } from '../wal/log-id.js';

export const CLIENT_WAL_INDEX_SIZE = 32;
const NOTHING_APPLIED = 0xffff_ffff_ffff_ffffn;

export interface ClientWalIndex {
  logId: string;
  /** frame_no of the last applied frame (the largest of the last applied transaction), null for none. */
  committedFrameNo: bigint | null;
}

export function encodeClientWalIndex(index: ClientWalIndex): Buffer {
  const buf = Buffer.alloc(CLIENT_WAL_INDEX_SIZE);
  writeLogId(index.logId, buf, 0);
  const frameNo = index.committedFrameNo ?? NOTHING_APPLIED;
  if (frameNo < 0n || frameNo > NOTHING_APPLIED) throw new RangeError(`frame_no must be a u64, got ${frameNo}`);
  if (index.committedFrameNo === NOTHING_APPLIED) throw new RangeError('frame_no 2^64-1 is reserved for "nothing applied"');
  buf.writeBigUInt64LE(frameNo, LOG_ID_SIZE);
  return buf;
}

/** Decodes a whole file's content: null when empty (not initialised). */
export function decodeClientWalIndex(buf: Buffer): ClientWalIndex | null {
  if (buf.length === 0) return null;
  if (buf.length !== CLIENT_WAL_INDEX_SIZE) {
    throw new LibsqlctlError('REPLICA_INDEX_CORRUPT', `client_wal_index must be ${CLIENT_WAL_INDEX_SIZE} bytes, found ${buf.length}`);
  }
  const frameNo = buf.readBigUInt64LE(LOG_ID_SIZE);
  return { logId: readLogId(buf, 0), committedFrameNo: frameNo === NOTHING_APPLIED ? null : frameNo };
}

/** Reads the index at `path`: null when the file is missing or empty. */
export function readClientWalIndex(path: string): ClientWalIndex | null {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return decodeClientWalIndex(buf);
}

/** Replaces the index at `path` atomically and durably. */
export function writeClientWalIndex(path: string, index: ClientWalIndex): void {
  const buf = encodeClientWalIndex(index);
  writeAtomically(path, (fd) => writeFully(fd, buf, 0), { durable: true });
}
