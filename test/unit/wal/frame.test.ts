import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FRAME_SIZE, PAGE_SIZE, type Frame } from '../../../src/engine/wal/frame.js';
import { newLogId, readLogId, u128ToUuid, uuidToU128, writeLogId } from '../../../src/engine/wal/log-id.js';

describe('sqld frame', () => {
  it('is 4120 bytes with a little-endian header', () => {
    const page = Buffer.alloc(PAGE_SIZE, 0xab);
    const buf = encodeFrame({ frameNo: 0x0102_0304_0506_0708n, checksum: 0xfedc_ba98_7654_3210n, pageNo: 0x11223344, sizeAfter: 5, page });
    expect(FRAME_SIZE).toBe(4120);
    expect(buf.length).toBe(4120);
    expect(buf.subarray(0, 8).toString('hex')).toBe('0807060504030201');
    expect(buf.subarray(8, 16).toString('hex')).toBe('1032547698badcfe');
    expect(buf.subarray(16, 20).toString('hex')).toBe('44332211');
    expect(buf.subarray(20, 24).toString('hex')).toBe('05000000');
    expect(buf.subarray(24).equals(page)).toBe(true);
  });

  it('round-trips', () => {
    const frameArb = fc.record({
      frameNo: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      checksum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      pageNo: fc.integer({ min: 1, max: 0xffff_ffff }),
      sizeAfter: fc.integer({ min: 0, max: 0xffff_ffff }),
      fill: fc.integer({ min: 0, max: 255 }),
    });
    fc.assert(
      fc.property(frameArb, fc.integer({ min: 0, max: 100 }), ({ fill, ...rest }, offset) => {
        const frame: Frame = { ...rest, page: Buffer.alloc(PAGE_SIZE, fill) };
        const buf = encodeFrame(frame, Buffer.alloc(offset + FRAME_SIZE), offset);
        const { page, ...head } = decodeFrame(buf, offset);
        expect(head).toEqual(rest);
        expect(page.equals(frame.page)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('rejects bad input', () => {
    const ok: Frame = { frameNo: 0n, checksum: 0n, pageNo: 1, sizeAfter: 0, page: Buffer.alloc(PAGE_SIZE) };
    expect(() => encodeFrame({ ...ok, page: Buffer.alloc(100) })).toThrow(RangeError);
    expect(() => encodeFrame({ ...ok, frameNo: -1n })).toThrow(RangeError);
    expect(() => encodeFrame({ ...ok, pageNo: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeFrame(ok, Buffer.alloc(FRAME_SIZE), 1)).toThrow(RangeError);
    expect(() => decodeFrame(Buffer.alloc(FRAME_SIZE - 1))).toThrow(RangeError);
  });
});

describe('log id', () => {
  it('stores the UUID big-endian value as a little-endian u128', () => {
    const uuid = '00112233-4455-6677-8899-aabbccddeeff';
    expect(uuidToU128(uuid)).toBe(0x0011_2233_4455_6677_8899_aabb_ccdd_eeffn);
    const buf = Buffer.alloc(20);
    writeLogId(uuid, buf, 2);
    expect(buf.subarray(2, 18).toString('hex')).toBe('ffeeddccbbaa99887766554433221100');
    expect(readLogId(buf, 2)).toBe(uuid);
  });

  it('round-trips random ids and rejects non-UUIDs', () => {
    for (let i = 0; i < 20; i++) {
      const id = newLogId();
      expect(u128ToUuid(uuidToU128(id))).toBe(id);
    }
    expect(u128ToUuid(0n)).toBe('00000000-0000-0000-0000-000000000000');
    expect(() => uuidToU128('nope')).toThrow(RangeError);
    expect(() => u128ToUuid(1n << 128n)).toThrow(RangeError);
  });
});
