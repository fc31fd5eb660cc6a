/**
 * Downloads a generation's snapshot `db.<ext>` to a file: streamed from the store through the
 * decoder and a sha256 hash, so a snapshot of any size takes constant memory. Then checks what can
 * be checked: our digest and page count when the object carries them (`libsqlctl-sha256`,
 * `libsqlctl-page-count`), and always the SQLite header (magic, page size, a whole number of
 * pages, the header's own page count when SQLite marked it valid).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readFully } from '../../engine/wal/fs-util.js';
import { decompressStream } from '../format/codec.js';
import { CorruptBackupError } from '../format/errors.js';
import { decodeSnapshotMetadata } from '../format/objects.js';
import type { BackupStorage } from '../storage/storage.js';
import type { SnapshotObject } from './catalog.js';

export interface DownloadedSnapshot {
  /** Uncompressed size. */
  bytes: number;
  pageSize: number;
  pageCount: number;
  sha256: string;
  /** Our digest and page count were present and matched. */
  digestVerified: boolean;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** Writes the decompressed snapshot to `file` (created or truncated) and checks it. */
export async function downloadSnapshot(
  storage: BackupStorage,
  snapshot: SnapshotObject,
  file: string,
  options: { onBytes?: (compressedBytes: number) => void; signal?: AbortSignal } = {},
): Promise<DownloadedSnapshot> {
  const expected = decodeSnapshotMetadata(snapshot.metadata, snapshot.key);
  const { body } = await storage.getStream(snapshot.key, options.signal === undefined ? {} : { signal: options.signal });
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      received += chunk.length;
      options.onBytes?.(received);
      cb(null, chunk);
    },
  });
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(body, meter, decompressStream(snapshot.compression, snapshot.key), tap, fs.createWriteStream(file));
  const sha256 = hash.digest('hex');
  if (expected !== null && expected.sha256 !== sha256) {
    throw new CorruptBackupError(snapshot.key, `the sha256 of its ${bytes} uncompressed bytes is ${sha256}, its metadata says ${expected.sha256}`);
  }
  const { pageSize, headerPages } = readHeader(file, bytes, snapshot.key);
  if (bytes % pageSize !== 0) throw new CorruptBackupError(snapshot.key, `${bytes} bytes is not a whole number of ${pageSize}-byte pages (truncated?)`);
  const pageCount = bytes / pageSize;
  if (expected !== null && expected.pageCount !== pageCount) {
    throw new CorruptBackupError(snapshot.key, `holds ${pageCount} pages, its metadata says ${expected.pageCount}`);
  }
  if (headerPages !== null && headerPages !== pageCount) {
    throw new CorruptBackupError(snapshot.key, `holds ${pageCount} pages, its database header says ${headerPages} (truncated?)`);
  }
  return { bytes, pageSize, pageCount, sha256, digestVerified: expected !== null };
}

/**
 * The 100-byte SQLite header of a file of ours (a restore's or a create's temporary copy, which no
 * SQLite connection has open: closing this descriptor drops nobody's locks).
 */
export function fileHeader(file: string): Buffer {
  const header = Buffer.alloc(100);
  const fd = fs.openSync(file, 'r');
  try {
    readFully(fd, header, 0, 100, 0);
  } finally {
    fs.closeSync(fd);
  }
  return header;
}

/** Page size and, when SQLite's "version-valid-for" matches the change counter, the header's page count. */
function readHeader(file: string, bytes: number, key: string): { pageSize: number; headerPages: number | null } {
  if (bytes < 100) throw new CorruptBackupError(key, `${bytes} bytes is too short for a SQLite database`);
  const header = fileHeader(file);
  if (!header.subarray(0, 16).equals(SQLITE_MAGIC)) throw new CorruptBackupError(key, 'is not a SQLite database (bad header; an encrypted database cannot be restored here)');
  const raw = header.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new CorruptBackupError(key, `invalid page size ${raw} in its header`);
  const pages = header.readUInt32BE(28);
  const valid = pages !== 0 && header.readUInt32BE(92) === header.readUInt32BE(24);
  return { pageSize, headerPages: valid ? pages : null };
}
