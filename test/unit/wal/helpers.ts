/** Shared fixtures for the WAL tests: temp dirs, WAL-mode databases written by real SQLite. */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import {
  encodeWalFrame,
  encodeWalHeader,
  parseWalHeader,
  verifyWalFrame,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalChecksum,
} from '../../../src/engine/wal/sqlite-wal.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the current test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'libsqlctl-wal-'));
  dirs.push(dir);
  return dir;
}

/** Opens (creating) a database in WAL mode with 4096-byte pages and no automatic checkpoints. */
export function openWalDb(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('page_size = 4096');
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  return db;
}

/** Creates the test table and commits `count` transactions of `rowsPerTxn` rows each. */
export function writeRows(db: Database.Database, count: number, rowsPerTxn = 3, blobSize = 1500): void {
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
  const insert = db.prepare('INSERT INTO t (v, b) VALUES (?, ?)');
  const txn = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run(`row-${i}-${randomBytes(4).toString('hex')}`, randomBytes(blobSize));
  });
  for (let i = 0; i < count; i++) txn(rowsPerTxn);
}

/** A logical dump of every table (rows ordered by their first column, blobs in hex). */
export function dump(db: Database.Database): string {
  const tables = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
    name: string;
    sql: string;
  }[];
  const out: unknown[] = [];
  for (const { name, sql } of tables) {
    const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY 1`).raw().all() as unknown[][];
    out.push({ name, sql, rows: rows.map((r) => r.map((v) => (Buffer.isBuffer(v) ? `x'${v.toString('hex')}'` : v))) });
  }
  return JSON.stringify(out);
}

/** Dump and integrity check of a database file (opened, read, closed). */
export function inspectDbFile(path: string): { dump: string; integrity: string } {
  const db = new Database(path);
  try {
    const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? '';
    return { dump: dump(db), integrity };
  } finally {
    db.close();
  }
}

export function readWal(dbPath: string): Buffer {
  return readFileSync(`${dbPath}-wal`);
}

/** Total whole frames in a WAL image with 4096-byte pages. */
export function frameCountOf(wal: Buffer, pageSize = 4096): number {
  return Math.floor((wal.length - WAL_HEADER_SIZE) / (WAL_FRAME_HEADER_SIZE + pageSize));
}

/**
 * Re-encodes a WAL image with the other (or the same) checksum byte order: a new header and new
 * cumulative checksums for the valid frames; stops at the first invalid frame.
 */
export function rewriteByteOrder(wal: Buffer, bigEndian: boolean): Buffer {
  const header = parseWalHeader(wal);
  if (header === null) throw new Error('not a valid WAL');
  const { bytes: newHeader, checksum: seed } = encodeWalHeader({ ...header, bigEndian });
  const parts: Buffer[] = [newHeader];
  const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;
  let oldSum: WalChecksum = header.checksum;
  let newSum: WalChecksum = seed;
  for (let at = WAL_HEADER_SIZE; at + frameSize <= wal.length; at += frameSize) {
    const next = verifyWalFrame(wal, at, header, oldSum);
    if (next === null) break;
    oldSum = next;
    const frame = {
      pageNo: wal.readUInt32BE(at),
      sizeAfter: wal.readUInt32BE(at + 4),
      page: wal.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize),
    };
    const encoded = encodeWalFrame({ ...header, bigEndian }, newSum, frame);
    newSum = encoded.checksum;
    parts.push(encoded.bytes);
  }
  return Buffer.concat(parts);
}
