import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc64Chain, crc64ChainWords, crc64ChainWordsJs } from '../../../src/engine/wal/crc64.js';
import { nativeChecksums } from '../../../src/engine/wal/native-checksums.js';
import { walChecksum, walChecksumJs } from '../../../src/engine/wal/sqlite-wal-format.js';

/** native/checksums.c, built by `npm install`: loaded, and equal to the JavaScript versions. */

const ALL_ONES = 0xffff_ffff_ffff_ffffn;

describe('the native checksums', () => {
  it('are built and loaded', () => {
    expect(nativeChecksums).not.toBeNull();
  });

  it('CRC-64: the check value, and the same as the JavaScript version at any offset and length', () => {
    expect(crc64ChainWords(0xffff_ffff, 0xffff_ffff, Buffer.from('123456789'))).toEqual([0xb909_56c7, 0x75a4_1001]);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ALL_ONES }), fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 7 }), (prev, bytes, skip) => {
        const data = bytes.subarray(Math.min(skip, bytes.length));
        const want = crc64Chain(prev, data);
        const words: [number, number] = [Number(want >> 32n), Number(want & 0xffff_ffffn)];
        const [hi, lo] = [Number(prev >> 32n), Number(prev & 0xffff_ffffn)];
        expect(crc64ChainWords(hi, lo, data)).toEqual(words);
        expect(crc64ChainWordsJs(hi, lo, data)).toEqual(words);
      }),
    );
  });

  it('WAL checksum: the same as the JavaScript version in both byte orders, above and below the native threshold', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 5000 }), fc.boolean(), fc.nat(), fc.nat(), fc.nat({ max: 3 }), (bytes, bigEndian, s0, s1, skip) => {
        const from = Math.min(skip, bytes.length);
        const data = bytes.subarray(from, from + Math.floor((bytes.length - from) / 8) * 8);
        const seed: [number, number] = [s0 >>> 0, s1 >>> 0];
        expect(walChecksum(data, bigEndian, seed)).toEqual(walChecksumJs(data, bigEndian, seed));
      }),
    );
    const page = Buffer.alloc(4096);
    for (let i = 0; i < page.length; i++) page[i] = (i * 131) & 0xff;
    expect(walChecksum(page, false, [1, 2])).toEqual(walChecksumJs(page, false, [1, 2]));
    expect(walChecksum(page, true, [1, 2])).toEqual(walChecksumJs(page, true, [1, 2]));
  });
});
