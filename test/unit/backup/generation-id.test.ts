import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareGenerationIds,
  GENERATION_MIRROR_SECS,
  generationIdFromBytes,
  generationIdToBytes,
  generationSeconds,
  generationTimeMs,
  isGenerationId,
  newGenerationId,
} from '../../../src/backup/format/generation-id.js';

const zeros = (n: number): Buffer => Buffer.alloc(n, 0);
const ones = (n: number): Buffer => Buffer.alloc(n, 0xff);

describe('generation ids', () => {
  it('decodes the spec check values', () => {
    const a = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
    expect(new Date(generationTimeMs(a)).toISOString()).toBe('2022-12-23T08:24:52.500Z');
    expect(generationSeconds(a)).toBe(Date.parse('2022-12-23T08:24:52Z') / 1000);
    const b = 'e4e46038-04e1-7a3c-9f00-0123456789ab';
    expect(generationSeconds(b)).toBe(Date.parse('2023-11-29T07:34:00Z') / 1000);
    expect(new Date(generationTimeMs(b)).toISOString()).toMatch(/^2023-11-29T07:34:00\.\d{3}Z$/);
  });

  it('encodes the check value time back to the same clock digits', () => {
    expect(newGenerationId(Date.parse('2022-12-23T08:24:52.500Z'))).toMatch(/^e4eb3c21-ff53-7/);
    expect(newGenerationId({ secs: Date.parse('2022-12-23T08:24:52Z') / 1000, nanos: 500_000_000 })).toMatch(/^e4eb3c21-ff53-7/);
    expect(newGenerationId({ secs: 1_671_783_892, nanos: 500_999_999 }, zeros)).toBe(newGenerationId({ secs: 1_671_783_892, nanos: 500_000_000 }, zeros));
  });

  it('sets version and variant over the random bits', () => {
    const t = Date.parse('2024-05-01T12:00:00Z');
    expect(newGenerationId(t, zeros)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7000-8000-000000000000$/);
    expect(newGenerationId(t, ones)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7fff-bfff-ffffffffffff$/);
    for (let i = 0; i < 50; i++) expect(isGenerationId(newGenerationId())).toBe(true);
  });

  it('matches only the §1.4 pattern', () => {
    const good = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
    expect(isGenerationId(good)).toBe(true);
    expect(isGenerationId(good.toUpperCase())).toBe(false);
    expect(isGenerationId('e4eb3c21-ff53-4b2e-a6ea-ca396f4df9b1')).toBe(false); // version 4
    expect(isGenerationId('e4eb3c21-ff53-7b2e-c6ea-ca396f4df9b1')).toBe(false); // variant 110
    expect(isGenerationId(`${good}0`)).toBe(false);
    expect(isGenerationId(good.replaceAll('-', ''))).toBe(false);
    expect(isGenerationId(`x${good.slice(1)}`)).toBe(false);
  });

  it('sorts newer generations first, as strings', () => {
    const base = Date.parse('2020-01-01T00:00:00Z');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 11 }), fc.integer({ min: 1, max: 10 ** 11 }), (offset, gap) => {
        const older = newGenerationId(base + offset);
        const newer = newGenerationId(base + offset + gap);
        expect(newer < older).toBe(true);
        expect(compareGenerationIds(newer, older)).toBe(-1);
      }),
      { numRuns: 300 },
    );
    const ids = [0, 1, 999, 1000, 86_400_000].map((d) => newGenerationId(base + d));
    expect([...ids].sort()).toEqual([...ids].reverse());
  });

  it('round-trips the creation time (whole ms exactly, seconds for comparisons)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: GENERATION_MIRROR_SECS * 1000 }), (ms) => {
        const id = newGenerationId(ms);
        expect(isGenerationId(id)).toBe(true);
        expect(generationTimeMs(id)).toBe(ms);
        expect(generationSeconds(id)).toBe(Math.floor(ms / 1000));
      }),
      { numRuns: 300 },
    );
    // Sub-millisecond parts are dropped.
    expect(generationTimeMs(newGenerationId({ secs: 100, nanos: 123_456_789 }))).toBe(100_123);
  });

  it('converts to and from the 16 raw bytes', () => {
    const id = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
    const bytes = generationIdToBytes(id);
    expect(bytes.toString('hex')).toBe('e4eb3c21ff537b2ea6eaca396f4df9b1');
    expect(generationIdFromBytes(bytes)).toBe(id);
    const fresh = newGenerationId();
    expect(generationIdFromBytes(generationIdToBytes(fresh))).toBe(fresh);
    expect(() => generationIdFromBytes(Buffer.alloc(15))).toThrow(RangeError);
    expect(() => generationIdToBytes('not-a-uuid')).toThrow(RangeError);
  });

  it('refuses times outside the clock', () => {
    expect(() => newGenerationId(-1)).toThrow(RangeError);
    expect(() => newGenerationId({ secs: GENERATION_MIRROR_SECS + 1, nanos: 0 })).toThrow(RangeError);
    expect(() => newGenerationId({ secs: 1, nanos: 1_000_000_000 })).toThrow(RangeError);
    expect(() => newGenerationId(Number.NaN)).toThrow(RangeError);
    expect(() => newGenerationId(0, () => Buffer.alloc(3))).toThrow(RangeError);
  });
});
