/** What restore and verify do with damaged or incomplete backups: a clear error naming the object, and nothing left behind. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import { generationSeconds } from '../../../src/backup/format/generation-id.js';
import { snapshotKey, tombstoneKey } from '../../../src/backup/format/layout.js';
import { encodeSnapshotMetadata, encodeTombstone } from '../../../src/backup/format/objects.js';
import { BackupGapError } from '../../../src/backup/restore/errors.js';
import { restoreDatabase } from '../../../src/backup/restore/restore.js';
import { verifyBackup } from '../../../src/backup/restore/verify.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { LibsqlctlError } from '../../../src/errors.js';
import { cliCount, requireSqliteCli } from '../../helpers/sqlite-cli.js';
import { flipBit, makeTempDir } from './format-fixtures.js';
import { captureWal, type CapturedWal, compressWithCli, genAt, insertSql, makeDb, PAGE_SIZE, putDep, putDurable, putSnapshot, putWal } from './restore-fixtures.js';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const FRAMES = 4;
let tmp: { dir: string; remove: () => void };
let storage: LocalStorage;
let snap: Buffer;
let wal: CapturedWal;
let dbNo = 0;

beforeAll(async () => {
  await requireSqliteCli();
  tmp = makeTempDir('libsqlctl-restore-fail-');
  storage = new LocalStorage({ dir: tmp.dir, bucket: 'store' });
  await storage.ensureBucket();
  const work = path.join(tmp.dir, 'work.db');
  await makeDb(work, `CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); ${insertSql(1, 2)}`);
  snap = fs.readFileSync(work);
  wal = await captureWal(work, insertSql(3, 10));
});
afterAll(async () => {
  await storage?.close();
  tmp?.remove();
});

/** A fresh database name with one generation: our snapshot, the WAL in gz batches, a durable marker. */
async function backup(opts: { skip?: number[]; tamper?: (i: number, p: Buffer) => Buffer; durable?: boolean; gen?: string } = {}): Promise<{ db: string; gen: string; batches: { key: string; first: number; last: number }[] }> {
  const db = `ns-f:db${++dbNo}`;
  const gen = opts.gen ?? genAt(T0);
  await putSnapshot(storage, db, gen, snap, 'gz');
  const batches = await putWal(storage, db, gen, wal, { frames: FRAMES, compression: 'gz', commitMs: (f) => T0 + f, ...(opts.skip ? { skip: opts.skip } : {}), ...(opts.tamper ? { tamper: opts.tamper } : {}) });
  if (opts.durable !== false) await putDurable(storage, db, gen, wal.count);
  return { db, gen, batches };
}

function outFile(): string {
  return path.join(fs.mkdtempSync(path.join(tmp.dir, 'out-')), 'data');
}

async function failure(p: Promise<unknown>): Promise<LibsqlctlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof LibsqlctlError)) throw new Error(`expected a LibsqlctlError, got ${String(err)}`);
  return err;
}

/** The restore failed and its directory holds nothing. */
function nothingLeft(out: string): void {
  expect(fs.readdirSync(path.dirname(out))).toEqual([]);
}

/** Rows the backup had after its transactions up to (and including) commit frame `frame`. */
function rowsUpTo(frame: number): number {
  return 2 + wal.commits.filter((c) => c <= frame).length;
}

describe('damaged objects', () => {
  it('a page changed in a batch breaks the checksum chain: the error names the object and the frame', async () => {
    const { db, batches } = await backup({ tamper: (i, p) => (i === 1 ? flipBit(p, 24 + 100) : p) });
    const out = outFile();
    const err = await failure(restoreDatabase({ storage, db, out }));
    expect(err).toBeInstanceOf(CorruptBackupError);
    expect(err.message).toContain(batches[1]!.key);
    expect(err.message).toMatch(new RegExp(`frame ${batches[1]!.first} \\(page \\d+\\): checksum does not chain`));
    nothingLeft(out);
  });

  it('a truncated compressed batch and a batch with fewer frames than its name says', async () => {
    const cut = await backup();
    const key = cut.batches[2]!.key;
    const obj = await storage.get(key);
    await storage.put(key, obj.body.subarray(0, obj.body.length - 20), { metadata: obj.metadata });
    const out = outFile();
    expect((await failure(restoreDatabase({ storage, db: cut.db, out }))).message).toMatch(new RegExp(`${key.replace(/[.]/g, '\\.')} is corrupt: gzip data is damaged or truncated`));
    nothingLeft(out);

    const short = await backup({ tamper: (i, p) => (i === 0 ? p.subarray(0, p.length - (24 + PAGE_SIZE)) : p) });
    const err = await failure(restoreDatabase({ storage, db: short.db, out }));
    expect(err.message).toContain(`holds ${FRAMES - 1} frames, its name says ${FRAMES}`);
    nothingLeft(out);
  });

  it('a snapshot whose bytes differ from its digest, truncated gzip, and a truncated sqld-made raw snapshot', async () => {
    const { db, gen } = await backup();
    const key = snapshotKey(db, gen, 'gz');
    const metadata = encodeSnapshotMetadata({ digest: { kind: 'crc64', hex: 'a'.repeat(16) }, pageCount: snap.length / PAGE_SIZE });
    await storage.put(key, await compressWithCli('gz', snap), { metadata });
    const out = outFile();
    expect((await failure(restoreDatabase({ storage, db, out }))).message).toMatch(/db\.gz is corrupt: the crc64 of its \d+ uncompressed bytes is [0-9a-f]{16}, its metadata says a{16}/);
    nothingLeft(out);

    const gz = await compressWithCli('gz', snap);
    await storage.put(key, gz.subarray(0, gz.length - 12), { metadata });
    expect((await failure(restoreDatabase({ storage, db, out }))).message).toContain('gzip data is damaged or truncated');
    nothingLeft(out);

    await storage.delete([key]);
    const raw = snapshotKey(db, gen, 'raw');
    await storage.put(raw, snap.subarray(0, snap.length - PAGE_SIZE));
    expect((await failure(restoreDatabase({ storage, db, out }))).message).toMatch(/db\.raw is corrupt: holds \d+ pages, its database header says \d+ \(truncated\?\)/);
    nothingLeft(out);
  });
});

describe('gaps', () => {
  it('a missing middle batch is refused; with allowGaps the state before it is restored and reported', async () => {
    const { db, batches } = await backup({ skip: [1] });
    const out = outFile();
    const err = await failure(restoreDatabase({ storage, db, out }));
    expect(err).toBeInstanceOf(BackupGapError);
    expect(err.code).toBe('BACKUP_GAP');
    expect(err.message).toContain(`frames ${batches[1]!.first}..${batches[1]!.last} are missing (after ${batches[0]!.key}, before ${batches[2]!.key})`);
    nothingLeft(out);

    const report = await restoreDatabase({ storage, db, out, allowGaps: true });
    expect(report.gaps).toHaveLength(1);
    expect(report.stoppedAt).toMatchObject({ reason: 'gap' });
    expect(report.checks.find((c) => c.name === 'contiguous frames')?.status).toBe('failed');
    expect(await cliCount(out, 't')).toBe(rowsUpTo(batches[0]!.last));
  });

  it('a gap in an older generation of the chain stops the whole restore there', async () => {
    const { db, gen, batches } = await backup({ skip: [2] });
    const child = genAt(T0 + 60_000);
    await putDep(storage, db, child, gen);
    await putWal(storage, db, child, wal, { frames: 100 });
    const out = outFile();
    const err = await failure(restoreDatabase({ storage, db, out }));
    expect(err.message).toContain(`generation ${gen}: frames ${batches[2]!.first}..`);
    const report = await restoreDatabase({ storage, db, out, allowGaps: true });
    expect(report.chain.map((g) => g.generation)).toEqual([gen]);
    expect(report.laterGaps).toEqual([]);
    expect(await cliCount(out, 't')).toBe(rowsUpTo(batches[1]!.last));
  });
});

describe('verify', () => {
  it('passes a complete backup of ours with every check made, and removes its temp files', async () => {
    const { db } = await backup();
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'verify-'));
    const report = await verifyBackup({ storage, db, tmpDir: dir });
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => `${c.name}:${c.status}`)).toEqual(['snapshot digest:ok', 'checksum chain:ok', 'contiguous frames:ok', 'durable marker:ok', 'integrity check:ok']);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('fails when the last batch is lost and the durable marker says it existed; without a marker it cannot tell', async () => {
    const last = Math.ceil(wal.count / FRAMES) - 1;
    const { db, batches } = await backup({ skip: [last] });
    const report = await verifyBackup({ storage, db });
    expect(report.ok).toBe(false);
    expect(report.checks).toEqual([{ name: 'durable marker', status: 'failed', detail: expect.stringContaining(`frames ${batches[last]!.first}..${wal.count} are missing`) as unknown }]);
    expect((await failure(restoreDatabase({ storage, db, out: outFile() }))).code).toBe('BACKUP_GAP');

    const unmarked = await backup({ skip: [last], durable: false });
    const blind = await verifyBackup({ storage, db: unmarked.db });
    expect(blind.ok).toBe(true);
    expect(blind.checks.find((c) => c.name === 'durable marker')).toMatchObject({ status: 'skipped' });
  });

  it('fails on a corrupt batch, naming it', async () => {
    const { db, batches } = await backup({ tamper: (i, p) => (i === 2 ? flipBit(p, 24 + 7) : p) });
    const report = await verifyBackup({ storage, db });
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ name: 'checksum chain', status: 'failed' });
    expect(report.problems[0]).toContain(batches[2]!.key);
  });
});

describe('refusals', () => {
  it('a tombstoned generation, an unknown one, and a .dep to nowhere', async () => {
    const { db, gen } = await backup();
    await storage.put(tombstoneKey(db), encodeTombstone(generationSeconds(gen)));
    const out = outFile();
    expect((await failure(restoreDatabase({ storage, db, out }))).code).toBe('BACKUP_TOMBSTONED');
    expect((await failure(verifyBackup({ storage, db }))).code).toBe('BACKUP_TOMBSTONED');
    await storage.put(tombstoneKey(db), encodeTombstone(generationSeconds(gen) - 1));
    await restoreDatabase({ storage, db, out });

    expect((await failure(restoreDatabase({ storage, db, out: outFile(), generation: genAt(T0 - 5000) }))).code).toBe('BACKUP_NOT_FOUND');
    expect((await failure(restoreDatabase({ storage, db: 'ns-f:none', out: outFile() }))).code).toBe('BACKUP_NOT_FOUND');

    const orphan = 'ns-f:orphan';
    const child = genAt(T0);
    await putDep(storage, orphan, child, genAt(T0 - 60_000));
    await putWal(storage, orphan, child, wal, { frames: 100 });
    const err = await failure(restoreDatabase({ storage, db: orphan, out: outFile() }));
    expect(err.code).toBe('BACKUP_UNUSABLE');
    expect(err.message).toContain('which has no objects');
  });
});
