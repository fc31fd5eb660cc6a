import Database from 'better-sqlite3';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseWalHeader,
  walChecksum,
  WalReader,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  type WalTransaction,
} from '../../../src/engine/wal/sqlite-wal.js';
import { dump, frameCountOf, openWalDb, readWal, rewriteByteOrder, tempDir, writeRows } from './helpers.js';

const FRAME = WAL_FRAME_HEADER_SIZE + 4096;

/** A database with several committed multi-frame transactions; returns its WAL image and dump. */
function fixture(): { dir: string; dbPath: string; wal: Buffer; dbFile: Buffer; dump: string; pageCount: number } {
  const dir = tempDir();
  const dbPath = join(dir, 'db');
  const db = openWalDb(dbPath);
  writeRows(db, 6, 4);
  db.exec('CREATE INDEX t_v ON t (v)');
  db.exec("UPDATE t SET v = v || '!' WHERE id % 2 = 0");
  db.exec('DELETE FROM t WHERE id % 5 = 0');
  const wal = readWal(dbPath);
  const dbFile = readFileSync(dbPath);
  const result = { dir, dbPath, wal, dbFile, dump: dump(db), pageCount: db.pragma('page_count', { simple: true }) as number };
  db.close();
  return result;
}

function readAll(path: string): WalTransaction[] {
  return new WalReader(path).readCommitted().transactions;
}

function writeAt(dir: string, name: string, bytes: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const lastIndex = (t: WalTransaction): number => t.firstFrameIndex + t.frames.length - 1;

describe('WalReader on WAL files written by SQLite', () => {
  it('parses every frame and transaction, ending at the database size', () => {
    const f = fixture();
    const header = parseWalHeader(f.wal);
    expect(header).not.toBeNull();
    expect(header?.pageSize).toBe(4096);
    expect(f.wal.readUInt32BE(0)).toBe(WAL_MAGIC_LE); // native order on this (little-endian) host
    const txns = readAll(writeAt(f.dir, 'copy-wal', f.wal));
    const frames = txns.flatMap((t) => t.frames);
    expect(frames.length).toBe(frameCountOf(f.wal));
    // CREATE TABLE + 6 inserts + CREATE INDEX + UPDATE + DELETE.
    expect(txns.length).toBe(10);
    let next = 1;
    for (const t of txns) {
      expect(t.firstFrameIndex).toBe(next);
      next += t.frames.length;
      expect(t.frames.at(-1)?.sizeAfter).toBe(t.sizeAfter);
      expect(t.frames.slice(0, -1).every((fr) => fr.sizeAfter === 0)).toBe(true);
    }
    expect(txns.at(-1)?.sizeAfter).toBe(f.pageCount);
  });

  it('verifies the header checksum with the exported checksum function', () => {
    const f = fixture();
    const sum = walChecksum(f.wal.subarray(0, 24), false);
    expect(sum).toEqual([f.wal.readUInt32BE(24), f.wal.readUInt32BE(28)]);
    const bad = Buffer.from(f.wal);
    bad[27] = (bad[27] ?? 0) ^ 0xff;
    expect(parseWalHeader(bad)).toBeNull();
    expect(readAll(writeAt(f.dir, 'bad-wal', bad))).toEqual([]);
  });

  it('accepts the big-endian variant, and so does SQLite', () => {
    const f = fixture();
    const be = rewriteByteOrder(f.wal, true);
    expect(be.readUInt32BE(0)).toBe(WAL_MAGIC_BE);
    expect(be.length).toBe(f.wal.length);
    expect(be.subarray(WAL_HEADER_SIZE + 16, WAL_HEADER_SIZE + 24)).not.toEqual(f.wal.subarray(WAL_HEADER_SIZE + 16, WAL_HEADER_SIZE + 24));
    const ours = readAll(writeAt(f.dir, 'be-wal', be));
    const reference = readAll(writeAt(f.dir, 'le-wal', f.wal));
    expect(ours.length).toBe(reference.length);
    // Same transactions; only the running checksums differ (they are computed in the other byte order).
    const strip = (ts: typeof ours) => ts.map(({ checksumBefore: _c, ...t }) => t);
    expect(strip(ours)).toEqual(strip(reference));
    expect(ours[1]!.checksumBefore).not.toEqual(reference[1]!.checksumBefore);
    // Converting back reproduces SQLite's bytes exactly.
    expect(rewriteByteOrder(be, false).equals(f.wal)).toBe(true);

    const copyPath = join(f.dir, 'be.db');
    writeFileSync(copyPath, f.dbFile);
    writeFileSync(`${copyPath}-wal`, be);
    const db = new Database(copyPath);
    try {
      expect(dump(db)).toBe(f.dump);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      db.close();
    }
  });

  it('returns only whole transactions from a torn WAL, and the rest once it is complete', () => {
    const f = fixture();
    const all = readAll(writeAt(f.dir, 'full-wal', f.wal));
    const total = frameCountOf(f.wal);
    const cutFrame = Math.floor(total / 2); // frames 1..cutFrame are whole, the next is torn
    const path = writeAt(f.dir, 'torn-wal', f.wal.subarray(0, WAL_HEADER_SIZE + cutFrame * FRAME + 1000));
    const reader = new WalReader(path);
    const first = reader.readCommitted();
    const expected = all.filter((t) => lastIndex(t) <= cutFrame);
    expect(first.transactions).toEqual(expected);
    expect(expected.length).toBeLessThan(all.length);
    expect(reader.framesConsumed).toBe(expected.reduce((n, t) => n + t.frames.length, 0));

    writeFileSync(path, f.wal);
    const second = reader.readCommitted();
    expect(second.restarted).toBe(false);
    expect([...first.transactions, ...second.transactions]).toEqual(all);
    expect(reader.readCommitted().transactions).toEqual([]);
  });

  it('rejects frames from a corrupt byte onwards', () => {
    const f = fixture();
    const all = readAll(writeAt(f.dir, 'full-wal', f.wal));
    const victim = all[5];
    if (victim === undefined || victim.frames.length < 2) throw new Error('fixture too small');
    const bad = victim.firstFrameIndex + 1; // a frame inside transaction #5
    const corrupt = Buffer.from(f.wal);
    const at = WAL_HEADER_SIZE + (bad - 1) * FRAME + WAL_FRAME_HEADER_SIZE + 777;
    corrupt[at] = (corrupt[at] ?? 0) ^ 0x01;
    const reader = new WalReader(writeAt(f.dir, 'corrupt-wal', corrupt));
    expect(reader.readCommitted().transactions).toEqual(all.slice(0, 5));
    expect(reader.readCommitted().transactions).toEqual([]);

    const badSalt = Buffer.from(f.wal);
    badSalt.writeUInt32BE(badSalt.readUInt32BE(16) + 1, WAL_HEADER_SIZE + (bad - 1) * FRAME + 8);
    expect(readAll(writeAt(f.dir, 'salt-wal', badSalt))).toEqual(all.slice(0, 5));
  });

  it('resumes from a saved state', () => {
    const f = fixture();
    const path = writeAt(f.dir, 'x-wal', f.wal.subarray(0, WAL_HEADER_SIZE + 5 * FRAME));
    const a = new WalReader(path);
    const first = a.readCommitted().transactions;
    writeFileSync(path, f.wal);
    const b = new WalReader(path, JSON.parse(JSON.stringify(a.state)) as typeof a.state);
    const rest = b.readCommitted();
    expect(rest.restarted).toBe(false);
    expect([...first, ...rest.transactions]).toEqual(readAll(writeAt(f.dir, 'y-wal', f.wal)));
  });

  it('does not return uncommitted (spilled) frames of an open transaction', () => {
    const dir = tempDir();
    const dbPath = join(dir, 'db');
    const db = openWalDb(dbPath);
    db.pragma('cache_size = 10');
    writeRows(db, 3, 2);
    const reader = new WalReader(`${dbPath}-wal`);
    const before = reader.readCommitted().transactions;
    expect(before.length).toBe(4);
    db.exec('BEGIN');
    writeRows(db, 1, 200, 3000); // nested db.transaction() becomes a savepoint
    const sizeDuring = statSync(`${dbPath}-wal`).size;
    expect(sizeDuring).toBeGreaterThan(WAL_HEADER_SIZE + reader.framesConsumed * FRAME + 50 * FRAME); // spilled
    expect(copyFileSync(`${dbPath}-wal`, join(dir, 'open-wal'))).toBeUndefined();
    expect(readAll(join(dir, 'open-wal'))).toEqual(before);
    expect(reader.readCommitted().transactions).toEqual([]);
    db.exec('ROLLBACK');
    writeRows(db, 1, 1);
    const after = reader.readCommitted();
    expect(after.restarted).toBe(false);
    expect(after.transactions.length).toBe(1);
    db.close();
  });

  it('detects a WAL restart (RESTART and TRUNCATE checkpoints) and reads the new generation', () => {
    const dir = tempDir();
    const dbPath = join(dir, 'db');
    const db = openWalDb(dbPath);
    const reader = new WalReader(`${dbPath}-wal`);
    writeRows(db, 5, 3);
    const gen1 = reader.readCommitted();
    expect(gen1.transactions.length).toBe(6);
    const salts1 = reader.state.generation;

    db.pragma('wal_checkpoint(RESTART)');
    writeRows(db, 2, 1);
    const gen2 = reader.readCommitted();
    expect(gen2.restarted).toBe(true);
    expect(gen2.transactions.length).toBe(2);
    expect(gen2.transactions[0]?.firstFrameIndex).toBe(1);
    expect(reader.state.generation?.salt1).toBe(((salts1?.salt1 ?? 0) + 1) >>> 0);
    // The old generation's frames still sit after the new ones and must not be picked up.
    expect(statSync(`${dbPath}-wal`).size).toBeGreaterThan(WAL_HEADER_SIZE + reader.framesConsumed * FRAME);
    expect(reader.readCommitted()).toEqual({ transactions: [], restarted: false });

    db.pragma('wal_checkpoint(TRUNCATE)');
    expect(statSync(`${dbPath}-wal`).size).toBe(0);
    expect(reader.readCommitted()).toEqual({ transactions: [], restarted: true });
    writeRows(db, 1, 1);
    const gen3 = reader.readCommitted();
    expect(gen3.transactions.length).toBe(1);

    db.pragma('wal_checkpoint(TRUNCATE)');
    writeRows(db, 3, 1); // no read in between: noticed through the new salts
    const gen4 = reader.readCommitted();
    expect(gen4.restarted).toBe(true);
    expect(gen4.transactions.length).toBe(3);
    db.close();
  });

  it('treats a missing WAL as empty and a shrunken file as a restart', () => {
    const f = fixture();
    const path = join(f.dir, 'gone-wal');
    const reader = new WalReader(path);
    expect(reader.readCommitted()).toEqual({ transactions: [], restarted: false });
    writeFileSync(path, f.wal);
    expect(reader.readCommitted().transactions.length).toBe(10);
    writeFileSync(path, f.wal.subarray(0, WAL_HEADER_SIZE + 3 * FRAME));
    const again = reader.readCommitted();
    expect(again.restarted).toBe(true);
    expect(again.transactions).toEqual(readAll(writeAt(f.dir, 'small-wal', f.wal.subarray(0, WAL_HEADER_SIZE + 3 * FRAME))));
  });
});
