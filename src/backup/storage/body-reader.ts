/**
 * An object's bytes pulled into the caller's buffers. A Readable hands out a new buffer per network
 * read (64 KiB each: 1 600 of them, and as many callbacks, for a 100 MB snapshot); a BodyReader
 * fills buffers the caller owns and reuses, so the snapshot's decoder gets whole megabytes and the
 * collector gets no garbage. readerOfStream adapts any Readable (one copy per piece); backends
 * that can do better read straight into the buffers (s3-direct-get.ts, local-storage.ts).
 */
import type { Readable } from 'node:stream';

export interface BodyReader {
  /**
   * Fills `into` from its start; resolves with the bytes put there: `into.length` unless the body
   * ended first, 0 once it has ended. One read at a time. Rejects with the body's error.
   */
  read(into: Buffer): Promise<number>;
  /** Stops reading and releases the connection or file (after an error, or to give up early). */
  destroy(): void;
}

/** A BodyReader over a Readable of Buffers (the stream's pieces copied into the caller's buffers). */
export function readerOfStream(body: Readable): BodyReader {
  const pieces = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let rest: Buffer | null = null;
  let ended = false;
  return {
    async read(into) {
      let n = 0;
      while (n < into.length && !ended) {
        if (rest === null) {
          const next = await pieces.next();
          if (next.done === true) {
            ended = true;
            break;
          }
          rest = next.value;
        }
        const k = Math.min(rest.length, into.length - n);
        rest.copy(into, n, 0, k);
        n += k;
        rest = k === rest.length ? null : rest.subarray(k);
      }
      return n;
    },
    destroy() {
      body.destroy();
    },
  };
}
