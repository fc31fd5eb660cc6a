import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Crc64Stream, crc64Chain, crc64GoIso, reverseBits64 } from '../../../src/engine/wal/crc64.js';

const ALL_ONES = 0xffff_ffff_ffff_ffffn;

/** Bit-at-a-time reference straight from the §6.8 description (no table). */
function reference(prev: bigint, data: Uint8Array): bigint {
  let state = reverseBits64(prev);
  for (const b of data) {
    state ^= BigInt(b);
    for (let i = 0; i < 8; i++) state = state & 1n ? (state >> 1n) ^ 0xd800_0000_0000_0000n : state >> 1n;
  }
  return state ^ ALL_ONES;
}

describe('crc64', () => {
  it('matches the CRC-64/GO-ISO check value', () => {
    expect(crc64GoIso(Buffer.from('123456789'))).toBe(0xb909_56c7_75a4_1001n);
    expect(crc64Chain(ALL_ONES, Buffer.from('123456789'))).toBe(0xb909_56c7_75a4_1001n);
  });

  it('streams: the standard CRC of data given in any pieces (Crc64Stream)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat({ max: 3000 }), { maxLength: 6 }), (data, cuts) => {
        const stream = new Crc64Stream();
        let at = 0;
        for (const c of [...cuts].sort((a, b) => a - b)) {
          if (c > data.length) break;
          stream.update(data.subarray(at, c));
          at = c;
        }
        stream.update(data.subarray(at));
        expect(stream.hex()).toBe(crc64GoIso(data).toString(16).padStart(16, '0'));
      }),
      { numRuns: 200 },
    );
    expect(new Crc64Stream().update(Buffer.from('1234')).update(Buffer.from('56789')).hex()).toBe('b90956c775a41001');
  });

  it('reverses 64 bits', () => {
    expect(reverseBits64(1n)).toBe(1n << 63n);
    expect(reverseBits64(0x0123_4567_89ab_cdefn)).toBe(0xf7b3_d591_e6a2_c480n);
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: ALL_ONES }), (v) => reverseBits64(reverseBits64(v)) === v));
  });

  it('chains from the previous checksum like the bitwise reference', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ALL_ONES }), fc.uint8Array({ maxLength: 300 }), (prev, data) => {
        expect(crc64Chain(prev, data)).toBe(reference(prev, data));
      }),
      { numRuns: 200 },
    );
  });

  it('chains pages: each checksum depends on the previous one', () => {
    const page = Buffer.alloc(4096, 7);
    const c0 = crc64Chain(0n, page);
    const c1 = crc64Chain(c0, page);
    expect(c1).not.toBe(c0);
    expect(crc64Chain(0n, page)).toBe(c0);
    expect(c0).toBe(reference(0n, page));
    expect(c1).toBe(reference(c0, page));
  });
});
