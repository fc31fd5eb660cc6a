/**
 * Downloads a generation's snapshot `db.<ext>` to a file: streamed from the store through the
 * decoder and a sha256 hash in one pass (the body gathered into 1 MiB pieces for zlib, which
 * gives 1 MiB chunks back, written 4 MiB at a time), so a snapshot of any size takes constant
 * memory. The file's data is synced every 32 MiB along the way, so that the restore's final fsync
 * does not wait for the whole snapshot to reach the disk. Then checks what can be checked: our
 * digest and page count when the object carries them (`libsqlctl-sha256`,
 * `libsqlctl-page-count`), and always the SQLite header (magic, page size, a whole number of
 * pages, the header's own page count when SQLite marked it valid).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readFully } from '../../engine/wal/fs-util.js';
import { CorruptBackupError } from '../format/errors.js';
import { decodeSnapshotMetadata } from '../format/objects.js';
import type { BackupStorage } from '../storage/storage.js';
import type { SnapshotObject } from './catalog.js';
import { decodeStream, mappedError, STREAM_CHUNK } from './decode.js';

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
/** Bytes the file stream gathers before a write (one writev). */
const WRITE_CHUNK = 4 * 1024 * 1024;
/** Bytes between two early data syncs. */
const SYNC_EVERY = 32 * 1024 * 1024;

/** Passes the body on in pieces of at least `size` bytes (the socket's are ~64 KiB: one zlib round trip each). */
function gather(size: number, onBytes: (received: number) => void): Transform {
  let parts: Buffer[] = [];
  let held = 0;
  let received = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      received += chunk.length;
      onBytes(received);
      parts.push(chunk);
      held += chunk.length;
      if (held < size) return cb();
      const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
      parts = [];
      held = 0;
      cb(null, out);
    },
    flush(cb: TransformCallback) {
      cb(null, held === 0 ? null : Buffer.concat(parts, held));
    },
  });
}

/** At most this many buffers per writev (below every platform's IOV_MAX). */
const MAX_IOV = 512;

/** Writes all of `bufs` at `position` (looping over short writes); resolves with the bytes written. */
async function writevAll(fd: number, bufs: readonly Buffer[], position: number): Promise<number> {
  const rest = [...bufs];
  let at = position;
  while (rest.length > 0) {
    const group = rest.slice(0, MAX_IOV);
    let n = await new Promise<number>((resolve, reject) => fs.writev(fd, group, at, (err, written) => (err === null ? resolve(written) : reject(err))));
    at += n;
    while (n > 0 && rest.length > 0) {
      const head = rest[0]!;
      if (head.length <= n) {
        n -= head.length;
        rest.shift();
      } else {
        rest[0] = head.subarray(n);
        n = 0;
      }
    }
  }
  return at - position;
}

/**
 * A sink writing to `fd` from offset 0 that never closes it (fs.WriteStream closes its fd when a
 * pipeline is torn down, even with autoClose off); `idle()` settles when no write is in flight,
 * which a destroyed Writable does not wait for.
 */
function fileSink(fd: number): { sink: Writable; idle: () => Promise<void> } {
  let position = 0;
  let inFlight: Promise<void> = Promise.resolve();
  const sink = new Writable({
    highWaterMark: WRITE_CHUNK,
    writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void) {
      const write = writevAll(
        fd,
        chunks.map((c) => c.chunk),
        position,
      ).then((n) => {
        position += n;
      });
      inFlight = write.catch(() => undefined);
      write.then(
        () => cb(),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    },
  });
  return { sink, idle: () => inFlight };
}

/** Writes the decompressed snapshot to `file` (created or truncated) and checks it. */
export async function downloadSnapshot(
  storage: BackupStorage,
  snapshot: Pick<SnapshotObject, 'key' | 'compression'>,
  file: string,
  options: { onBytes?: (compressedBytes: number) => void; signal?: AbortSignal } = {},
): Promise<DownloadedSnapshot> {
  const { head, body } = await storage.getStream(snapshot.key, options.signal === undefined ? {} : { signal: options.signal });
  // The digest of the bytes downloaded: from this answer's metadata, not from an earlier HEAD.
  let expected;
  try {
    expected = decodeSnapshotMetadata(head.metadata, snapshot.key);
  } catch (err) {
    body.destroy();
    throw err;
  }
  // Opened here, not later by the stream: no open can land after a failed restore removed the file.
  const fd = fs.openSync(file, 'w');
  const syncs: Promise<void>[] = [];
  const hash = createHash('sha256');
  let bytes = 0;
  let synced = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      // Syncs what the writer has written so far (the data before this chunk, at most a few MiB less).
      if (bytes - synced >= SYNC_EVERY) {
        synced = bytes;
        syncs.push(new Promise<void>((resolve) => fs.fdatasync(fd, () => resolve()))); // only early: the restore's own fsync decides
      }
      cb(null, chunk);
    },
  });
  const { sink, idle } = fileSink(fd);
  try {
    const decoder = await decodeStream(snapshot.compression, snapshot.key);
    await pipeline(body, gather(STREAM_CHUNK, (n) => options.onBytes?.(n)), decoder, tap, sink);
  } catch (err) {
    body.destroy();
    throw mappedError(snapshot.compression, snapshot.key, err);
  } finally {
    await idle();
    await Promise.all(syncs);
    fs.closeSync(fd);
  }
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
