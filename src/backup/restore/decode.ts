/**
 * Decompression for restore, where it is on the critical path: gz through zlib with large output
 * chunks. zlib's default chunk is 16 KiB, and every chunk is one round trip to the thread pool: a
 * batch whose size is known (its frames × frame size) is inflated in one chunk, a snapshot in
 * 1 MiB chunks. Errors are the codec's (CorruptBackupError naming the object); zstd and raw go
 * through the codec itself, loaded only then (with its zstd modules).
 */
import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { CorruptBackupError } from '../format/errors.js';
import type { Compression } from '../format/layout.js';
import { NativeGunzip, type RestoreAddon } from './native-gunzip.js';

const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 16 * 1024 * 1024;
/** Output chunk of a streamed (snapshot) inflate. */
export const STREAM_CHUNK = 1024 * 1024;

function damagedGzip(key: string, e: unknown): CorruptBackupError {
  return new CorruptBackupError(key, `gzip data is damaged or truncated: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** Decompresses the body of object `key`, expected to hold about `expectedBytes`. */
export async function decodeObject(c: Compression, body: Buffer, key: string, expectedBytes: number): Promise<Buffer> {
  if (c === 'raw') return body;
  if (c !== 'gz') return (await import('../format/codec.js')).decompress(c, body, key);
  const chunkSize = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, expectedBytes + 1));
  return new Promise<Buffer>((resolve, reject) => {
    zlib.gunzip(body, { chunkSize }, (err, out) => (err === null ? resolve(out) : reject(damagedGzip(key, err))));
  });
}

/**
 * Decompresses the gz body of object `key` into `out` with the native decoder (same zlib, same
 * checks as node:zlib's gunzip); resolves with the bytes decoded, or null when they do not fit
 * (the caller decodes another way, to learn what the object really holds).
 */
export async function gunzipInto(addon: RestoreAddon, body: Buffer, out: Buffer, key: string): Promise<number | null> {
  const decoder = new NativeGunzip(addon, null);
  try {
    const { status, produced } = await decoder.run(body, out, true);
    return status === 2 ? produced : null;
  } catch (err) {
    throw damagedGzip(key, err);
  }
}

/**
 * A stream decoding the body of object `key`. gz: zlib's own stream with large chunks, whose
 * errors the caller maps with mappedError (the codec's wrapper would cost a hop per chunk).
 */
export async function decodeStream(c: Compression, key: string): Promise<Transform> {
  if (c === 'raw') return new PassThrough();
  if (c !== 'gz') return (await import('../format/codec.js')).decompressStream(c, key);
  return zlib.createGunzip({ chunkSize: STREAM_CHUNK });
}

/** The error a pipeline through decodeStream(c, key) failed with, as the codec reports it (zlib's errors carry a Z_ code). */
export function mappedError(c: Compression, key: string, err: unknown): unknown {
  return c === 'gz' && isZlibError(err) ? damagedGzip(key, err) : err;
}

function isZlibError(err: unknown): boolean {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_');
}
