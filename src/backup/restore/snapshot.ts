/**
 * Downloads a generation's snapshot `db.<ext>` to a file: streamed from the store through the
 * decoder and our digest (CRC-64, or the SHA-256 of older snapshots) in one pass, so a snapshot of any size takes constant memory. gz goes
 * through the native decoder (native-gunzip.ts) with a few input and output buffers reused for the
 * whole download, a big one read in parallel ranges (snapshot-input.ts); without it, and for zstd and raw, through a stream (the body gathered into
 * 1 MiB pieces for zlib, which gives 1 MiB chunks back, written 4 MiB at a time). The file's data is synced every 32 MiB along the way, so that the restore's final fsync
 * does not wait for the whole snapshot to reach the disk. Then checks what can be checked: our
 * digest and page count when the object carries them (`libsqlctl-crc64` or `libsqlctl-sha256`,
 * `libsqlctl-page-count`; no digest is computed for a snapshot without them), and always the SQLite header (magic, page size, a whole number of
 * pages, the header's own page count when SQLite marked it valid).
 */
import fs from 'node:fs';
import { type Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readFully } from '../../engine/wal/fs-util.js';
import { createHasher, type DigestKind, type SnapshotDigest } from '../format/digest.js';
import { CorruptBackupError } from '../format/errors.js';
import { decodeSnapshotMetadata } from '../format/objects.js';
import { readerOfStream } from '../storage/body-reader.js';
import type { BackupStorage, ObjectHead } from '../storage/storage.js';
import type { SnapshotObject } from './catalog.js';
import { decodeStream, mappedError, STREAM_CHUNK } from './decode.js';
import { GunzipError, type GunzipStatus, NativeGunzip, nativeRestore, type RestoreAddon } from './native-gunzip.js';
import { Channel, type Filled, rangedInput, SNAPSHOT_PART_BYTES, SNAPSHOT_PARTS_IN_FLIGHT, type SnapshotInput, streamInput } from './snapshot-input.js';

export interface DownloadedSnapshot {
  /** Uncompressed size. */
  bytes: number;
  pageSize: number;
  pageCount: number;
  /** Our digest, checked (null: the snapshot carries none, made by sqld). */
  digest: SnapshotDigest | null;
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

/** What a download wrote: its size and the digest asked for (hex; null: none asked for). */
interface Decoded {
  bytes: number;
  digest: string | null;
}

/** Through node:zlib's stream (or the codec's): the body gathered, decoded, hashed and written to `fd`. */
async function streamToFile(body: Readable, snapshot: Pick<SnapshotObject, 'key' | 'compression'>, fd: number, onBytes: ((n: number) => void) | undefined, kind: DigestKind | null): Promise<Decoded> {
  const hash = kind === null ? null : createHasher(kind);
  const syncs: Promise<void>[] = [];
  let bytes = 0;
  let synced = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash?.update(chunk);
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
    await pipeline(body, gather(STREAM_CHUNK, (n) => onBytes?.(n)), decoder, tap, sink);
  } finally {
    await idle();
    await Promise.all(syncs);
  }
  return { bytes, digest: hash?.hex() ?? null };
}

/** Decoded bytes per decoder call, and the buffers for them (each in use until its write is done). */
const OUTPUT_CHUNK = 2 * 1024 * 1024;
const OUTPUT_BUFFERS = 3;

/**
 * Through the native decoder (native-gunzip.ts): the object is read into a few reused input buffers
 * (snapshot-input.ts: one stream or parallel ranges, straight from the socket or the file where the
 * store can: getReader), decoded and hashed on the thread pool into a few reused output buffers,
 * each written to `fd` at its offset while the next is being decoded. Nothing is allocated per
 * chunk: no garbage for the collector.
 */
async function nativeGunzipToFile(addon: RestoreAddon, input: SnapshotInput, fd: number, onBytes: ((n: number) => void) | undefined, kind: DigestKind | null): Promise<Decoded> {
  // The decoder computes the digest on the thread pool; SHA-256 without Node's OpenSSL in reach of
  // the library is computed here, on the main thread.
  const inDecoder = kind === 'crc64' || (kind === 'sha256' && addon.canHash);
  const decoder = new NativeGunzip(addon, inDecoder ? kind : null);
  const hash = kind !== null && !inDecoder ? createHasher(kind) : null;
  const free = new Channel<Buffer | null>();
  for (let i = 0; i < input.buffers; i++) free.put(Buffer.allocUnsafeSlow(input.bufferBytes));
  const filled = new Channel<Filled>();
  const outputs = new Channel<Buffer>();
  for (let i = 0; i < OUTPUT_BUFFERS; i++) outputs.put(Buffer.allocUnsafeSlow(OUTPUT_CHUNK));
  let stopped = false;

  const writes = new Set<Promise<void>>();
  const syncs: Promise<void>[] = [];
  const failed: { write: Error | null } = { write: null };
  let position = 0;
  let synced = 0;
  const write = (out: Buffer, n: number): void => {
    hash?.update(out.subarray(0, n));
    const at = position;
    position += n;
    const done = writeAll(fd, out, n, at).then(
      () => outputs.put(out),
      (err: unknown) => {
        failed.write ??= err instanceof Error ? err : new Error(String(err));
        outputs.put(out);
      },
    );
    writes.add(done);
    void done.then(() => writes.delete(done));
    // Syncs what has been written so far (a few MiB less than this): only early, the restore's own fsync decides.
    if (position - synced >= SYNC_EVERY) {
      synced = position;
      syncs.push(new Promise<void>((resolve) => fs.fdatasync(fd, () => resolve())));
    }
  };

  const consume = async (): Promise<void> => {
    let carry: { out: Buffer; n: number } | null = null;
    for (;;) {
      const item = await filled.take();
      if ('error' in item) throw item.error;
      const final = 'end' in item;
      let feed: Buffer | null = final ? null : item.buf.subarray(0, item.len);
      let status: GunzipStatus;
      do {
        if (failed.write !== null) throw failed.write;
        const out = await outputs.take();
        const running = decoder.run(feed, out, final);
        feed = null;
        if (carry !== null) write(carry.out, carry.n); // written while the next piece is decoded (and hashed)
        carry = null;
        let got;
        try {
          got = await running;
        } catch (err) {
          outputs.put(out);
          throw err;
        }
        if (got.produced > 0) carry = { out, n: got.produced };
        else outputs.put(out);
        status = got.status;
      } while (status === 1);
      if (final) {
        if (status !== 2) throw new GunzipError('unexpected end of file');
        break;
      }
      free.put(item.buf);
    }
    if (carry !== null) write(carry.out, carry.n);
  };

  const producing = input.produce(free, filled, onBytes);
  try {
    await consume();
  } catch (err) {
    stopped = true;
    throw err;
  } finally {
    if (stopped) {
      input.destroy();
      free.put(null);
    }
    await producing;
    await Promise.all(writes);
    await Promise.all(syncs);
  }
  if (failed.write !== null) throw failed.write;
  return { bytes: position, digest: hash !== null ? hash.hex() : inDecoder ? decoder.hex() : null };
}

/** Writes `n` bytes of `buf` at `position` (looping over short writes). */
async function writeAll(fd: number, buf: Buffer, n: number, position: number): Promise<void> {
  let done = 0;
  while (done < n) {
    const w = await new Promise<number>((resolve, reject) => fs.write(fd, buf, done, n - done, position + done, (err, written) => (err === null ? resolve(written) : reject(err))));
    done += w;
  }
}

/**
 * The input of the native decoder: parallel ranges of a big object where the store reads ranges
 * into buffers (`size`, from the listing, at least two parts; `parallel` above 1), else one
 * stream (read through getStream where the store has no getReader). With its answer's head.
 */
async function nativeInput(storage: BackupStorage, snapshot: SnapshotRef, parallel: number, partBytes: number, signal: AbortSignal | undefined): Promise<{ head: ObjectHead; input: SnapshotInput }> {
  const opts = signal === undefined ? {} : { signal };
  if (storage.getReader === undefined) {
    const { head, body } = await storage.getStream(snapshot.key, opts);
    return { head, input: streamInput(readerOfStream(body)) };
  }
  if (parallel < 2 || (snapshot.size ?? 0) < 2 * partBytes) {
    const { head, body } = await storage.getReader(snapshot.key, opts);
    return { head, input: streamInput(body) };
  }
  const ranged = storage as BackupStorage & Required<Pick<BackupStorage, 'getReader'>>;
  const { head, body } = await ranged.getReader(snapshot.key, { ...opts, range: { start: 0, end: partBytes - 1 } });
  const inFlight = Math.min(parallel, SNAPSHOT_PARTS_IN_FLIGHT);
  return { head, input: rangedInput({ storage: ranged, key: snapshot.key, head, first: body, partBytes, inFlight, ...opts }) };
}

/** The snapshot object: its key, compression and (from the listing, when known) size. */
export type SnapshotRef = Pick<SnapshotObject, 'key' | 'compression'> & { size?: number };

/** Writes the decompressed snapshot to `file` (created or truncated) and checks it. */
export async function downloadSnapshot(
  storage: BackupStorage,
  snapshot: SnapshotRef,
  file: string,
  /** parallel: GETs at a time the store may take (default 1: one stream); partBytes: bytes per ranged GET (tests). */
  options: { onBytes?: (compressedBytes: number) => void; signal?: AbortSignal; parallel?: number; partBytes?: number } = {},
): Promise<DownloadedSnapshot> {
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const addon = snapshot.compression === 'gz' ? nativeRestore : null;
  let head: ObjectHead;
  let release: () => void;
  let decode: (fd: number, kind: DigestKind | null) => Promise<Decoded>;
  if (addon !== null) {
    const got = await nativeInput(storage, snapshot, options.parallel ?? 1, options.partBytes ?? SNAPSHOT_PART_BYTES, options.signal);
    ({ head } = got);
    release = () => got.input.destroy();
    decode = (fd, kind) => nativeGunzipToFile(addon, got.input, fd, options.onBytes, kind);
  } else {
    const got = await storage.getStream(snapshot.key, signal);
    ({ head } = got);
    release = () => got.body.destroy();
    decode = (fd, kind) => streamToFile(got.body, snapshot, fd, options.onBytes, kind);
  }
  // The digest of the bytes downloaded: from this answer's metadata, not from an earlier HEAD.
  let expected;
  try {
    expected = decodeSnapshotMetadata(head.metadata, snapshot.key);
  } catch (err) {
    release();
    throw err;
  }
  // Opened here, not later by the stream: no open can land after a failed restore removed the file.
  const fd = fs.openSync(file, 'w');
  let decoded: Decoded;
  try {
    decoded = await decode(fd, expected?.digest.kind ?? null);
  } catch (err) {
    release();
    throw mappedError(snapshot.compression, snapshot.key, err);
  } finally {
    fs.closeSync(fd);
  }
  const { bytes, digest } = decoded;
  if (expected !== null && expected.digest.hex !== digest) {
    const { kind, hex } = expected.digest;
    throw new CorruptBackupError(snapshot.key, `the ${kind} of its ${bytes} uncompressed bytes is ${digest}, its metadata says ${hex}`);
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
  return { bytes, pageSize, pageCount, digest: expected?.digest ?? null, digestVerified: expected !== null };
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
