/**
 * Where the native decoder's compressed snapshot bytes come from (snapshot.ts): buffers, filled in
 * the object's order, handed to the decoder and given back once it has consumed them.
 *
 * - streamInput: one answer's body, read into a few 1 MiB buffers.
 * - rangedInput: the object in parts (8 MiB ranges), a few GETs at a time, each read straight into
 *   its own buffer. One connection's throughput is what limits a big download from S3 (and a
 *   single-threaded store such as s3rver, which serves a 100 MB body in about 160 ms over one
 *   connection and 105 ms over four); the decoder still takes the parts in order. Every part must
 *   come from the same version of the object as the first (same size, time and ETag), and a part
 *   whose read fails is asked for again (a range is idempotent), where one failing stream would
 *   fail the restore.
 */
import { CorruptBackupError } from '../format/errors.js';
import type { BodyReader } from '../storage/body-reader.js';
import { type BackupStorage, type ObjectHead, ObjectNotFoundError, StorageError } from '../storage/storage.js';

/** A queue whose take() waits for the next put(). */
export class Channel<T> {
  private readonly items: T[] = [];
  private readonly waiting: ((v: T) => void)[] = [];

  put(v: T): void {
    const w = this.waiting.shift();
    if (w === undefined) this.items.push(v);
    else w(v);
  }

  take(): Promise<T> {
    return this.items.length > 0 ? Promise.resolve(this.items.shift()!) : new Promise<T>((resolve) => this.waiting.push(resolve));
  }
}

/** A filled buffer, the end of the object, or the failure that stopped the reading. */
export type Filled = { buf: Buffer; len: number } | { end: true } | { error: Error };

export interface SnapshotInput {
  /** How many buffers of how many bytes the reading needs (allocated by the caller, put on `free`). */
  readonly buffers: number;
  readonly bufferBytes: number;
  /**
   * Fills buffers taken from `free` (null there: stop) and puts them on `filled` in the object's
   * order, then `{ end }`, or `{ error }` when the reading failed. Never rejects. `onBytes`: the
   * compressed bytes delivered so far.
   */
  produce(free: Channel<Buffer | null>, filled: Channel<Filled>, onBytes?: (n: number) => void): Promise<void>;
  /** Stops the reading (the decoder failed). */
  destroy(): void;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Compressed bytes per buffer of a single stream, and its buffers. */
const STREAM_PIECE = 1024 * 1024;
const STREAM_BUFFERS = 3;

/** One answer's body, in 1 MiB pieces. */
export function streamInput(body: BodyReader): SnapshotInput {
  return {
    buffers: STREAM_BUFFERS,
    bufferBytes: STREAM_PIECE,
    async produce(free, filled, onBytes) {
      let received = 0;
      try {
        for (;;) {
          const buf = await free.take();
          if (buf === null) return;
          const n = await body.read(buf);
          received += n;
          if (n > 0) {
            onBytes?.(received);
            filled.put({ buf, len: n });
          }
          if (n < buf.length) break;
        }
        filled.put({ end: true });
      } catch (err) {
        filled.put({ error: asError(err) });
      }
    },
    destroy: () => body.destroy(),
  };
}

/** Bytes per ranged GET of a snapshot, and GETs at a time (at most the store's `parallel`). */
export const SNAPSHOT_PART_BYTES = 8 * 1024 * 1024;
export const SNAPSHOT_PARTS_IN_FLIGHT = 4;
/** Tries of a part whose reading fails. */
const PART_ATTEMPTS = 3;

/** The object was replaced between two of its parts' GETs (asking again would not help). */
class ChangedDuringDownload extends StorageError {}

/** Whether two answers for one key come from the same version of its object. */
function sameVersion(a: ObjectHead, b: ObjectHead): boolean {
  return a.size === b.size && a.lastModified.getTime() === b.lastModified.getTime() && a.etag === b.etag;
}

export interface RangedSource {
  storage: BackupStorage & Required<Pick<BackupStorage, 'getReader'>>;
  key: string;
  /** The answer to the GET of the first part (bytes 0..partBytes - 1): its head, and its body. */
  head: ObjectHead;
  first: BodyReader;
  partBytes: number;
  inFlight: number;
  signal?: AbortSignal;
}

/** The object in parts of `partBytes`, `inFlight` GETs at a time (the first already answered). */
export function rangedInput(src: RangedSource): SnapshotInput {
  const { storage, key, head, partBytes } = src;
  const size = head.size;
  const parts = Math.max(1, Math.ceil(size / partBytes));
  const inFlight = Math.max(1, Math.min(src.inFlight, parts));
  const stopping = new AbortController();
  const signal = src.signal === undefined ? stopping.signal : AbortSignal.any([src.signal, stopping.signal]);
  const open = new Set<BodyReader>([src.first]);

  const readPart = async (i: number, buf: Buffer): Promise<number> => {
    const start = i * partBytes;
    const len = Math.min(partBytes, size - start);
    for (let attempt = 1; ; attempt++) {
      let body: BodyReader | null = null;
      try {
        if (i === 0 && attempt === 1) {
          body = src.first;
        } else {
          const got = await storage.getReader(key, { signal, range: { start, end: start + len - 1 } });
          body = got.body;
          open.add(body);
          if (!sameVersion(head, got.head)) {
            throw new ChangedDuringDownload(`${key} changed while it was being downloaded (its size, time or ETag differ between two parts)`, { hint: 'run the restore again' });
          }
        }
        const n = await body.read(buf.subarray(0, len));
        if (n !== len) throw new StorageError(`bytes ${start}-${start + len - 1} of ${key} ended after ${n} of ${len} bytes`);
        body.destroy();
        open.delete(body);
        return len;
      } catch (err) {
        if (body !== null) {
          body.destroy();
          open.delete(body);
        }
        const final = err instanceof ObjectNotFoundError || err instanceof CorruptBackupError || err instanceof ChangedDuringDownload;
        if (signal.aborted || final || attempt >= PART_ATTEMPTS) throw err;
      }
    }
  };

  return {
    buffers: inFlight + 1,
    bufferBytes: Math.min(partBytes, size),
    async produce(free, filled, onBytes) {
      const pending: { buf: Buffer; read: Promise<number> }[] = [];
      let launched = 0;
      let received = 0;
      try {
        for (let i = 0; i < parts; i++) {
          // Parts i .. i + inFlight - 1 are asked for (each into a buffer the decoder gave back).
          while (launched < parts && launched < i + inFlight) {
            const buf = await free.take();
            if (buf === null) return;
            const read = readPart(launched, buf);
            read.catch(() => undefined); // awaited in order below; a later part's failure waits its turn
            pending.push({ buf, read });
            launched++;
          }
          const next = pending.shift()!;
          const len = await next.read;
          received += len;
          onBytes?.(received);
          filled.put({ buf: next.buf, len });
        }
        filled.put({ end: true });
      } catch (err) {
        stopping.abort();
        filled.put({ error: asError(err) });
      } finally {
        await Promise.allSettled(pending.map((p) => p.read));
      }
    },
    destroy() {
      stopping.abort();
      for (const body of open) body.destroy();
      open.clear();
    },
  };
}
