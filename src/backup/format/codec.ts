/**
 * The three compressions of bottomless objects (spec §1.6): `raw`, `gz` (one gzip member, written
 * by gzip-segments.ts: deflated at zlib's default level where that pays, stored blocks where not)
 * and `zstd` (one frame, default level; zstd.ts). Decoders are lenient where that is safe —
 * several gzip members or zstd frames in a row decode as their concatenation — and strict
 * everywhere else: a truncated or damaged input is a CorruptBackupError naming the object key,
 * never a raw zlib or decoder error.
 *
 * The zstd encoder is one-shot, so `compressStream('zstd')` holds the whole input until it ends
 * (a single frame is what bottomless' reader expects) and refuses more than ZSTD_MAX_INPUT
 * (768 MiB: the wasm heap stops at 2 GiB); gz streams in constant memory.
 */
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { CorruptBackupError } from './errors.js';
import { createSegmentedGzip, gzipSegments } from './gzip-segments.js';
import type { Compression } from './layout.js';
import { ZSTD_MAX_INPUT, ZstdDecoder, zstdCompress } from './zstd.js';

const gunzip = promisify(zlib.gunzip);

function corrupt(c: Compression, key: string, e: unknown): CorruptBackupError {
  const what = c === 'gz' ? 'gzip' : c;
  return new CorruptBackupError(key, `${what} data is damaged or truncated: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

export async function compress(c: Compression, buf: Buffer): Promise<Buffer> {
  switch (c) {
    case 'raw':
      return buf;
    case 'gz':
      return gzipSegments(buf);
    case 'zstd':
      return zstdCompress(buf);
  }
}

/** Decompresses the body of object `key`. */
export async function decompress(c: Compression, buf: Buffer, key: string): Promise<Buffer> {
  switch (c) {
    case 'raw':
      return buf;
    case 'gz':
      try {
        return await gunzip(buf);
      } catch (e) {
        throw corrupt(c, key, e);
      }
    case 'zstd': {
      const parts: Uint8Array[] = [];
      let total = 0;
      try {
        const decoder = new ZstdDecoder((d) => {
          parts.push(d);
          total += d.length;
        });
        decoder.push(buf);
        decoder.end();
      } catch (e) {
        throw corrupt(c, key, e);
      }
      return Buffer.concat(parts, total);
    }
  }
}

export function compressStream(c: Compression): Transform {
  switch (c) {
    case 'raw':
      return new PassThrough();
    case 'gz':
      return createSegmentedGzip();
    case 'zstd':
      return zstdCompressStream();
  }
}

/** A stream decoding the body of object `key`; its only error is CorruptBackupError. */
export function decompressStream(c: Compression, key: string): Transform {
  switch (c) {
    case 'raw':
      return new PassThrough();
    case 'gz':
      return withMappedErrors(zlib.createGunzip(), (e) => corrupt(c, key, e));
    case 'zstd':
      return zstdDecompressStream(key);
  }
}

function zstdCompressStream(): Transform {
  const parts: Buffer[] = [];
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      total += chunk.length;
      if (total > ZSTD_MAX_INPUT) {
        parts.length = 0;
        cb(new RangeError(`zstd compression is limited to ${ZSTD_MAX_INPUT} bytes here; use gz`));
        return;
      }
      parts.push(chunk);
      cb();
    },
    flush(cb: TransformCallback) {
      zstdCompress(Buffer.concat(parts)).then(
        (out) => {
          parts.length = 0;
          cb(null, out);
        },
        (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
      );
    },
  });
}

function zstdDecompressStream(key: string): Transform {
  let decoder: ZstdDecoder | null = null;
  const stream = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        decoder ??= new ZstdDecoder((d) => stream.push(Buffer.from(d.buffer, d.byteOffset, d.length)));
        decoder.push(chunk);
        cb();
      } catch (e) {
        cb(corrupt('zstd', key, e));
      }
    },
    flush(cb: TransformCallback) {
      try {
        (decoder ?? new ZstdDecoder(() => undefined)).end();
        cb();
      } catch (e) {
        cb(corrupt('zstd', key, e));
      }
    },
  });
  return stream;
}

/**
 * Wraps a zlib stream so that its errors come out mapped. Input goes through one chunk at a time
 * (the next chunk is taken once zlib has processed the previous one), output as zlib produces it.
 */
function withMappedErrors(inner: Transform, map: (e: unknown) => Error): Transform {
  let failure: Error | null = null;
  const fail = (e: unknown): Error => (failure ??= map(e));
  let onFlushed: TransformCallback | null = null;
  const outer = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (failure !== null) {
        cb(failure);
        return;
      }
      inner.write(chunk, (err) => cb(err ? fail(err) : null));
    },
    flush(cb: TransformCallback) {
      if (failure !== null) {
        cb(failure);
        return;
      }
      onFlushed = cb;
      inner.end();
    },
    destroy(err: Error | null, cb: (error: Error | null) => void) {
      inner.destroy();
      cb(err);
    },
  });
  inner.on('data', (d: Buffer) => outer.push(d));
  inner.on('end', () => {
    const cb = onFlushed;
    onFlushed = null;
    cb?.();
  });
  inner.on('error', (e: unknown) => {
    const err = fail(e);
    const cb = onFlushed;
    onFlushed = null;
    if (cb) cb(err);
    else outer.destroy(err);
  });
  return outer;
}
