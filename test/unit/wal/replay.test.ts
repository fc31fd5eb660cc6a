import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newLogId } from '../../../src/engine/wal/log-id.js';
import { replayIntoFile, replayTransactions } from '../../../src/engine/wal/replay.js';
import { buildSnapshot, readSnapshot } from '../../../src/engine/wal/snapshot-file.js';
import { WalReader, type WalTransaction } from '../../../src/engine/wal/sqlite-wal.js';
import { WallogFile } from '../../../src/engine/wal/wallog-file.js';
import { dump, inspectDbFile, openWalDb, tempDir, writeRows } from './helpers.js';

/** A database written in several rounds with checkpoints in between, captured from the start. */
function captured(): { dir: string; dbPath: string; txns: WalTransaction[]; dump: string } {
  const dir = tempDir();
  const dbPath = join(dir, 'db');
  const db = openWalDb(dbPath);
  const reader = new WalReader(`${dbPath}-wal`);
  const txns: WalTransaction[] = [];
  const capture = (): void => {
    txns.push(...reader.readCommitted().transactions);
  };
  writeRows(db, 8, 5);
  capture();
  db.exec('CREATE INDEX t_v ON t (v)');
  capture();
  db.pragma('wal_checkpoint(RESTART)');
  db.exec('DELETE FROM t WHERE id % 3 = 0');
  writeRows(db, 2, 2);
  capture();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('CREATE TABLE u (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID');
  db.exec("INSERT INTO u VALUES ('a', 1), ('b', 2)");
  db.exec('DELETE FROM t WHERE id > 10'); // frees pages
  db.exec('VACUUM'); // shrinks the database: a commit with a smaller size
  capture();
  const result = { dir, dbPath, txns, dump: dump(db) };
  db.close();
  return result;
}

describe('replay', () => {
  it('rebuilds the database from every captured transaction', () => {
    const c = captured();
    const out = join(c.dir, 'replayed.db');
    const res = replayTransactions(out, c.txns);
    expect(res.transactions).toBe(c.txns.length);
    expect(res.framesSkipped).toBe(0);
    expect(statSync(out).size).toBe((res.sizeAfter ?? 0) * 4096);
    const { dump: got, integrity } = inspectDbFile(out);
    expect(integrity).toBe('ok');
    expect(got).toBe(c.dump);
  });

  it('gives byte-identical pages to the checkpointed database', () => {
    const dir = tempDir();
    const dbPath = join(dir, 'db');
    const db = openWalDb(dbPath);
    writeRows(db, 5, 4);
    const txns = new WalReader(`${dbPath}-wal`).readCommitted().transactions;
    db.pragma('wal_checkpoint(TRUNCATE)');
    const out = join(dir, 'replayed.db');
    replayTransactions(out, txns);
    expect(readFileSync(out).equals(readFileSync(dbPath))).toBe(true);
    db.close();
  });

  it('leaves a trailing uncommitted transaction out unless asked', () => {
    const dir = tempDir();
    const page = (n: number): Buffer => Buffer.alloc(4096, n);
    const frames = [
      { pageNo: 1, sizeAfter: 0, page: page(1) },
      { pageNo: 2, sizeAfter: 2, page: page(2) },
      { pageNo: 3, sizeAfter: 0, page: page(3) },
    ];
    const a = join(dir, 'a');
    expect(replayIntoFile(a, frames)).toEqual({ transactions: 1, framesApplied: 2, framesSkipped: 1, sizeAfter: 2 });
    expect(readFileSync(a).equals(Buffer.concat([page(1), page(2)]))).toBe(true);
    const b = join(dir, 'b');
    expect(replayIntoFile(b, frames, { applyUncommitted: true }).framesApplied).toBe(3);
    expect(statSync(b).size).toBe(3 * 4096);
    // Replaying into an existing file overwrites and truncates.
    expect(replayIntoFile(b, [{ pageNo: 1, sizeAfter: 1, page: page(9) }]).sizeAfter).toBe(1);
    expect(readFileSync(b).equals(page(9))).toBe(true);
  });

  it('rebuilds the database through wallog and a snapshot', () => {
    const c = captured();
    const log = WallogFile.create(join(c.dir, 'wallog'), { logId: newLogId(), startFrameNo: 0n, startChecksum: 0n });
    for (const t of c.txns) log.appendTransaction(t.frames);
    log.close();
    const reopened = WallogFile.open(join(c.dir, 'wallog'));

    const viaLog = join(c.dir, 'via-log.db');
    replayIntoFile(viaLog, reopened.iterateFrames());
    expect(inspectDbFile(viaLog)).toEqual({ dump: c.dump, integrity: 'ok' });

    const snapPath = join(c.dir, 'all.snap');
    buildSnapshot({ wallog: reopened }, snapPath);
    reopened.close();
    const snap = readSnapshot(snapPath);
    const frames = [...snap.frames];
    const last = frames.at(-1);
    if (last === undefined) throw new Error('empty snapshot');
    last.sizeAfter = snap.header.sizeAfter; // the commit that ends the snapshot
    const viaSnap = join(c.dir, 'via-snap.db');
    replayIntoFile(viaSnap, frames);
    expect(inspectDbFile(viaSnap)).toEqual({ dump: c.dump, integrity: 'ok' });
  });
});
