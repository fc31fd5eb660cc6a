/**
 * The capture's native read-verify-append (WalReader.fillFrames into WallogFile.appendFilled) against
 * the JavaScript path (readCommitted, then appendTransaction): over the same WAL both must take the
 * same frames, leave the reader in the same state and write byte-identical `wallog` files, also when
 * the WAL is torn or corrupt.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeChecksums } from '../../../src/engine/wal/native-checksums.js';
import { WalReader, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE } from '../../../src/engine/wal/sqlite-wal.js';
import { WallogFile } from '../../../src/engine/wal/wallog-file.js';
import { openWalDb, readWal, tempDir, writeRows } from './helpers.js';

const FRAME = WAL_FRAME_HEADER_SIZE + 4096;
const NO_FAULT = (): void => {};

/** One capture as the JavaScript path does it: returns the frames appended. */
function captureJs(reader: WalReader, log: WallogFile): number {
  const { transactions } = reader.readCommitted({ copyPages: false });
  if (transactions.length === 0) return 0;
  const frames = transactions.flatMap((t) => t.frames);
  log.appendTransaction(frames, { fsync: false, deferHeader: true });
  return frames.length;
}

/** One capture as FrameCapture does it with the native path: counts what the native path took. */
function captureFilled(reader: WalReader, log: WallogFile, stats: { native: number }): void {
  if (reader.canFill) {
    for (;;) {
      const n = log.appendFilled(reader, NO_FAULT);
      stats.native += n;
      if (!reader.fillMore) {
        if (n > 0) return;
        break;
      }
      if (n === 0) break;
    }
  }
  captureJs(reader, log);
}

interface Pair {
  js: { reader: WalReader; log: WallogFile; path: string };
  native: { reader: WalReader; log: WallogFile; path: string };
  stats: { native: number };
  capture(): void;
  /** Closes both logs and expects the same bytes and the same reader state. */
  finish(): Buffer;
}

function pair(dir: string, walPath: string): Pair {
  const logId = randomUUID();
  const tag = randomUUID();
  const side = (name: string) => {
    const path = join(dir, `${name}-${tag}`);
    return { reader: new WalReader(walPath), log: WallogFile.create(path, { logId, startFrameNo: 0n, startChecksum: 0n }), path };
  };
  const js = side('wallog-js');
  const native = side('wallog-native');
  const stats = { native: 0 };
  return {
    js,
    native,
    stats,
    capture() {
      captureJs(js.reader, js.log);
      captureFilled(native.reader, native.log, stats);
      expect(native.reader.state).toEqual(js.reader.state);
      expect(native.log.nextFrameNo).toBe(js.log.nextFrameNo);
      expect(native.log.lastChecksum).toBe(js.log.lastChecksum);
    },
    finish() {
      for (const s of [js, native]) {
        s.log.close();
        s.reader.close();
      }
      const a = readFileSync(js.path);
      const b = readFileSync(native.path);
      expect(b.length).toBe(a.length);
      expect(b.equals(a)).toBe(true);
      // And the native path's file opens as a valid log.
      WallogFile.open(native.path, { readOnly: true }).close();
      return a;
    },
  };
}

/** Frame indexes (0-based) of the commit frames of a WAL image with 4096-byte pages. */
function commitFrames(wal: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; WAL_HEADER_SIZE + (i + 1) * FRAME <= wal.length; i++) {
    if (wal.readUInt32BE(WAL_HEADER_SIZE + i * FRAME + 4) !== 0) out.push(i);
  }
  return out;
}

const frameAt = (i: number): number => WAL_HEADER_SIZE + i * FRAME;

describe.skipIf(nativeChecksums?.walCapture === undefined)('native capture (walCapture) against the JavaScript path', () => {
  it('writes the same wallog bytes over commits of every size, several per capture, a WAL restart and a transaction bigger than the buffer', () => {
    const dir = tempDir();
    const dbPath = join(dir, 'db');
    const db = openWalDb(dbPath);
    const p = pair(dir, `${dbPath}-wal`);
    writeRows(db, 1, 1, 10);
    p.capture(); // the generation becomes known (readCommitted on both sides)
    const insert = db.prepare('INSERT INTO t (v, b) VALUES (?, ?)');
    for (let i = 0; i < 200; i++) {
      insert.run(`small-${i}`, Buffer.alloc(i % 50, i));
      p.capture();
    }
    for (let i = 0; i < 20; i++) {
      writeRows(db, 1 + (i % 4), 1 + (i % 7), 1500);
      p.capture();
    }
    // Enough frames between two captures to fill the write-behind buffer more than once.
    writeRows(db, 80, 12, 1500);
    p.capture();
    // One transaction larger than the buffer (the JavaScript path takes it).
    writeRows(db, 1, 400, 3000);
    p.capture();
    writeRows(db, 3, 2, 1500);
    p.capture();
    // A checkpoint and a restart of the WAL: the new generation is read by readCommitted.
    db.pragma('wal_checkpoint(RESTART)');
    writeRows(db, 2, 2, 1500);
    p.capture();
    for (let i = 0; i < 50; i++) {
      insert.run(`after-${i}`, Buffer.alloc(10, i));
      p.capture();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    writeRows(db, 2, 3, 1500);
    p.capture();
    insert.run('last', Buffer.alloc(1));
    p.capture();
    db.close();
    const bytes = p.finish();
    expect(p.stats.native).toBeGreaterThan(250);
    expect(bytes.length).toBeGreaterThan(1000 * 4120);
  });

  /** A WAL image of T1 (the table and a row, captured first) and the multi-frame T2 and T3. */
  function corruptFixture(): { dir: string; wal: Buffer; commits: number[] } {
    const dir = tempDir();
    const dbPath = join(dir, 'db');
    const db = openWalDb(dbPath);
    writeRows(db, 1, 1, 10); // CREATE TABLE and one row: two commits, both of T1 here
    writeRows(db, 2, 4, 1500);
    const wal = readWal(dbPath);
    db.close();
    const all = commitFrames(wal);
    expect(all.length).toBe(4);
    const commits = all.slice(1);
    expect(commits[1]! - commits[0]!).toBeGreaterThan(1); // T2 has more than one frame
    expect(commits[2]! - commits[1]!).toBeGreaterThan(1); // T3 has more than one frame
    return { dir, wal, commits };
  }

  /** Captures T1 from the valid image, then `damaged`, then (optionally) `after`; compares. */
  function compareOn(fx: { dir: string; wal: Buffer; commits: number[] }, damaged: Buffer, after: Buffer | null, expectTaken: number, expectAfter?: number): void {
    const { dir, wal, commits } = fx;
    const walPath = join(dir, `w-${randomUUID()}`);
    writeFileSync(walPath, wal.subarray(0, frameAt(commits[0]! + 1)));
    const p = pair(dir, walPath);
    p.capture();
    const before = p.js.log.nextFrameNo;
    writeFileSync(walPath, damaged);
    p.capture();
    expect(Number(p.js.log.nextFrameNo - before)).toBe(expectTaken);
    expect(p.stats.native).toBe(expectTaken); // taken by the native path
    if (after !== null) {
      writeFileSync(walPath, after);
      p.capture();
      expect(Number(p.js.log.nextFrameNo - before)).toBe(expectAfter);
      expect(p.stats.native).toBe(expectAfter);
    }
    p.finish();
  }

  it('stops at a frame with a bad checksum (whole transactions before it are taken)', () => {
    const fx = corruptFixture();
    const { wal, commits } = fx;
    const bad = Buffer.from(wal);
    bad[frameAt(commits[1]! + 1) + WAL_FRAME_HEADER_SIZE + 100]! ^= 0x40; // a page byte of T3's first frame
    compareOn(fx, bad, wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
  });

  it('stops at a frame with the wrong salt', () => {
    const fx = corruptFixture();
    const { wal, commits } = fx;
    const bad = Buffer.from(wal);
    const at = frameAt(commits[0]! + 2); // T2's second frame
    bad.writeUInt32BE((bad.readUInt32BE(at + 8) + 1) >>> 0, at + 8);
    compareOn(fx, bad, null, 0);
    const bad2 = Buffer.from(wal);
    const at2 = frameAt(commits[1]! + 1);
    bad2.writeUInt32BE((bad2.readUInt32BE(at2 + 12) ^ 1) >>> 0, at2 + 12);
    compareOn(fx, bad2, wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
  });

  it('stops at a frame with page number 0', () => {
    const fx = corruptFixture();
    const { wal, commits } = fx;
    const bad = Buffer.from(wal);
    bad.writeUInt32BE(0, frameAt(commits[2]!)); // T3's commit frame
    compareOn(fx, bad, wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
  });

  it('takes nothing of a partial frame at the end of the file, and the transaction once it is whole', () => {
    const fx = corruptFixture();
    const { wal, commits } = fx;
    for (const cut of [1, WAL_FRAME_HEADER_SIZE - 1, WAL_FRAME_HEADER_SIZE, WAL_FRAME_HEADER_SIZE + 1, FRAME - 1]) {
      compareOn(fx, wal.subarray(0, frameAt(commits[2]!) + cut), wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
      compareOn(fx, wal.subarray(0, frameAt(commits[1]!) + cut), wal, 0, commits[2]! - commits[0]!);
    }
  });

  it('takes nothing of a transaction without its commit frame', () => {
    const fx = corruptFixture();
    const { wal, commits } = fx;
    compareOn(fx, wal.subarray(0, frameAt(commits[2]!)), wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
    // The commit frame replaced by stale bytes of another generation (a frame of a different WAL).
    const stale = Buffer.from(wal);
    stale.fill(0xa5, frameAt(commits[2]!), frameAt(commits[2]! + 1));
    compareOn(fx, stale, wal, commits[1]! - commits[0]!, commits[2]! - commits[0]!);
  });

  it('takes nothing when a log-append fault hits, and the same frames afterwards', () => {
    const { dir, wal, commits } = corruptFixture();
    const walPath = join(dir, 'w-fault');
    writeFileSync(walPath, wal.subarray(0, frameAt(commits[0]! + 1)));
    const p = pair(dir, walPath);
    p.capture();
    writeFileSync(walPath, wal);
    const state = p.native.reader.state;
    const before = p.native.log.nextFrameNo;
    expect(() =>
      p.native.log.appendFilled(p.native.reader, () => {
        throw new Error('fault');
      }),
    ).toThrow('fault');
    expect(p.native.reader.state).toEqual(state);
    expect(p.native.log.nextFrameNo).toBe(before);
    p.capture();
    expect(p.js.log.nextFrameNo).toBe(BigInt(commits[2]! + 1));
    p.finish();
  });

  it('reads nothing past a WAL truncated below the consumed offset (readCommitted notices)', () => {
    const { dir, wal, commits } = corruptFixture();
    const walPath = join(dir, 'w-trunc');
    writeFileSync(walPath, wal);
    const p = pair(dir, walPath);
    p.capture();
    truncateSync(walPath, frameAt(commits[1]! + 1));
    p.capture();
    p.finish();
  });
});
