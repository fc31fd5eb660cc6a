import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc64Chain } from '../../../src/engine/wal/crc64.js';
import { WallogCorruptError } from '../../../src/engine/wal/errors.js';
import { encodeFrame, FRAME_SIZE, PAGE_SIZE, type PageFrame } from '../../../src/engine/wal/frame.js';
import { newLogId } from '../../../src/engine/wal/log-id.js';
import { WALLOG_HEADER_SIZE } from '../../../src/engine/wal/wallog-header.js';
import { WallogFile } from '../../../src/engine/wal/wallog-file.js';
import { tempDir } from './helpers.js';

function txn(pageNos: number[], sizeAfter: number): PageFrame[] {
  return pageNos.map((pageNo, i) => ({ pageNo, sizeAfter: i === pageNos.length - 1 ? sizeAfter : 0, page: randomBytes(PAGE_SIZE) }));
}

function withLog(start = 0n, startChecksum = 0n): { path: string; log: WallogFile; logId: string } {
  const path = join(tempDir(), 'wallog');
  const logId = newLogId();
  return { path, log: WallogFile.create(path, { logId, startFrameNo: start, startChecksum }), logId };
}

function corruptCode(fn: () => unknown): { reason: string; frameNo: bigint | undefined } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WallogCorruptError);
    const e = err as WallogCorruptError;
    expect(e.code).toBe('WALLOG_CORRUPT');
    return { reason: e.reason, frameNo: e.frameNo };
  }
  throw new Error('expected WallogCorruptError');
}

describe('WallogFile', () => {
  it('writes the §11 header layout', () => {
    const { path, log, logId } = withLog(7n, 0x1234n);
    log.close();
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(WALLOG_HEADER_SIZE);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('SQLDWAL\0');
    expect(bytes.readBigUInt64LE(8)).toBe(0x1234n);
    expect(bytes.subarray(16, 32).toString('hex')).toBe(Buffer.from(logId.replaceAll('-', ''), 'hex').reverse().toString('hex'));
    expect(bytes.readBigUInt64LE(32)).toBe(7n);
    expect(bytes.readBigUInt64LE(40)).toBe(0n);
    expect(bytes.readUInt32LE(48)).toBe(2);
    expect(bytes.readInt32LE(52)).toBe(4096);
    expect(bytes.readUInt16LE(56)).toBe(0);
  });

  it('appends transactions with chained checksums and reads them back, also after reopening', () => {
    const { path, log, logId } = withLog();
    expect(log.lastCommittedFrameNo).toBeNull();
    expect(log.nextFrameNo).toBe(0n);
    const t1 = txn([1, 2, 3], 3);
    const t2 = txn([2, 4], 4);
    expect(log.appendTransaction(t1)).toEqual({ firstFrameNo: 0n, lastFrameNo: 2n, encoded: null });
    expect(log.appendTransaction(t2)).toEqual({ firstFrameNo: 3n, lastFrameNo: 4n, encoded: null });
    expect(log.frameCount).toBe(5n);
    expect(log.lastCommittedFrameNo).toBe(4n);
    const frames = log.readFrames(0n, 100);
    let sum = 0n;
    [...t1, ...t2].forEach((src, i) => {
      const f = frames[i];
      sum = crc64Chain(sum, src.page);
      expect(f?.frameNo).toBe(BigInt(i));
      expect(f?.checksum).toBe(sum);
      expect(f?.pageNo).toBe(src.pageNo);
      expect(f?.sizeAfter).toBe(src.sizeAfter);
      expect(f?.page.equals(src.page)).toBe(true);
    });
    expect(log.lastChecksum).toBe(sum);
    expect(statSync(path).size).toBe(WALLOG_HEADER_SIZE + 5 * FRAME_SIZE);
    log.close();

    const again = WallogFile.open(path);
    expect(again.logId).toBe(logId);
    expect(again.discardedTailBytes).toBe(0);
    expect(again.lastChecksum).toBe(sum);
    expect(again.nextFrameNo).toBe(5n);
    expect(again.readFrames(3n, 1).map((f) => f.frameNo)).toEqual([3n]);
    expect(again.readFrames(5n, 10)).toEqual([]);
    expect([...again.iterateFrames()].map((f) => f.frameNo)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(again.appendTransaction(txn([5], 5)).firstFrameNo).toBe(5n);
    again.close();
  });

  it('continues numbering and the chain from a compaction start', () => {
    const { log } = withLog(100n, 0xdead_beefn);
    const t = txn([1, 2], 2);
    expect(log.appendTransaction(t)).toEqual({ firstFrameNo: 100n, lastFrameNo: 101n, encoded: null });
    const [first] = log.readFrames(100n, 1);
    expect(first?.checksum).toBe(crc64Chain(0xdead_beefn, t[0]?.page ?? Buffer.alloc(0)));
    expect(() => log.readFrames(99n, 1)).toThrow(RangeError);
    log.close();
  });

  it('rejects transactions that do not end with a commit frame or have bad pages', () => {
    const { log } = withLog();
    expect(() => log.appendTransaction([])).toThrow(RangeError);
    expect(() => log.appendTransaction(txn([1, 2], 0))).toThrow(RangeError);
    expect(() => log.appendTransaction([{ pageNo: 1, sizeAfter: 1, page: Buffer.alloc(10) }])).toThrow(RangeError);
    expect(log.frameCount).toBe(0n);
    log.close();
  });

  it('cuts a torn tail on open and keeps appending after it', () => {
    const { path, log } = withLog();
    log.appendTransaction(txn([1, 2], 2));
    const sum = log.lastChecksum;
    log.close();
    // An uncommitted frame (written, header not yet updated) plus half of another one.
    const extra = encodeFrame({ frameNo: 2n, checksum: 1n, pageNo: 3, sizeAfter: 3, page: randomBytes(PAGE_SIZE) });
    writeFileSync(path, Buffer.concat([readFileSync(path), extra, extra.subarray(0, 1000)]));

    const ro = WallogFile.open(path, { readOnly: true });
    expect(ro.discardedTailBytes).toBe(FRAME_SIZE + 1000);
    expect(ro.frameCount).toBe(2n);
    ro.close();
    expect(statSync(path).size).toBe(WALLOG_HEADER_SIZE + 3 * FRAME_SIZE + 1000);

    const rw = WallogFile.open(path);
    expect(rw.discardedTailBytes).toBe(FRAME_SIZE + 1000);
    expect(statSync(path).size).toBe(WALLOG_HEADER_SIZE + 2 * FRAME_SIZE);
    expect(rw.lastChecksum).toBe(sum);
    rw.appendTransaction(txn([3], 3));
    rw.close();
    const reopened = WallogFile.open(path);
    expect(reopened.frameCount).toBe(3n);
    reopened.close();
  });

  it('reports a corrupt frame with a typed error instead of serving it', () => {
    const { path, log } = withLog();
    log.appendTransaction(txn([1, 2, 3], 3));
    log.appendTransaction(txn([4], 4));
    log.close();
    const bytes = readFileSync(path);
    const at = WALLOG_HEADER_SIZE + 2 * FRAME_SIZE + 24 + 100;
    bytes[at] = (bytes[at] ?? 0) ^ 0x40;
    writeFileSync(path, bytes);
    expect(corruptCode(() => WallogFile.open(path))).toEqual({ reason: 'checksum_mismatch', frameNo: 2n });
  });

  it('detects corruption that happens after opening when frames are read', () => {
    const { path, log } = withLog();
    log.appendTransaction(txn([1, 2, 3], 3));
    const bytes = readFileSync(path);
    bytes.writeBigUInt64LE(9n, WALLOG_HEADER_SIZE + FRAME_SIZE); // frame_no of the second frame
    writeFileSync(path, bytes);
    expect(log.readFrames(0n, 1)).toHaveLength(1);
    expect(corruptCode(() => log.readFrames(0n, 3))).toEqual({ reason: 'frame_no_mismatch', frameNo: 1n });
    log.close();
  });

  it('rejects bad headers, missing frames and an uncommitted last frame', () => {
    const { path, log } = withLog();
    log.appendTransaction(txn([1, 2], 2));
    log.close();
    const good = readFileSync(path);

    writeFileSync(path, good.subarray(0, 40));
    expect(corruptCode(() => WallogFile.open(path)).reason).toBe('truncated_header');

    const badMagic = Buffer.from(good);
    badMagic[0] = 0x58;
    writeFileSync(path, badMagic);
    expect(corruptCode(() => WallogFile.open(path)).reason).toBe('bad_magic');

    const v1 = Buffer.from(good);
    v1.writeUInt32LE(1, 48);
    writeFileSync(path, v1);
    expect(corruptCode(() => WallogFile.open(path)).reason).toBe('unsupported_version');

    const ps = Buffer.from(good);
    ps.writeInt32LE(8192, 52);
    writeFileSync(path, ps);
    expect(corruptCode(() => WallogFile.open(path)).reason).toBe('bad_page_size');

    writeFileSync(path, good);
    truncateSync(path, WALLOG_HEADER_SIZE + FRAME_SIZE + 10);
    expect(corruptCode(() => WallogFile.open(path)).reason).toBe('missing_frames');

    const oneFrame = Buffer.from(good.subarray(0, WALLOG_HEADER_SIZE + FRAME_SIZE));
    oneFrame.writeBigUInt64LE(1n, 40);
    writeFileSync(path, oneFrame);
    expect(corruptCode(() => WallogFile.open(path))).toEqual({ reason: 'uncommitted_tail', frameNo: 0n });
  });

  it('refuses to overwrite an existing file', () => {
    const { path, log } = withLog();
    log.close();
    expect(() => WallogFile.create(path, { logId: newLogId(), startFrameNo: 0n, startChecksum: 0n })).toThrow(/EEXIST/);
  });
});
