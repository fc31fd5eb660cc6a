import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSegmentedGzip, gzipSegments, gzipSegmentsSync, SEGMENT_BYTES, storedBlocks } from '../../../src/backup/format/gzip-segments.js';
import { prng } from '../../helpers/prng.js';
import { runTool, throughStream } from './format-fixtures.js';

function randomBytes(size: number, seed: number): Buffer {
  const rnd = prng(seed);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rnd() * 256);
  return out;
}

function text(size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  for (let line = 0; at < size; line++) at += out.write(`row ${line}: the quick brown fox jumps over the lazy dog\n`, at, size - at, 'latin1');
  return out;
}

/** Pages of a table of random blobs: a small header, 4000 random bytes, zeros (the bench's database). */
function blobPages(count: number, seed: number): Buffer {
  const out = Buffer.alloc(count * 4096);
  const body = randomBytes(count * 4000, seed);
  for (let i = 0; i < count; i++) {
    out.writeUInt32BE(i, i * 4096);
    body.copy(out, i * 4096 + 96, i * 4000, (i + 1) * 4000);
  }
  return out;
}

/** Whether the deflate stream begins with a non-final stored block (its first byte: BFINAL 0, BTYPE 00). */
function startsStored(gz: Buffer): boolean {
  return (gz[10]! & 0b111) === 0;
}

const MIXED = Buffer.concat([text(SEGMENT_BYTES), randomBytes(SEGMENT_BYTES + 12_345, 5), Buffer.alloc(SEGMENT_BYTES / 2), blobPages(300, 9)]);
const CASES: Record<string, Buffer> = {
  empty: Buffer.alloc(0),
  'one byte': Buffer.from([42]),
  'small text': text(5000),
  'one segment exactly': text(SEGMENT_BYTES),
  'random, below the sample size': randomBytes(50_000, 3),
  mixed: MIXED,
};

beforeAll(async () => {
  await runTool('gzip', ['--version']);
});

describe('gzip-segments: one standard gzip member', () => {
  for (const [name, input] of Object.entries(CASES)) {
    it(`${name}: sync, async and stream agree byte for byte, and node:zlib and Debian's gzip read it back`, async () => {
      const sync = gzipSegmentsSync(input);
      expect((await gzipSegments(input)).equals(sync)).toBe(true);
      expect((await throughStream(createSegmentedGzip(), input, input.length + 1, 3 * SEGMENT_BYTES)).equals(sync)).toBe(true);
      expect(zlib.gunzipSync(sync).equals(input)).toBe(true);
      expect((await runTool('gzip', ['-dc'], sync)).equals(input)).toBe(true);
      // One member: the trailer's CRC-32 and size are the whole input's.
      expect(sync.readUInt32LE(sync.length - 8)).toBe(zlib.crc32(input));
      expect(sync.readUInt32LE(sync.length - 4)).toBe(input.length);
    });
  }
});

describe('gzip-segments: deflate where it pays, stored blocks where it does not', () => {
  it('incompressible data costs 5 bytes per 64 KiB and decodes as stored blocks', () => {
    const input = randomBytes(3 * SEGMENT_BYTES, 21);
    const out = gzipSegmentsSync(input);
    expect(startsStored(out)).toBe(true);
    const overhead = out.length - input.length;
    expect(overhead).toBeLessThanOrEqual(10 + 2 + 8 + 5 * Math.ceil(SEGMENT_BYTES / 65535) * 3);
    expect(overhead).toBeGreaterThan(0);
  });

  it('pages of random blobs (deflate saves ~2 %) are stored; text is deflated as zlib would', () => {
    const pages = blobPages(600, 4);
    expect(startsStored(gzipSegmentsSync(pages))).toBe(true);
    const t = text(2 * SEGMENT_BYTES);
    const out = gzipSegmentsSync(t);
    expect(startsStored(out)).toBe(false);
    expect(out.length).toBeLessThan(zlib.gzipSync(t).length * 1.05);
  });

  it('mixed input: each segment decided on its own', () => {
    const out = gzipSegmentsSync(MIXED);
    // The text and zero segments shrink to almost nothing; the random ones stay as they are.
    const incompressible = SEGMENT_BYTES + 12_345 + 300 * 4096;
    expect(out.length).toBeGreaterThan(incompressible);
    expect(out.length).toBeLessThan(incompressible + 200_000);
  });

  it('stored blocks carry each length and its complement, none final', () => {
    const blocks = storedBlocks(Buffer.alloc(70_000, 7));
    expect(blocks.length).toBe(70_000 + 10);
    expect([blocks[0], blocks.readUInt16LE(1), blocks.readUInt16LE(3)]).toEqual([0, 65535, 0]);
    const second = 5 + 65535;
    expect([blocks[second], blocks.readUInt16LE(second + 1), blocks.readUInt16LE(second + 3)]).toEqual([0, 4465, ~4465 & 0xffff]);
  });
});
