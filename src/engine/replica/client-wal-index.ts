/**
 * sqld's `client_wal_index` (sqld-wire.md §11): the replica's commit record, 32 bytes.
 *
 * | offset | size | field                                                          |
 * |--------|------|----------------------------------------------------------------|
 * | 0      | 16   | `log_id` u128 LE (the UUID's big-endian value, stored LE)      |
 * | 16     | 8    | `committed_frame_no` u64 LE (`0xFFFF_FFFF_FFFF_FFFF` = none)   |
 * | 24     | 8    | zero bytes                                                     |
 *
 * An empty (or missing) file means "not initialised". `writeClientWalIndex` replaces the file
 * atomically and durably; the frame applier rewrites its open file in place (ClientWalIndexFile).
 */
import { closeSync, constants, existsSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { LibsqlctlError } from '../../errors.js';
import { fsyncDirOf, writeAtomically, writeFully } from '../wal/fs-util.js';
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

/**
 * The applier's index file, kept open and overwritten in place (one 32-byte write at offset 0: a
 * process crash never tears it). `durable` syncs it; the applier leaves that out after a batch,
 * whose redo file names the same index until the batch after next.
 */
export class ClientWalIndexFile {
  #fd: number | null = null;

  constructor(readonly path: string) {}

  write(index: ClientWalIndex, opts: { durable: boolean }): void {
    const buf = encodeClientWalIndex(index);
    if (this.#fd === null) {
      const created = !existsSync(this.path);
      const fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
      this.#fd = fd;
      writeFully(fd, buf, 0);
      if (fstatSync(fd).size !== buf.length) ftruncateSync(fd, buf.length);
      if (created) {
        fsyncSync(fd);
        fsyncDirOf(this.path);
      } else if (opts.durable) fdatasyncSync(fd);
      return;
    }
    writeFully(this.#fd, buf, 0);
    if (opts.durable) fdatasyncSync(this.#fd);
  }

  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}
