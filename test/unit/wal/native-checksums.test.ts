import fc from 'fast-check';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc64Chain, crc64ChainWords, crc64ChainWordsJs } from '../../../src/engine/wal/crc64.js';
import { nativeChecksums } from '../../../src/engine/wal/native-checksums.js';
import { encodeWalFrame, walChecksum, walChecksumJs, type WalChecksum } from '../../../src/engine/wal/sqlite-wal-format.js';
import { tempDir } from './helpers.js';

/** native/checksums.c, built by `npm install`: loaded, and equal to the JavaScript versions. */

const ALL_ONES = 0xffff_ffff_ffff_ffffn;
const u32 = fc.nat({ max: 0xffff_ffff });

function crcAgrees(prev: bigint, data: Uint8Array): void {
  const want = crc64Chain(prev, data);
  const words: [number, number] = [Number(want >> 32n), Number(want & 0xffff_ffffn)];
  const [hi, lo] = [Number(prev >> 32n), Number(prev & 0xffff_ffffn)];
  expect(crc64ChainWords(hi, lo, data)).toEqual(words);
  expect(crc64ChainWordsJs(hi, lo, data)).toEqual(words);
}

describe('the native checksums', () => {
  it('are built and loaded', () => {
    expect(nativeChecksums).not.toBeNull();
    expect(typeof nativeChecksums?.walChecksum).toBe('function');
    expect(typeof nativeChecksums?.walFrameCheck).toBe('function');
    if (process.platform !== 'win32') expect(typeof nativeChecksums?.pread).toBe('function');
  });

  it('CRC-64: the check value, and the same as the JavaScript version at any offset and length', () => {
    expect(crc64ChainWords(0xffff_ffff, 0xffff_ffff, Buffer.from('123456789'))).toEqual([0xb909_56c7, 0x75a4_1001]);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ALL_ONES }), fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 7 }), (prev, bytes, skip) => {
        crcAgrees(prev, bytes.subarray(Math.min(skip, bytes.length)));
      }),
    );
  });

  it('CRC-64 over pages (the folded path for 64 bytes and more): the same as the JavaScript version', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ALL_ONES }), fc.uint8Array({ minLength: 64, maxLength: 4200 }), fc.nat({ max: 15 }), (prev, bytes, skip) => {
        crcAgrees(prev, bytes.subarray(Math.min(skip, bytes.length)));
      }),
      { numRuns: 300 },
    );
    // A whole page of one byte value, and of zeros from a zero register (folding must not lose them).
    for (const fill of [0, 0xff, 0x5a]) crcAgrees(fill === 0 ? 0n : ALL_ONES, Buffer.alloc(4096, fill));
  });

  it('WAL checksum: the same as the JavaScript version, both byte orders, any seed and length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4200 }), fc.boolean(), u32, u32, (bytes, bigEndian, s0, s1) => {
        const data = bytes.subarray(0, bytes.length - (bytes.length % 8));
        const seed: WalChecksum = [s0, s1];
        expect(walChecksum(data, bigEndian, seed)).toEqual(walChecksumJs(data, bigEndian, seed));
      }),
      { numRuns: 300 },
    );
  });

  it('WAL frame check: accepts a frame chained from the running checksum, refuses any change', () => {
    const check = nativeChecksums!.walFrameCheck!.bind(nativeChecksums);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.boolean(), u32, u32, u32, u32, fc.nat({ max: 4119 }), (page, bigEndian, salt1, salt2, s0, s1, flip) => {
        const header = { bigEndian, pageSize: 4096, salt1, salt2 };
        const prev: WalChecksum = [s0, s1];
        const { bytes, checksum } = encodeWalFrame(header, prev, { pageNo: 7, sizeAfter: 3, page: Buffer.from(page) });
        const buf = Buffer.concat([Buffer.alloc(5), bytes]);
        const state = new Uint32Array(prev);
        expect(check(state, buf, 5, 4096, bigEndian, salt1, salt2)).toBe(true);
        expect([state[0], state[1]]).toEqual(checksum);
        // Any changed byte (but the salt words, compared on their own) fails, and leaves the state.
        const bad = Buffer.from(buf);
        bad[5 + flip]! ^= 0x01;
        const kept = new Uint32Array(prev);
        expect(check(kept, bad, 5, 4096, bigEndian, salt1, salt2)).toBe(false);
        expect([kept[0], kept[1]]).toEqual(prev);
        expect(check(new Uint32Array(prev), buf, 5, 4096, bigEndian, (salt1 + 1) >>> 0, salt2)).toBe(false);
        expect(check(new Uint32Array(prev), buf, 6, 4096, bigEndian, salt1, salt2)).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('WAL chain check: counts the frames that chain from the running checksum, stops at the first that does not', () => {
    const chainCheck = nativeChecksums!.walChainCheck!.bind(nativeChecksums);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.boolean(), u32, u32, fc.nat(), fc.boolean(), (n, bigEndian, s0, s1, pick, damage) => {
        const header = { bigEndian, pageSize: 512, salt1: 1, salt2: 2 };
        let sum: WalChecksum = [s0, s1];
        const sums: WalChecksum[] = [];
        const frames: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          const { bytes, checksum } = encodeWalFrame(header, sum, { pageNo: i + 1, sizeAfter: i === n - 1 ? n : 0, page: Buffer.alloc(512, i * 7 + 1) });
          frames.push(bytes);
          sums.push(checksum);
          sum = checksum;
        }
        const buf = Buffer.concat(frames);
        const bad = pick % n;
        if (damage) buf[bad * 536 + 24 + (pick % 512)]! ^= 0x10;
        const state = new Uint32Array([s0, s1]);
        const chained = chainCheck(state, buf, 512, bigEndian, n);
        expect(chained).toBe(damage ? bad : n);
        expect([state[0], state[1]]).toEqual(chained === 0 ? [s0, s1] : sums[chained - 1]);
      }),
      { numRuns: 100 },
    );
    expect(() => chainCheck(new Uint32Array(2), Buffer.alloc(536), 512, false, 2)).toThrow(TypeError);
  });

  it.skipIf(process.platform === 'win32')('pread: reads at a position, short at the end of the file, errors carry their code', () => {
    const pread = nativeChecksums!.pread!.bind(nativeChecksums);
    const file = join(tempDir(), 'f');
    writeFileSync(file, Buffer.from('0123456789'));
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(16, 0x2e);
      expect(pread(fd, buf, 2, 4, 3)).toBe(4);
      expect(buf.subarray(0, 8).toString()).toBe('..3456..');
      expect(pread(fd, buf, 0, 16, 8)).toBe(2);
      expect(pread(fd, buf, 0, 4, 100)).toBe(0);
      expect(() => pread(fd, buf, 10, 8, 0)).toThrow(RangeError);
    } finally {
      closeSync(fd);
    }
    expect(() => pread(fd, Buffer.alloc(4), 0, 4, 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
