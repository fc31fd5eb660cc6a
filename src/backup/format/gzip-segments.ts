/**
 * Our gzip encoder: one standard gzip member (RFC 1952) whose deflate stream is a run of
 * segments of SEGMENT_BYTES of input each, every segment either deflated on its own (zlib,
 * ending in a sync flush: byte-aligned, no back-references into the previous segment) or, when
 * deflate would not save at least STORE_GAIN of it, kept in stored blocks. Any gzip reader
 * (bottomless' own, `gzip -d`, node:zlib) reads it as the one stream it is.
 *
 * Why: a database of images, encrypted or already-compressed values is nearly incompressible,
 * and there zlib's inflate (~250 MB/s of one core) is the slowest part of a restore, while stored
 * blocks decode at memory speed; for such segments gzip saves under 10 % and costs several times
 * the restore time. Compressible data (text, numbers) is deflated as before. Each segment's
 * decision is made from a sample first (so incompressible data is not deflated in full only to
 * be thrown away), then from the deflated size itself.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

/** Input bytes per segment. Segments lose the window across their boundary: < 0.1 % of size. */
export const SEGMENT_BYTES = 1 << 20;
/** A segment is stored unless deflate saves at least this share of it. */
export const STORE_GAIN = 0.1;
/** The sample's deflate must save at least this share for the segment to be deflated in full. */
const SAMPLE_GAIN = 0.03;
const SAMPLE_PIECES = 4;
const SAMPLE_PIECE_BYTES = 8192;
const STORED_MAX = 65535;

const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
/** An empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

const deflateAsync = (data: Buffer, options: zlib.ZlibOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => zlib.deflateRaw(data, options, (e, out) => (e === null ? resolve(out) : reject(e))));

const PROBE: zlib.ZlibOptions = { level: 1 };
const segmentOptions = (level: number): zlib.ZlibOptions => ({ level, finishFlush: zlib.constants.Z_SYNC_FLUSH });
/** Whether `out` is at least `gain` smaller than `input`. */
const saves = (out: Buffer, input: Buffer, gain: number): boolean => out.length <= input.length * (1 - gain);

/** Spread pieces of a large segment (its start alone may be a page header or a run of zeros). */
function sampleOf(segment: Buffer): Buffer | null {
  if (segment.length < SAMPLE_PIECES * SAMPLE_PIECE_BYTES * 4) return null;
  const step = Math.floor(segment.length / SAMPLE_PIECES);
  const pieces: Buffer[] = [];
  for (let i = 0; i < SAMPLE_PIECES; i++) pieces.push(segment.subarray(i * step, i * step + SAMPLE_PIECE_BYTES));
  return Buffer.concat(pieces);
}

/** `segment` as stored blocks (none final), each at most 65 535 bytes. */
export function storedBlocks(segment: Buffer): Buffer {
  const blocks = Math.max(1, Math.ceil(segment.length / STORED_MAX));
  const out = Buffer.allocUnsafe(segment.length + blocks * 5);
  let o = 0;
  for (let i = 0; i < blocks; i++) {
    const piece = segment.subarray(i * STORED_MAX, (i + 1) * STORED_MAX);
    out[o] = 0;
    out.writeUInt16LE(piece.length, o + 1);
    out.writeUInt16LE(~piece.length & 0xffff, o + 3);
    o += 5;
    o += piece.copy(out, o);
  }
  return out;
}

/** One segment's deflate bytes: deflated when that saves enough, stored otherwise. */
async function encodeSegment(segment: Buffer, level: number): Promise<Buffer> {
  const sample = sampleOf(segment);
  if (sample !== null && !saves(await deflateAsync(sample, PROBE), sample, SAMPLE_GAIN)) return storedBlocks(segment);
  const deflated = await deflateAsync(segment, segmentOptions(level));
  return saves(deflated, segment, STORE_GAIN) ? deflated : storedBlocks(segment);
}

/** encodeSegment on the calling thread. */
function encodeSegmentSync(segment: Buffer, level: number): Buffer {
  const sample = sampleOf(segment);
  if (sample !== null && !saves(zlib.deflateRawSync(sample, PROBE), sample, SAMPLE_GAIN)) return storedBlocks(segment);
  const deflated = zlib.deflateRawSync(segment, segmentOptions(level));
  return saves(deflated, segment, STORE_GAIN) ? deflated : storedBlocks(segment);
}

function trailer(crc: number, size: number): Buffer {
  const t = Buffer.allocUnsafe(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(size % 2 ** 32, 4);
  return t;
}

/** `data` as one gzip member, on the calling thread (the checkpoint hand-over needs it synchronous). */
export function gzipSegmentsSync(data: Buffer, level: number = zlib.constants.Z_DEFAULT_COMPRESSION): Buffer {
  const parts: Buffer[] = [HEADER];
  for (let at = 0; at < data.length; at += SEGMENT_BYTES) parts.push(encodeSegmentSync(data.subarray(at, at + SEGMENT_BYTES), level));
  parts.push(FINAL_BLOCK, trailer(zlib.crc32(data), data.length));
  return Buffer.concat(parts);
}

/** `data` as one gzip member, deflated on the thread pool. */
export async function gzipSegments(data: Buffer, level: number = zlib.constants.Z_DEFAULT_COMPRESSION): Promise<Buffer> {
  const parts: Buffer[] = [HEADER];
  for (let at = 0; at < data.length; at += SEGMENT_BYTES) parts.push(await encodeSegment(data.subarray(at, at + SEGMENT_BYTES), level));
  parts.push(FINAL_BLOCK, trailer(zlib.crc32(data), data.length));
  return Buffer.concat(parts);
}

/** A stream writing one gzip member of everything written to it, a segment at a time, in constant memory. */
export function createSegmentedGzip(level: number = zlib.constants.Z_DEFAULT_COMPRESSION): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let crc = 0;
  let size = 0;
  let headerSent = false;

  const emit = async (stream: Transform, segment: Buffer): Promise<void> => {
    if (!headerSent) {
      stream.push(HEADER);
      headerSent = true;
    }
    if (segment.length > 0) stream.push(await encodeSegment(segment, level));
  };
  const take = (): Buffer => {
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const segment = all.subarray(0, SEGMENT_BYTES);
    const rest = all.subarray(segment.length);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return segment;
  };

  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      crc = zlib.crc32(chunk, crc);
      size += chunk.length;
      pending.push(chunk);
      pendingBytes += chunk.length;
      void (async () => {
        while (pendingBytes >= SEGMENT_BYTES) await emit(this, take());
      })().then(() => cb(), (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
    },
    flush(cb: TransformCallback) {
      void (async () => {
        await emit(this, pendingBytes > 0 ? take() : Buffer.alloc(0));
        this.push(FINAL_BLOCK);
        this.push(trailer(crc, size));
      })().then(() => cb(), (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
    },
  });
}
