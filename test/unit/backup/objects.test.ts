import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import {
  changeCounterOfDbHeader,
  COMMIT_TIMES_BUDGET,
  commitTimesFit,
  CommitTimesWriter,
  decodeChangeCounter,
  decodeCommitTimes,
  decodeDep,
  decodeDurableMarker,
  decodeMeta,
  decodeSnapshotMetadata,
  decodeTombstone,
  encodeChangeCounter,
  encodeCommitTimes,
  encodeDep,
  encodeDurableMarker,
  encodeMeta,
  encodeSnapshotMetadata,
  encodeTombstone,
  META_BATCH_COMMITS,
  META_SNAPSHOT_PAGES,
  META_SNAPSHOT_CRC64,
  META_SNAPSHOT_SHA256,
  type CommitTime,
} from '../../../src/backup/format/objects.js';

const KEY = 'ns-x:default-e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1/.meta';

function corruptError(fn: () => unknown): CorruptBackupError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CorruptBackupError);
    const err = e as CorruptBackupError;
    expect(err.code).toBe('BACKUP_CORRUPT');
    expect(err.message).toContain(KEY);
    return err;
  }
  throw new Error('expected a CorruptBackupError');
}

describe('per-generation objects', () => {
  it('.meta: page size and the two seed words, big-endian', () => {
    const bytes = encodeMeta({ pageSize: 4096, checksum: [0x01020304, 0xfffffffe] });
    expect(bytes.toString('hex')).toBe('00001000' + '01020304' + 'fffffffe');
    expect(decodeMeta(bytes, KEY)).toEqual({ pageSize: 4096, checksum: [0x01020304, 0xfffffffe] });
    expect(decodeMeta(encodeMeta({ pageSize: 65536, checksum: [0, 0] }), KEY).pageSize).toBe(65536);
    corruptError(() => decodeMeta(bytes.subarray(0, 11), KEY));
    corruptError(() => decodeMeta(Buffer.concat([bytes, Buffer.alloc(1)]), KEY));
    const bad = Buffer.from(bytes);
    bad.writeUInt32BE(1000, 0);
    expect(corruptError(() => decodeMeta(bad, KEY)).message).toContain('page size 1000');
    expect(() => encodeMeta({ pageSize: 100, checksum: [0, 0] })).toThrow(RangeError);
  });

  it('.dep: the parent id as 16 raw bytes', () => {
    const parent = 'e4e46038-04e1-7a3c-9f00-0123456789ab';
    const bytes = encodeDep(parent);
    expect(bytes.toString('hex')).toBe('e4e4603804e17a3c9f000123456789ab');
    expect(decodeDep(bytes, KEY)).toBe(parent);
    corruptError(() => decodeDep(bytes.subarray(1), KEY));
    corruptError(() => decodeDep(Buffer.alloc(16), KEY)); // not version 7
  });

  it('.changecounter: u32 big-endian, as in the database header', () => {
    expect(encodeChangeCounter(0x0a0b0c0d).toString('hex')).toBe('0a0b0c0d');
    expect(decodeChangeCounter(encodeChangeCounter(7), KEY)).toBe(7);
    corruptError(() => decodeChangeCounter(Buffer.alloc(8), KEY));
    const header = Buffer.alloc(100);
    header.write('SQLite format 3\0', 0, 'latin1');
    header.writeUInt32BE(0xdeadbeef, 24);
    expect(changeCounterOfDbHeader(header)).toBe(0xdeadbeef);
    expect(encodeChangeCounter(changeCounterOfDbHeader(header))).toEqual(header.subarray(24, 28));
    expect(() => changeCounterOfDbHeader(header.subarray(0, 27))).toThrow(RangeError);
  });

  it('tombstone: i64 big-endian Unix seconds', () => {
    expect(encodeTombstone(1_700_000_000).toString('hex')).toBe('000000006553f100');
    expect(decodeTombstone(encodeTombstone(1_700_000_000), KEY)).toBe(1_700_000_000);
    expect(decodeTombstone(encodeTombstone(-5), KEY)).toBe(-5);
    corruptError(() => decodeTombstone(Buffer.alloc(4), KEY));
    corruptError(() => decodeTombstone(Buffer.from('7fffffffffffffff', 'hex'), KEY));
  });
});

describe('our metadata', () => {
  it('names the headers in lower case without the x-amz-meta- prefix', () => {
    for (const name of [META_SNAPSHOT_CRC64, META_SNAPSHOT_SHA256, META_SNAPSHOT_PAGES, META_BATCH_COMMITS]) expect(name).toMatch(/^libsqlctl-[a-z0-9-]+$/);
  });

  it('snapshot digest (CRC-64 now, SHA-256 before) and page count', () => {
    const crc = '0123456789abcdef';
    const meta = encodeSnapshotMetadata({ digest: { kind: 'crc64', hex: crc }, pageCount: 12 });
    expect(meta).toEqual({ 'libsqlctl-crc64': crc, 'libsqlctl-page-count': '12' });
    expect(decodeSnapshotMetadata(meta, KEY)).toEqual({ digest: { kind: 'crc64', hex: crc }, pageCount: 12 });
    const sha256 = 'ab'.repeat(32);
    const old = encodeSnapshotMetadata({ digest: { kind: 'sha256', hex: sha256 }, pageCount: 12 });
    expect(old).toEqual({ 'libsqlctl-sha256': sha256, 'libsqlctl-page-count': '12' });
    expect(decodeSnapshotMetadata(old, KEY)).toEqual({ digest: { kind: 'sha256', hex: sha256 }, pageCount: 12 });
    // Both: the CRC is the one checked.
    expect(decodeSnapshotMetadata({ ...old, ...meta }, KEY)?.digest.kind).toBe('crc64');
    expect(() => encodeSnapshotMetadata({ digest: { kind: 'crc64', hex: sha256 }, pageCount: 1 })).toThrow(RangeError);
    corruptError(() => decodeSnapshotMetadata({ 'libsqlctl-crc64': 'ABC', 'libsqlctl-page-count': '1' }, KEY));
    corruptError(() => decodeSnapshotMetadata({ 'libsqlctl-page-count': '1' }, KEY));
    expect(decodeSnapshotMetadata({}, KEY)).toBeNull();
    corruptError(() => decodeSnapshotMetadata({ 'libsqlctl-sha256': 'xyz', 'libsqlctl-page-count': '1' }, KEY));
    corruptError(() => decodeSnapshotMetadata({ 'libsqlctl-sha256': sha256 }, KEY));
    corruptError(() => decodeSnapshotMetadata({ 'libsqlctl-sha256': sha256, 'libsqlctl-page-count': '-1' }, KEY));
  });

  it('commit times: the documented example', () => {
    const commits = [
      { lastFrame: 12, unixMs: 1_700_000_000_000 },
      { lastFrame: 15, unixMs: 1_700_000_000_003 },
      { lastFrame: 40, unixMs: 1_700_000_000_253 },
    ];
    expect(encodeCommitTimes(commits)).toBe('c.loyw3v28;3.3;p.6y');
    expect(decodeCommitTimes('c.loyw3v28;3.3;p.6y', 10, KEY, 40)).toEqual(commits);
    expect(encodeCommitTimes([])).toBe('');
    expect(decodeCommitTimes('', 1, KEY)).toEqual([]);
  });

  it('commit times: round trip, clocks stepping back included', () => {
    const commitsArb = fc
      .array(fc.record({ frames: fc.integer({ min: 1, max: 5000 }), dt: fc.integer({ min: -5000, max: 100_000 }) }), { minLength: 1, maxLength: 60 })
      .map((steps) => {
        let frame = 0;
        let t = 1_800_000_000_000;
        return steps.map(({ frames, dt }) => ({ lastFrame: (frame += frames), unixMs: (t += dt) }));
      });
    fc.assert(
      fc.property(commitsArb, (commits) => {
        const s = encodeCommitTimes(commits);
        expect(s).toMatch(/^[0-9a-z.;-]*$/);
        expect(decodeCommitTimes(s, 1, KEY, commits.at(-1)!.lastFrame)).toEqual(commits);
      }),
      { numRuns: 200 },
    );
  });

  it('commit times: damaged or out-of-range values are corrupt', () => {
    for (const bad of ['c', 'c.', 'c.1.2', 'C.1', 'c.1;;1.1', 'c.1;0.1', 'c.1;-1.1', '-c.1', 'c.-1', 'c.1;1.-2', 'zzzzzzzzzzzz.1']) {
      corruptError(() => decodeCommitTimes(bad, 1, KEY));
    }
    corruptError(() => decodeCommitTimes('5.1', 6, KEY)); // before the batch's first frame
    corruptError(() => decodeCommitTimes('5.1;1.1', 1, KEY, 5)); // after its last
    expect(() => encodeCommitTimes([{ lastFrame: 3, unixMs: 1 }, { lastFrame: 3, unixMs: 2 }])).toThrow(RangeError);
    expect(() => encodeCommitTimes([{ lastFrame: 0, unixMs: 1 }])).toThrow(RangeError);
  });

  it('commit times: the one-pass decoder accepts and refuses exactly what split and regular expressions do', () => {
    /** The decoder as first written (split on `;` and `.`, each number checked by a pattern). */
    const reference = (s: string, firstFrame: number, lastFrame: number): CommitTime[] | 'corrupt' => {
      if (s === '') return [];
      const out: CommitTime[] = [];
      let prev: CommitTime | null = null;
      for (const entry of s.split(';')) {
        const parts = entry.split('.');
        if (parts.length !== 2 || !/^-?[0-9a-z]{1,11}$/.test(parts[0]!) || !/^-?[0-9a-z]{1,11}$/.test(parts[1]!)) return 'corrupt';
        const f = Number.parseInt(parts[0]!, 36);
        const t = Number.parseInt(parts[1]!, 36);
        const c: CommitTime = prev === null ? { lastFrame: f, unixMs: t } : { lastFrame: prev.lastFrame + f, unixMs: prev.unixMs + t };
        const bad = !Number.isSafeInteger(c.lastFrame) || !Number.isSafeInteger(c.unixMs) || c.unixMs < 0 || (prev === null ? c.lastFrame < firstFrame : f < 1) || c.lastFrame > lastFrame;
        if (bad) return 'corrupt';
        out.push(c);
        prev = c;
      }
      return out;
    };
    const text = fc.oneof(
      fc.stringMatching(/^[0-9a-z.;-]{0,40}$/),
      fc.stringMatching(/^([0-9a-c]{1,3}\.[0-9a-z-]{1,4};){0,5}[0-9a-c]{1,3}\.[0-9a-z]{1,12}$/),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 50 }), (s, first) => {
        let got: CommitTime[] | 'corrupt';
        try {
          got = decodeCommitTimes(s, first, KEY, 100_000);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptBackupError);
          got = 'corrupt';
        }
        expect(got, JSON.stringify(s)).toEqual(reference(s, first, 100_000));
      }),
      { numRuns: 3000 },
    );
  });

  /** Fills a writer up to the budget with commits from `step`; checks every value on the way. */
  function fillWriter(step: (i: number) => { frames: number; ms: number }): CommitTime[] {
    const w = new CommitTimesWriter();
    const added: CommitTime[] = [];
    let frame = 0;
    let t = 1_750_000_000_000;
    for (let i = 0; ; i++) {
      const { frames, ms } = step(i);
      const c = { lastFrame: frame + frames, unixMs: t + ms };
      const fits = w.canAdd(c);
      expect(w.tryAdd(c)).toBe(fits);
      if (!fits) break;
      added.push(c);
      frame = c.lastFrame;
      t = c.unixMs;
      if (i % 499 === 0) {
        const value = w.toString();
        expect(value.length).toBeLessThanOrEqual(COMMIT_TIMES_BUDGET);
        expect(decodeCommitTimes(value, 1, KEY, frame)).toEqual(added);
      }
    }
    expect(decodeCommitTimes(w.toString(), 1, KEY, frame)).toEqual(added);
    expect(w.toString().length).toBeLessThanOrEqual(COMMIT_TIMES_BUDGET);
    expect(commitTimesFit(added)).toBe(true);
    return added;
  }

  it('commit times: the writer knows before adding whether one more fits, and stops at the budget', () => {
    // A server committing every few ms: thousands of transactions in one batch (packed).
    const busy = fillWriter((i) => ({ frames: 1, ms: i % 3 === 0 ? 1 : 0 }));
    expect(busy.length).toBeGreaterThan(5000);
    expect(encodeCommitTimes(busy)).toMatch(/^~/);
    // Irregular steps pack less, but still more than the plain form holds.
    const irregular = fillWriter((i) => ({ frames: 1 + (i % 3), ms: i % 17 }));
    expect(irregular.length).toBeGreaterThan(1500);
    // Steps that do not repeat pack little.
    let f = 0;
    expect(commitTimesFit(Array.from({ length: 2000 }, (_, i) => ({ lastFrame: (f += 1 + ((i * 7919) % 1297)), unixMs: 1_800_000_000_000 + i * i })))).toBe(false);
    // Our metadata stays inside S3's 2 KB (names with the x-amz-meta- prefix plus values).
    expect(`x-amz-meta-${META_BATCH_COMMITS}`.length + COMMIT_TIMES_BUDGET).toBeLessThan(2048);
  });

  it('commit times: short lists stay plain; long ones pack and round-trip, random steps included', () => {
    expect(encodeCommitTimes([{ lastFrame: 1, unixMs: 5 }])).toBe('1.5');
    const stepsArb = fc.array(fc.record({ frames: fc.integer({ min: 1, max: 70_000 }), dt: fc.integer({ min: -5000, max: 2_000_000 }) }), { minLength: 1, maxLength: 1500 });
    fc.assert(
      fc.property(stepsArb, (steps) => {
        let frame = 0;
        let t = 1_800_000_000_000;
        const commits = steps.map(({ frames, dt }) => ({ lastFrame: (frame += frames), unixMs: (t = Math.max(0, t + dt)) }));
        const w = new CommitTimesWriter();
        const taken = commits.filter((c, i) => i === commits.indexOf(c) && w.tryAdd(c));
        const value = w.toString();
        expect(value.length).toBeLessThanOrEqual(COMMIT_TIMES_BUDGET);
        expect(decodeCommitTimes(value, 1, KEY, frame)).toEqual(commits.slice(0, taken.length));
        expect(decodeCommitTimes(encodeCommitTimes(commits), 1, KEY, frame)).toEqual(commits);
      }),
      { numRuns: 60 },
    );
  });

  it('commit times: a damaged packed value is corrupt', () => {
    const packed = encodeCommitTimes(Array.from({ length: 3000 }, (_, i) => ({ lastFrame: i + 1, unixMs: 1_800_000_000_000 + i })));
    expect(packed).toMatch(/^~[A-Za-z0-9+/=,]+$/);
    const notPlain = `~${deflateRawSync(Buffer.from('C.1')).toString('base64')}`;
    for (const bad of ['~', '~,', '~!!!!', '~AAAA', `${packed},`, packed.slice(0, -8), notPlain]) {
      corruptError(() => decodeCommitTimes(bad, 1, KEY));
    }
  });

  it('durable marker: JSON with a decimal frame number', () => {
    const marker = { logId: '0b6f8a9e-7f3c-4c2e-9d51-2f4c6a1e8b7d', lastFrame: 1234, lastFrameNo: 2n ** 60n + 1n, sealed: false, at: new Date('2026-01-02T03:04:05.678Z') };
    const bytes = encodeDurableMarker(marker);
    expect(JSON.parse(bytes.toString('utf8'))).toEqual({
      logId: marker.logId,
      lastFrame: 1234,
      lastFrameNo: '1152921504606846977',
      sealed: false,
      at: '2026-01-02T03:04:05.678Z',
    });
    expect(decodeDurableMarker(bytes, KEY)).toEqual(marker);
    const good = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const variants: Record<string, unknown>[] = [
      { ...good, logId: 'x' },
      { ...good, lastFrame: -1 },
      { ...good, lastFrame: 1.5 },
      { ...good, lastFrame: '3' },
      { ...good, lastFrameNo: 12 },
      { ...good, lastFrameNo: '012' },
      { ...good, sealed: 'no' },
      { ...good, at: 'yesterday' },
      { ...good, at: undefined },
    ];
    for (const v of variants) corruptError(() => decodeDurableMarker(Buffer.from(JSON.stringify(v)), KEY));
    corruptError(() => decodeDurableMarker(Buffer.from('{'), KEY));
    corruptError(() => decodeDurableMarker(Buffer.from('[]'), KEY));
    corruptError(() => decodeDurableMarker(Buffer.from('null'), KEY));
  });

  it("durable marker: copies of the generation's .meta and .dep, checked like them", () => {
    const base = { logId: '0b6f8a9e-7f3c-4c2e-9d51-2f4c6a1e8b7d', lastFrame: 7, lastFrameNo: 7n, sealed: true, at: new Date('2026-01-02T03:04:05.678Z') };
    const parent = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
    for (const marker of [
      { ...base, meta: { pageSize: 4096, checksum: [0xdeadbeef, 7] as const }, parent },
      { ...base, meta: { pageSize: 65536, checksum: [0, 0] as const }, parent: null },
    ]) {
      const bytes = encodeDurableMarker(marker);
      expect(decodeDurableMarker(bytes, KEY)).toEqual({ ...marker, meta: { pageSize: marker.meta.pageSize, checksum: [...marker.meta.checksum] } });
    }
    const good = JSON.parse(encodeDurableMarker({ ...base, meta: { pageSize: 4096, checksum: [1, 2] }, parent }).toString('utf8')) as Record<string, unknown>;
    expect(good).toMatchObject({ pageSize: 4096, seed: [1, 2], parent });
    for (const v of [{ ...good, pageSize: 1000 }, { ...good, seed: [1] }, { ...good, seed: [1, -2] }, { ...good, seed: undefined }, { ...good, pageSize: undefined }, { ...good, parent: 'x' }, { ...good, parent: 3 }]) {
      corruptError(() => decodeDurableMarker(Buffer.from(JSON.stringify(v)), KEY));
    }
    expect(() => encodeDurableMarker({ ...base, meta: { pageSize: 1000, checksum: [0, 0] } })).toThrow(RangeError);
    expect(() => encodeDurableMarker({ ...base, parent: 'x' })).toThrow(RangeError);
  });
});
