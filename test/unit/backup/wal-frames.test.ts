import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompress, decompressStream } from '../../../src/backup/format/codec.js';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import { batchKey, type Compression } from '../../../src/backup/format/layout.js';
import { ChecksumChain, encodeBatchFrames, parseBatchFrames, scanBatchFrames, type BatchFrame } from '../../../src/backup/format/wal-frames.js';
import { encodeWalHeader, parseWalHeader, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader } from '../../../src/engine/wal/sqlite-wal-format.js';
import { requireSqliteCli, walOfKilledCli } from '../../helpers/sqlite-cli.js';
import { flipBit, makeTempDir, runTool } from './format-fixtures.js';

const DB = 'ns-test:default';
const GEN = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
const PAGE_SIZE = 4096;
const FRAME_SIZE = WAL_FRAME_HEADER_SIZE + PAGE_SIZE;

/** Several transactions, some spanning many pages (overflow blobs, a bulk insert), then deletes and an index. */
const SQL = `
PRAGMA page_size=${PAGE_SIZE};
PRAGMA journal_mode=WAL;
PRAGMA wal_autocheckpoint=0;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
INSERT INTO t(v) VALUES (randomblob(100));
BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) INSERT INTO t(v) SELECT randomblob(3000) FROM n; COMMIT;
INSERT INTO t(v) VALUES (randomblob(50000));
UPDATE t SET v = randomblob(10) WHERE id % 3 = 0;
CREATE INDEX t_v ON t(v);
DELETE FROM t WHERE id > 15;
`;

/** A WAL as SQLite wrote it: the CLI ran SQL on a fresh WAL database and was killed with SIGKILL. */
function realWal(dir: string): Promise<Buffer> {
  return walOfKilledCli(join(dir, 'test.db'), SQL);
}

let tmp: { dir: string; remove: () => void };
let wal: Buffer;
let header: WalHeader;
let frameCount: number;

beforeAll(async () => {
  await requireSqliteCli();
  tmp = makeTempDir('libsqlctl-walframes-');
  wal = await realWal(tmp.dir);
  const parsed = parseWalHeader(wal);
  if (parsed === null) throw new Error('the sqlite3 CLI left no valid WAL header');
  header = parsed;
  frameCount = (wal.length - WAL_HEADER_SIZE) / FRAME_SIZE;
});
afterAll(() => tmp.remove());

/** The WAL's frames cut into batches of `size` frames: [key, payload] pairs. */
function batches(size: number, c: Compression = 'raw'): { key: string; first: number; payload: Buffer }[] {
  const out = [];
  for (let first = 1; first <= frameCount; first += size) {
    const last = Math.min(frameCount, first + size - 1);
    const payload = wal.subarray(WAL_HEADER_SIZE + (first - 1) * FRAME_SIZE, WAL_HEADER_SIZE + last * FRAME_SIZE);
    out.push({ key: batchKey(DB, GEN, first, last, 1_700_000_000 + first, c), first, payload });
  }
  return out;
}

function seed(): [number, number] {
  return [wal.readUInt32BE(24), wal.readUInt32BE(28)];
}

function verifyAll(list: { key: string; first: number; payload: Buffer }[], chain: ChecksumChain): BatchFrame[] {
  const all: BatchFrame[] = [];
  for (const { key, first, payload } of list) {
    const { frames, truncatedHeader } = parseBatchFrames(payload, PAGE_SIZE, key);
    expect(truncatedHeader).toBe(false);
    chain.verifyBatch(frames, key, first);
    all.push(...frames);
  }
  return all;
}

function corruptMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CorruptBackupError);
    expect((e as CorruptBackupError).code).toBe('BACKUP_CORRUPT');
    return (e as Error).message;
  }
  throw new Error('expected a CorruptBackupError');
}

describe('batch payloads of a real SQLite WAL', () => {
  it('is a WAL with several transactions, some of many pages', () => {
    expect(wal.length).toBe(WAL_HEADER_SIZE + frameCount * FRAME_SIZE);
    expect(header.pageSize).toBe(PAGE_SIZE);
    expect(header.checksum).toEqual(seed());
    const frames = parseBatchFrames(wal.subarray(WAL_HEADER_SIZE), PAGE_SIZE, 'whole').frames;
    const commits = frames.map((f, i) => (f.sizeAfter !== 0 ? i : -1)).filter((i) => i >= 0);
    expect(commits.length).toBeGreaterThanOrEqual(6);
    expect(Math.max(...commits.map((c, i) => c - (commits[i - 1] ?? -1)))).toBeGreaterThan(10);
    for (const f of frames) expect([f.salt1, f.salt2]).toEqual([header.salt1, header.salt2]);
  });

  it.each([1, 3, 7, 1000])('verifies the checksum chain across batches of %i frames', (size) => {
    for (const order of ['detect', header.bigEndian ? 'be' : 'le'] as const) {
      const chain = new ChecksumChain(seed(), order);
      const frames = verifyAll(batches(size), chain);
      expect(frames).toHaveLength(frameCount);
      expect(chain.bigEndian).toBe(header.bigEndian);
      expect(chain.nextFrame).toBe(frameCount + 1);
      expect(chain.checksum).toEqual(frames.at(-1)!.checksum);
    }
  });

  it('rebuilds the frames byte for byte', () => {
    let before: [number, number] = seed();
    const rebuilt: Buffer[] = [];
    for (const { key, payload } of batches(5)) {
      const frames = parseBatchFrames(payload, PAGE_SIZE, key).frames;
      const { payload: again, checksumAfter } = encodeBatchFrames(frames, { salt1: header.salt1, salt2: header.salt2, bigEndian: header.bigEndian, checksumBefore: before });
      expect(again.equals(payload)).toBe(true);
      before = checksumAfter;
      rebuilt.push(again);
    }
    expect(Buffer.concat(rebuilt).equals(wal.subarray(WAL_HEADER_SIZE))).toBe(true);
    expect(encodeBatchFrames([], { salt1: 1, salt2: 2, bigEndian: false, checksumBefore: [5, 6] })).toEqual({ payload: Buffer.alloc(0), checksumAfter: [5, 6] });
  });

  it('detects the other byte order and keeps it', () => {
    const other = !header.bigEndian;
    const frames = parseBatchFrames(wal.subarray(WAL_HEADER_SIZE), PAGE_SIZE, 'whole').frames;
    const otherSeed = encodeWalHeader({ ...header, bigEndian: other }).checksum;
    const { payload } = encodeBatchFrames(frames, { salt1: header.salt1, salt2: header.salt2, bigEndian: other, checksumBefore: otherSeed });
    const key = batchKey(DB, GEN, 1, frameCount, 1, 'raw');
    const chain = new ChecksumChain(otherSeed, 'detect');
    chain.verifyBatch(parseBatchFrames(payload, PAGE_SIZE, key).frames, key, 1);
    expect(chain.bigEndian).toBe(other);
    const wrong = new ChecksumChain(otherSeed, header.bigEndian ? 'be' : 'le');
    expect(corruptMessage(() => wrong.verifyBatch(parseBatchFrames(payload, PAGE_SIZE, key).frames, key, 1))).toContain('frame 1 ');
  });

  it('names the batch and the frame whose checksum breaks', () => {
    const list = batches(4);
    const target = list[2]!; // frames 9..12
    for (const offset of [WAL_FRAME_HEADER_SIZE + 100 + FRAME_SIZE, FRAME_SIZE + 4, FRAME_SIZE + 17]) {
      const damaged = list.map((b) => (b === target ? { ...b, payload: flipBit(b.payload, offset, 3) } : b));
      const message = corruptMessage(() => verifyAll(damaged, new ChecksumChain(seed(), 'detect')));
      expect(message).toContain(target.key);
      expect(message).toContain('frame 10 ');
    }
    // The first frame of a generation under detection: no byte order matches.
    const first = list[0]!;
    const message = corruptMessage(() => verifyAll([{ ...first, payload: flipBit(first.payload, 3000) }], new ChecksumChain(seed(), 'detect')));
    expect(message).toMatch(/frame 1 .*either byte order/);
    expect(() => new ChecksumChain(seed()).verifyBatch([], list[1]!.key, 5)).toThrow(RangeError);
  });

  it('verifies a payload in place (in C) exactly as frame by frame: the same chain, the same errors', () => {
    for (const size of [1, 3, 1000]) {
      for (const order of ['detect', header.bigEndian ? 'be' : 'le'] as const) {
        const byFrame = new ChecksumChain(seed(), order);
        const inPlace = new ChecksumChain(seed(), order);
        for (const { key, first, payload } of batches(size)) {
          byFrame.verifyBatch(parseBatchFrames(payload, PAGE_SIZE, key).frames, key, first);
          inPlace.verifyPayload(payload, scanBatchFrames(payload, PAGE_SIZE, key).count, PAGE_SIZE, key, first);
          expect(inPlace.checksum).toEqual(byFrame.checksum);
          expect(inPlace.nextFrame).toBe(byFrame.nextFrame);
          expect(inPlace.bigEndian).toBe(byFrame.bigEndian);
        }
      }
    }
    // A damaged frame in the middle of a batch, or its first, under detection or not.
    const list = batches(6);
    for (const [offset, order] of [[3 * FRAME_SIZE + 900, 'detect'], [FRAME_SIZE + 2, 'detect'], [17, 'detect'], [5 * FRAME_SIZE + 4000, header.bigEndian ? 'be' : 'le']] as const) {
      const run = (verify: (c: ChecksumChain, b: { key: string; first: number; payload: Buffer }) => void): string =>
        corruptMessage(() => {
          const chain = new ChecksumChain(seed(), order);
          for (const [i, b] of list.entries()) verify(chain, i === 1 ? { ...b, payload: flipBit(b.payload, offset) } : b);
        });
      const expected = run((c, b) => c.verifyBatch(parseBatchFrames(b.payload, PAGE_SIZE, b.key).frames, b.key, b.first));
      expect(expected).toContain(list[1]!.key);
      expect(run((c, b) => c.verifyPayload(b.payload, scanBatchFrames(b.payload, PAGE_SIZE, b.key).count, PAGE_SIZE, b.key, b.first))).toBe(expected);
    }
    expect(() => new ChecksumChain(seed()).verifyPayload(Buffer.alloc(0), 0, PAGE_SIZE, list[1]!.key, 5)).toThrow(RangeError);
  });

  it('applies the end-of-data rules of a batch', () => {
    const { key, payload } = batches(3)[1]!;
    const whole = parseBatchFrames(payload, PAGE_SIZE, key);
    expect(whole.frames).toHaveLength(3);
    // Data ending inside a frame header ends the batch.
    for (const extra of [1, 10, 23]) {
      const cut = parseBatchFrames(payload.subarray(0, 2 * FRAME_SIZE + extra), PAGE_SIZE, key);
      expect(cut.frames).toHaveLength(2);
      expect(cut.truncatedHeader).toBe(true);
    }
    expect(parseBatchFrames(payload.subarray(0, 2 * FRAME_SIZE), PAGE_SIZE, key)).toMatchObject({ truncatedHeader: false });
    expect(parseBatchFrames(Buffer.alloc(0), PAGE_SIZE, key)).toEqual({ frames: [], truncatedHeader: false });
    // Inside a page it is damage, reported with the frame number from the key.
    for (const extra of [24, 25, FRAME_SIZE - 1]) {
      const message = corruptMessage(() => parseBatchFrames(payload.subarray(0, 2 * FRAME_SIZE + extra), PAGE_SIZE, key));
      expect(message).toContain(key);
      expect(message).toContain('frame 6 ');
    }
    const zeroPage = Buffer.from(payload);
    zeroPage.writeUInt32BE(0, FRAME_SIZE);
    expect(corruptMessage(() => parseBatchFrames(zeroPage, PAGE_SIZE, key))).toContain('page number 0');
  });

  it.each(['gz', 'zstd'] as const)('reads batches compressed by the %s CLI', async (c) => {
    const cmd = c === 'gz' ? 'gzip' : 'zstd';
    const chainA = new ChecksumChain(seed(), 'detect');
    const chainB = new ChecksumChain(seed(), 'detect');
    for (const { key, first, payload } of batches(6, c)) {
      const file = join(tmp.dir, `batch-${first}`);
      writeFileSync(file, payload);
      const packed = await runTool(cmd, ['-q', '-c', file]);
      const viaBuffer = await decompress(c, packed, key);
      const viaStream = Buffer.concat(await Readable.from([packed]).pipe(decompressStream(c, key)).toArray() as Buffer[]);
      expect(viaStream.equals(viaBuffer)).toBe(true);
      chainA.verifyBatch(parseBatchFrames(viaBuffer, PAGE_SIZE, key).frames, key, first);
      chainB.verifyBatch(parseBatchFrames(viaStream, PAGE_SIZE, key).frames, key, first);
    }
    expect(chainA.nextFrame).toBe(frameCount + 1);
    expect(chainB.checksum).toEqual(chainA.checksum);
  });
});
