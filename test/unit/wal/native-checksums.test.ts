import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc64Chain, crc64ChainWords, crc64ChainWordsJs } from '../../../src/engine/wal/crc64.js';
import { nativeChecksums } from '../../../src/engine/wal/native-checksums.js';

/** native/checksums.c, built by `npm install`: loaded, and equal to the JavaScript version. */

const ALL_ONES = 0xffff_ffff_ffff_ffffn;

describe('the native CRC-64', () => {
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
});
