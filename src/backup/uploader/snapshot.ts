/**
 * Stages a generation's snapshot: the database file, read through the engine's descriptor in
 * chunks (the event loop turns between them), compressed into `staging/<gen>/db.<ext>`, with the
 * digest (digest.ts) of the raw bytes, the page count and the change counter (header bytes 24..28).
 *
 * Only checkpoints write the database file, and the uploader's checkpoint hand-over aborts a
 * snapshot still reading (`abort()`): every chunk is read before the checkpoint or not at all, so a
 * staged snapshot is the file exactly as it was between two checkpoints.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { compressStream } from '../format/codec.js';
import { createHasher, SNAPSHOT_DIGEST } from '../format/digest.js';
import type { Compression } from '../format/layout.js';
import { changeCounterOfDbHeader } from '../format/objects.js';
import { ZSTD_MAX_INPUT } from '../format/zstd.js';
import type { SnapshotInfo } from './generation.js';
import type { StagingDir } from './staging.js';

/** Read-only access to the database file (PrimaryRole.databaseFile). */
export interface DatabaseFile {
  size(): number;
  read(buf: Uint8Array, position: number): number;
}

export class SnapshotAborted extends Error {
  constructor(reason: string) {
    super(`snapshot abandoned: ${reason}`);
  }
}

export interface SnapshotJobOptions {
  gen: string;
  file: DatabaseFile;
  staging: StagingDir;
  compression: Compression;
  chunkBytes: number;
}

export class SnapshotJob {
  /** True until the last chunk is read: an abort only matters meanwhile. */
  reading = true;
  private abortReason: string | null = null;
  /** The staged snapshot; rejects with SnapshotAborted or the failure. */
  readonly done: Promise<SnapshotInfo>;

  constructor(private readonly opts: SnapshotJobOptions) {
    this.done = this.run();
    // Whoever awaits `done` sees the failure; nobody else must.
    this.done.catch(() => undefined);
  }

  /** The database file is about to change (a checkpoint): stop reading, stage nothing. */
  abort(reason: string): void {
    if (this.reading) this.abortReason ??= reason;
  }

  private check(): void {
    if (this.abortReason !== null) throw new SnapshotAborted(this.abortReason);
  }

  private async run(): Promise<SnapshotInfo> {
    // Let the caller (the commit path, under the write lock) return first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const { file, staging, gen } = this.opts;
    this.check();
    const size = file.size();
    const c: Compression = this.opts.compression === 'zstd' && size > ZSTD_MAX_INPUT ? 'gz' : this.opts.compression;
    const tmp = staging.tempFile(gen);
    const compressor = compressStream(c);
    const written = pipeline(compressor, fs.createWriteStream(tmp));
    written.catch(() => undefined);
    const hash = createHasher(SNAPSHOT_DIGEST);
    let pageSize = 4096;
    let changeCounter = 0;
    try {
      let position = 0;
      while (position < size) {
        this.check();
        const buf = Buffer.allocUnsafe(Math.min(this.opts.chunkBytes, size - position));
        const n = file.read(buf, position);
        if (n === 0) break;
        const chunk = n === buf.length ? buf : buf.subarray(0, n);
        if (position === 0) {
          if (n >= 28) changeCounter = changeCounterOfDbHeader(chunk);
          if (n >= 18) {
            const raw = chunk.readUInt16BE(16);
            pageSize = raw === 1 ? 65536 : raw;
          }
        }
        position += n;
        if (position >= size) this.reading = false;
        hash.update(chunk);
        if (!compressor.write(chunk)) await once(compressor, 'drain');
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
      this.reading = false;
      this.check();
      compressor.end();
      await written;
      const fh = await fsp.open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const name = `db.${c}`;
      const bytes = (await fsp.stat(tmp)).size;
      staging.place(tmp, gen, name);
      return { name, digest: { kind: SNAPSHOT_DIGEST, hex: hash.hex() }, pageCount: pageSize > 0 ? Math.ceil(position / pageSize) : 0, changeCounter, bytes };
    } catch (err) {
      this.reading = false;
      compressor.destroy();
      await written.catch(() => undefined);
      staging.discard(tmp);
      throw err;
    }
  }
}
