/** Point-in-time restore: to one commit with our commit times, to one batch with sqld's batches; the time flags' grammar. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreDatabase } from '../../../src/backup/restore/restore.js';
import { formatUtc, parseUtcDate, parseUtcTime } from '../../../src/backup/restore/time.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { ConfigError, LibsqlctlError } from '../../../src/errors.js';
import { cliColumn, requireSqliteCli } from '../../helpers/sqlite-cli.js';
import { makeTempDir } from './format-fixtures.js';
import { captureWal, type CapturedWal, genAt, insertSql, makeDb, putDep, putSnapshot, putWal } from './restore-fixtures.js';

/** Generation created a minute before the first commit. */
const C0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const GEN_MS = C0 - 60_000;
let tmp: { dir: string; remove: () => void };
let storage: LocalStorage;
let snap: Buffer;
let wal: CapturedWal;

beforeAll(async () => {
  await requireSqliteCli();
  tmp = makeTempDir('libsqlctl-restore-pitr-');
  storage = new LocalStorage({ dir: tmp.dir, bucket: 'store' });
  await storage.ensureBucket();
  const work = path.join(tmp.dir, 'work.db');
  await makeDb(work, `CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); ${insertSql(1, 2)}`);
  snap = fs.readFileSync(work);
  // Ten transactions inserting k = 3..12, a few pages each.
  wal = await captureWal(work, insertSql(3, 10, 7000));
});
afterAll(async () => {
  await storage?.close();
  tmp?.remove();
});

/** Commit i (0-based) of the WAL happened at C0 + i s. */
const commitMs = (frame: number): number => C0 + wal.commits.indexOf(frame) * 1000;

async function keys(out: string): Promise<number> {
  const rows = await cliColumn(out, 'SELECT max(k) FROM t;');
  return Number(rows[0]);
}

function outFile(): string {
  return path.join(fs.mkdtempSync(path.join(tmp.dir, 'out-')), 'data');
}

describe('with our commit times', () => {
  const db = 'ns-p:commits';
  beforeAll(async () => {
    const gen = genAt(GEN_MS);
    await putSnapshot(storage, db, gen, snap, 'gz');
    // Batches of 5 frames: transactions straddle batches; every key time is the batch's last commit.
    await putWal(storage, db, gen, wal, { frames: 5, compression: 'zstd', commitMs, secs: (_i, last) => Math.floor(commitMs(wal.commits.filter((c) => c <= last).at(-1) ?? wal.commits[0]!) / 1000) });
  });

  it.each([
    { at: C0 + 4500, rows: 7, label: 'between commits 4 and 5' },
    { at: C0 + 3000, rows: 6, label: 'exactly at commit 3 (inclusive)' },
    { at: C0 - 1, rows: 2, label: 'before the first commit: the snapshot' },
    { at: C0 + 60_000, rows: 12, label: 'after the last commit: everything' },
  ])('$label', async ({ at, rows }) => {
    const out = outFile();
    const report = await restoreDatabase({ storage, db, out, time: new Date(at) });
    expect(await keys(out)).toBe(rows);
    expect(report.precision).toBe('commit');
    if (rows > 2) expect(report.lastCommit).toEqual({ at: new Date(C0 + (rows - 3) * 1000), exact: true });
    expect(report.checks.find((c) => c.name === 'commit times')?.status).toBe('ok');
    if (rows < 12) expect(report.stoppedAt?.reason).toBe('time');
  });

  it('no generation at or before the time', async () => {
    const err = await restoreDatabase({ storage, db, out: outFile(), time: new Date(GEN_MS - 2000) }).catch((e: unknown) => e);
    expect((err as LibsqlctlError).code).toBe('BACKUP_NOT_FOUND');
    expect((err as Error).message).toContain(`at or before ${formatUtc(new Date(GEN_MS - 2000))} UTC`);
  });
});

describe('sqld-made batches (no commit times): one batch', () => {
  const db = 'ns-p:batches';
  /** Batch i was flushed at C0/1000 + 10 i seconds. */
  const secs = (i: number): number => Math.floor(C0 / 1000) + 10 * i;
  beforeAll(async () => {
    const gen = genAt(GEN_MS);
    await putSnapshot(storage, db, gen, snap, 'raw', false);
    await putWal(storage, db, gen, wal, { frames: 4, compression: 'gz', secs });
  });

  it('takes whole batches flushed at or before the time, and whole transactions of them', async () => {
    const out = outFile();
    const report = await restoreDatabase({ storage, db, out, time: new Date((secs(2) + 5) * 1000) });
    const lastFrame = 3 * 4;
    expect(await keys(out)).toBe(2 + wal.commits.filter((c) => c <= lastFrame).length);
    expect(report.precision).toBe('batch');
    expect(report.lastCommit?.exact).toBe(false);
    expect(report.checks.find((c) => c.name === 'commit times')?.status).toBe('skipped');
  });

  it('chooses the generation created at or before the time, walking .dep from it', async () => {
    const later = genAt(C0 + 3_600_000);
    await putDep(storage, db, later, (await restoreDatabase({ storage, db, out: outFile() })).generation);
    await putWal(storage, db, later, wal, { frames: 100, secs: () => secs(100) });
    const report = await restoreDatabase({ storage, db, out: outFile(), time: new Date(C0 + 1_800_000) });
    expect(report.chain).toHaveLength(1);
    expect(report.generation).not.toBe(later);
  });
});

describe('time flags', () => {
  it('accepts bottomless-cli UTC times, ISO-8601 with a zone, and dates', () => {
    expect(parseUtcTime('2024-05-01T12:00:00').getTime()).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseUtcTime('2024-05-01T12:00:00.250').getTime()).toBe(Date.UTC(2024, 4, 1, 12, 0, 0, 250));
    expect(parseUtcTime('2024-05-01 14:00:00+02:00').getTime()).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseUtcTime('2024-05-01T12:00:00Z').getTime()).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseUtcTime('2024-05-01').getTime()).toBe(Date.UTC(2024, 4, 1));
    expect(parseUtcDate('2024-02-29', '--older-than').getTime()).toBe(Date.UTC(2024, 1, 29));
    expect(formatUtc(new Date(Date.UTC(2023, 10, 29, 7, 34)))).toBe('2023-11-29 07:34:00');
  });

  it.each(['2023-02-29T00:00:00', '2024-13-01T00:00:00', '2024-05-01T25:00:00', 'yesterday', '1714564800', '2024-05-01T12:00'])('refuses %s', (text) => {
    expect(() => parseUtcTime(text)).toThrow(ConfigError);
  });
});
