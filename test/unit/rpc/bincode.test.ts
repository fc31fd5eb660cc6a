import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BincodeError, decodeSqlValue, encodeSqlValue } from '../../../src/rpc/bincode.js';
import type { SqlValue } from '../../../src/engine/values.js';

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function bytes(h: string): Buffer {
  return Buffer.from(h.replace(/\s+/g, ''), 'hex');
}

describe('bincode SQL values (spec §6.7)', () => {
  it.each<[string, SqlValue, string]>([
    ['Null', null, '00000000'],
    ['Integer 1', 1n, '01000000 0100000000000000'],
    ['Integer -1', -1n, '01000000 ffffffffffffffff'],
    ['Integer 2^63-1', 2n ** 63n - 1n, '01000000 ffffffffffffff7f'],
    ['Integer -2^63', -(2n ** 63n), '01000000 0000000000000080'],
    ['Real 1.5', 1.5, '02000000 000000000000f83f'],
    ['Real -0', -0, '02000000 0000000000000080'],
    ['Text "hi"', 'hi', '03000000 0200000000000000 6869'],
    ['Text "é" (UTF-8 length)', 'é', '03000000 0200000000000000 c3a9'],
    ['Text ""', '', '03000000 0000000000000000'],
    ['Blob 01 02 ff', Buffer.from([1, 2, 255]), '04000000 0300000000000000 0102ff'],
    ['Blob empty', new Uint8Array(0), '04000000 0000000000000000'],
  ])('%s has the bytes of the spec table', (_name, value, wire) => {
    expect(hex(encodeSqlValue(value))).toBe(hex(bytes(wire)));
    const back = decodeSqlValue(bytes(wire));
    if (value instanceof Uint8Array) {
      expect(back).toBeInstanceOf(Uint8Array);
      expect(hex(back as Uint8Array)).toBe(hex(value));
    } else {
      expect(back).toStrictEqual(value);
    }
  });

  it('keeps integers as bigint and reals as numbers (1.0 stays a Real)', () => {
    expect(decodeSqlValue(encodeSqlValue(1))).toBe(1);
    expect(hex(encodeSqlValue(1)).slice(0, 8)).toBe('02000000');
    expect(typeof decodeSqlValue(encodeSqlValue(1n))).toBe('bigint');
    expect(Number.isNaN(decodeSqlValue(encodeSqlValue(NaN)))).toBe(true);
  });

  it('round-trips arbitrary values', () => {
    const value: fc.Arbitrary<SqlValue> = fc.oneof(
      fc.constant(null),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.double({ noNaN: true }),
      fc.string({ unit: 'grapheme' }),
      fc.uint8Array().map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(value, (v) => {
        const back = decodeSqlValue(encodeSqlValue(v));
        if (v instanceof Uint8Array) expect(hex(back as Uint8Array)).toBe(hex(v));
        else expect(back).toStrictEqual(v);
      }),
    );
  });

  it('copies blobs out of the input', () => {
    const wire = bytes('04000000 0100000000000000 aa');
    const blob = decodeSqlValue(wire) as Uint8Array;
    wire[12] = 0;
    expect(blob[0]).toBe(0xaa);
  });

  it.each([
    ['empty input', '', /variant index needs 4 bytes/],
    ['short variant index', '0000', /variant index needs 4 bytes/],
    ['unknown variant', '05000000', /unknown variant 5/],
    ['short integer', '01000000 0102', /integer needs 12 bytes/],
    ['short real', '02000000 00', /real needs 12 bytes/],
    ['short length', '03000000 0100', /length needs 12 bytes/],
    ['length beyond the end', '03000000 0500000000000000 6869', /length 5 exceeds the 2 bytes left/],
    ['huge length', '04000000 ffffffffffffffff', /exceeds/],
    ['trailing bytes after Null', '00000000 00', /1 trailing bytes/],
    ['trailing bytes after Integer', '01000000 0100000000000000 ff', /1 trailing bytes/],
    ['trailing bytes after Text', '03000000 0100000000000000 6869', /1 trailing bytes/],
    ['invalid UTF-8', '03000000 0200000000000000 c328', /not valid UTF-8/],
  ])('refuses %s', (_name, wire, message) => {
    expect(() => decodeSqlValue(bytes(wire))).toThrow(BincodeError);
    expect(() => decodeSqlValue(bytes(wire))).toThrow(message);
  });

  it('BincodeError is a RangeError; encoding refuses integers beyond 64 bits', () => {
    expect(new BincodeError('x')).toBeInstanceOf(RangeError);
    expect(() => encodeSqlValue(2n ** 63n)).toThrow(RangeError);
    expect(() => encodeSqlValue(-(2n ** 63n) - 1n)).toThrow(RangeError);
  });

  it('decodes from a view with an offset into a larger buffer', () => {
    const big = Buffer.concat([Buffer.from([9, 9, 9]), bytes('01000000 2a00000000000000')]);
    expect(decodeSqlValue(big.subarray(3))).toBe(42n);
  });
});
