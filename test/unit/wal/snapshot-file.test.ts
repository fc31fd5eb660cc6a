import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SnapshotCorruptError } from '../../../src/engine/wal/errors.js';
import { FRAME_SIZE, PAGE_SIZE, type Frame } from '../../../src/engine/wal/frame.js';
import { newLogId } from '../../../src/engine/wal/log-id.js';
import {
  buildSnapshot,
  parseSnapshotFileName,
  readSnapshot,
  readSnapshotHeader,
  SNAPSHOT_HEADER_SIZE,
  snapshotFileName,
} from '../../../src/engine/wal/snapshot-file.js';
import { WallogFile } from '../../../src/engine/wal/wallog-file.js';
import { tempDir } from './helpers.js';

/** [pageNo, sizeAfter] per frame, numbered from `start`. */
function frames(spec: [number, number][], start = 0n): Frame[] {
  return spec.map(([pageNo, sizeAfter], i) => ({ frameNo: start + BigInt(i), checksum: BigInt(i) * 31n, pageNo, sizeAfter, page: randomBytes(PAGE_SIZE) }));
}

// Three transactions: pages 1,2,3 (size 3) / 2,1 (size 3) / 4,2 (size 4).
const SPEC: [number, number][] = [[1, 0], [2, 0], [3, 3], [2, 0], [1, 3], [4, 0], [2, 4]];

function expectNewestWins(input: Frame[], out: Frame[]): void {
  expect(out.map((f) => f.frameNo)).toEqual([6n, 5n, 4n, 2n]);
  expect(out.map((f) => f.pageNo)).toEqual([2, 4, 1, 3]);
  expect(out.every((f) => f.sizeAfter === 0)).toBe(true);
  for (const f of out) {
    const src = input[Number(f.frameNo)];
    expect(f.page.equals(src?.page ?? Buffer.alloc(0))).toBe(true);
    expect(f.checksum).toBe(src?.checksum);
  }
}

describe('snapshot files', () => {
  it('names files <log_id>-<start>-<end>.snap and parses them back', () => {
    const id = newLogId();
    expect(snapshotFileName(id, 0n, 41n)).toBe(`${id}-0-41.snap`);
    expect(parseSnapshotFileName(`/x/y/${id}-10-20.snap`)).toEqual({ logId: id, startFrameNo: 10n, endFrameNo: 20n });
    expect(parseSnapshotFileName('nope.snap')).toBeNull();
  });

  it('keeps the newest image of each page in descending frame order', () => {
    const dir = tempDir();
    const logId = newLogId();
    const input = frames(SPEC);
    const path = join(dir, snapshotFileName(logId, 0n, 6n));
    const header = buildSnapshot({ logId, frames: input }, path);
    expect(header).toEqual({ logId, startFrameNo: 0n, endFrameNo: 6n, frameCount: 4n, sizeAfter: 4 });
    expect(statSync(path).size).toBe(SNAPSHOT_HEADER_SIZE + 4 * FRAME_SIZE);
    expect(existsSync(`${path}.tmp`)).toBe(false);

    const bytes = readFileSync(path);
    expect(bytes.readBigUInt64LE(16)).toBe(0n);
    expect(bytes.readBigUInt64LE(24)).toBe(6n);
    expect(bytes.readBigUInt64LE(32)).toBe(4n);
    expect(bytes.readUInt32LE(40)).toBe(4);

    const snap = readSnapshot(path);
    expect(snap.header).toEqual(header);
    expectNewestWins(input, [...snap.frames]);
    expect([...readSnapshot(path, { fromFrameNo: 5n }).frames].map((f) => f.frameNo)).toEqual([6n, 5n]);
  });

  it('builds from a wallog range, dropping pages past the final size', () => {
    const dir = tempDir();
    const log = WallogFile.create(join(dir, 'wallog'), { logId: newLogId(), startFrameNo: 0n, startChecksum: 0n });
    const input = frames(SPEC);
    log.appendTransaction(input.slice(0, 3));
    log.appendTransaction(input.slice(3, 5));
    log.appendTransaction(input.slice(5, 7));
    log.appendTransaction(frames([[5, 0], [1, 2]])); // shrinks the database to 2 pages
    const stored = log.readFrames(0n, 100);

    const whole = join(dir, 'whole.snap');
    expectNewestWins(stored, [...readSnapshot((buildSnapshot({ wallog: log, toFrameNo: 6n }, whole), whole)).frames]);

    const all = join(dir, 'all.snap');
    const header = buildSnapshot({ wallog: log }, all);
    expect(header).toMatchObject({ logId: log.logId, startFrameNo: 0n, endFrameNo: 8n, frameCount: 2n, sizeAfter: 2 });
    expect([...readSnapshot(all).frames].map((f) => [f.frameNo, f.pageNo])).toEqual([[8n, 1], [6n, 2]]);

    const part = join(dir, 'part.snap');
    expect(buildSnapshot({ wallog: log, fromFrameNo: 3n, toFrameNo: 4n }, part)).toMatchObject({ startFrameNo: 3n, endFrameNo: 4n, frameCount: 2n, sizeAfter: 3 });
    log.close();
  });

  it('refuses ranges that do not end at a commit, and unordered input', () => {
    const dir = tempDir();
    const logId = newLogId();
    expect(() => buildSnapshot({ logId, frames: frames(SPEC).slice(0, 4) }, join(dir, 'a.snap'))).toThrow(RangeError);
    expect(() => buildSnapshot({ logId, frames: [] }, join(dir, 'b.snap'))).toThrow(RangeError);
    const swapped = frames([[1, 1], [2, 2]]).reverse();
    expect(() => buildSnapshot({ logId, frames: swapped }, join(dir, 'c.snap'))).toThrow(RangeError);
  });

  it('reports inconsistent files with SnapshotCorruptError', () => {
    const dir = tempDir();
    const logId = newLogId();
    const path = join(dir, 'x.snap');
    buildSnapshot({ logId, frames: frames(SPEC) }, path);
    const good = readFileSync(path);
    const reason = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(SnapshotCorruptError);
        expect((err as SnapshotCorruptError).code).toBe('SNAPSHOT_CORRUPT');
        return (err as SnapshotCorruptError).reason;
      }
      throw new Error('expected SnapshotCorruptError');
    };

    writeFileSync(path, good.subarray(0, good.length - 5));
    expect(reason(() => readSnapshotHeader(path))).toBe('bad_size');
    writeFileSync(path, good.subarray(0, 20));
    expect(reason(() => readSnapshotHeader(path))).toBe('truncated_header');

    const swapped = Buffer.from(good);
    good.copy(swapped, SNAPSHOT_HEADER_SIZE, SNAPSHOT_HEADER_SIZE + FRAME_SIZE, SNAPSHOT_HEADER_SIZE + 2 * FRAME_SIZE);
    good.copy(swapped, SNAPSHOT_HEADER_SIZE + FRAME_SIZE, SNAPSHOT_HEADER_SIZE, SNAPSHOT_HEADER_SIZE + FRAME_SIZE);
    writeFileSync(path, swapped);
    expect(reason(() => [...readSnapshot(path).frames])).toBe('frame_order');

    const withSize = Buffer.from(good);
    withSize.writeUInt32LE(7, SNAPSHOT_HEADER_SIZE + 20);
    writeFileSync(path, withSize);
    expect(reason(() => [...readSnapshot(path).frames])).toBe('frame_size_after');

    const badRange = Buffer.from(good);
    badRange.writeBigUInt64LE(2n, 24); // range 0-2 cannot hold 4 frames
    writeFileSync(path, badRange);
    expect(reason(() => readSnapshotHeader(path))).toBe('bad_range');

    const outside = Buffer.from(good);
    outside.writeBigUInt64LE(5n, 24); // header end 5, first frame is 6
    writeFileSync(path, outside);
    expect(reason(() => [...readSnapshot(path).frames])).toBe('frame_out_of_range');
  });
});
