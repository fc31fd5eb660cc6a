/** Restore of real SQLite backups: chains, compressions, a start from an empty file, the data-directory target; local directory and S3. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { INTEGRITY_MMAP_BYTES, restoreDatabase, type RestoreProgress } from '../../../src/backup/restore/restore.js';
import { restoreIntoDataDir, namespaceOfDbName } from '../../../src/backup/restore/target.js';
import { verifyBackup } from '../../../src/backup/restore/verify.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { S3Storage } from '../../../src/backup/storage/s3-storage.js';
import type { BackupStorage, ListOptions } from '../../../src/backup/storage/storage.js';
import { DataDirLock } from '../../../src/engine/data-dir-lock.js';
import { DataDirPaths } from '../../../src/engine/data-dir.js';
import { LibsqlctlError } from '../../../src/errors.js';
import { startS3rver, type S3TestEndpoint } from '../../helpers/s3rver.js';
import { cliDump, requireSqliteCli } from '../../helpers/sqlite-cli.js';
import { makeTempDir } from './format-fixtures.js';
import { captureWal, type CapturedWal, genAt, insertSql, makeDb, putDep, putDurable, putSnapshot, putWal } from './restore-fixtures.js';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
let tmp: { dir: string; remove: () => void };
let s3: S3TestEndpoint;
const opened: BackupStorage[] = [];
let snap0: Buffer;
let wal1: CapturedWal;
let wal2: CapturedWal;
let emptyWal: CapturedWal;
const dumps: Record<string, string> = {};

beforeAll(async () => {
  await requireSqliteCli();
  tmp = makeTempDir('libsqlctl-restore-');
  s3 = await startS3rver();
  const work = path.join(tmp.dir, 'work.db');
  await makeDb(work, `CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); ${insertSql(1, 3)}`);
  snap0 = fs.readFileSync(work);
  wal1 = await captureWal(work, `${insertSql(4, 8)}\nUPDATE t SET v = randomblob(100) WHERE k % 2 = 0;\nBEGIN; ${insertSql(12, 5, 20000)} COMMIT;`);
  dumps.after1 = await cliDump(work);
  wal2 = await captureWal(work, `${insertSql(17, 4)}\nCREATE INDEX t_v ON t(v);\nDELETE FROM t WHERE k < 5;`);
  dumps.after2 = await cliDump(work);
  const fresh = path.join(tmp.dir, 'fresh.db');
  emptyWal = await captureWal(fresh, `PRAGMA page_size=4096;\nPRAGMA journal_mode=WAL;\nCREATE TABLE u(a, b);\n${Array.from({ length: 5 }, (_, i) => `INSERT INTO u VALUES (${i}, randomblob(3000));`).join('\n')}`);
  dumps.fresh = await cliDump(fresh);
});

afterAll(async () => {
  for (const s of opened.splice(0)) await s.close();
  await s3?.close();
  tmp?.remove();
});

let bucketNo = 0;
const backends: { name: string; open: () => Promise<BackupStorage> }[] = [
  {
    name: 'local',
    open: () => {
      const s = track(new LocalStorage({ dir: path.join(tmp.dir, 'store'), bucket: `b${++bucketNo}` }));
      return s.ensureBucket().then(() => s);
    },
  },
  {
    name: 's3',
    open: () => {
      const s = track(new S3Storage({ bucket: `restore-${++bucketNo}`, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, maxAttempts: 2, listPageSize: 3 }));
      return s.ensureBucket().then(() => s);
    },
  },
];

function track<T extends BackupStorage>(s: T): T {
  opened.push(s);
  return s;
}

function localStore(): Promise<BackupStorage> {
  return backends[0]!.open();
}

function outDir(): string {
  return fs.mkdtempSync(path.join(tmp.dir, 'out-'));
}

/** gen1: gz snapshot + wal1 in batches of 3 frames, cycling raw/gz/zstd; gen2: .dep → gen1, wal2 as zstd batches of 4. */
async function chain(storage: BackupStorage, db: string): Promise<{ gen1: string; gen2: string }> {
  const gen1 = genAt(T0);
  const gen2 = genAt(T0 + 60_000);
  await putSnapshot(storage, db, gen1, snap0, 'gz');
  await putWal(storage, db, gen1, wal1, { frames: 3, compression: (i) => (['raw', 'gz', 'zstd'] as const)[i % 3]! });
  await putDep(storage, db, gen2, gen1);
  await putWal(storage, db, gen2, wal2, { frames: 4, compression: 'zstd' });
  return { gen1, gen2 };
}

describe.each(backends)('restore from $name', ({ open }) => {
  it('follows .dep to the snapshot and replays every generation in order', async () => {
    const storage = await open();
    const { gen1, gen2 } = await chain(storage, 'ns-x:chain');
    const out = path.join(outDir(), 'data');
    const progress: RestoreProgress[] = [];
    const report = await restoreDatabase({ storage, db: 'ns-x:chain', out, parallel: 3, onProgress: (p) => progress.push(p) });
    expect(await cliDump(out)).toBe(dumps.after2);
    expect(report.generation).toBe(gen2);
    expect(report.chain.map((g) => [g.generation, g.snapshot])).toEqual([
      [gen1, true],
      [gen2, false],
    ]);
    expect(report.frames).toBe(wal1.count + wal2.count);
    expect(report.transactions).toBe(wal1.commits.length + wal2.commits.length);
    expect(report.snapshot?.digestVerified).toBe(true);
    expect(report.checks.every((c) => c.status !== 'failed')).toBe(true);
    expect(progress.filter((p) => p.phase === 'batches').at(-1)).toMatchObject({ done: report.batches, total: report.batches });
    expect(fs.readdirSync(path.dirname(out))).toEqual(['data']);

    const older = path.join(outDir(), 'data');
    await restoreDatabase({ storage, db: 'ns-x:chain', out: older, generation: gen1 });
    expect(await cliDump(older)).toBe(dumps.after1);
  });

  it('a snapshot listed before the chain is known, but not in it, is downloaded early and then dropped', async () => {
    // Listing order is newest first: gen2 (.dep → gen1), a decoy generation with a snapshot of
    // its own, then gen1. The restore starts on the decoy's snapshot (the first it lists), must
    // drop it once the chain ends at gen1's, and restore gen1's into the same temp file.
    for (const decoy of ['another database', 'not gzip at all']) {
      const storage = await open();
      const db = `ns-x:decoy-${decoy.length}`;
      const { gen1, gen2 } = await chain(storage, db);
      const between = genAt(T0 + 30_000);
      if (decoy === 'another database') await putSnapshot(storage, db, between, Buffer.concat([snap0, snap0.subarray(0, 4096)]), 'gz');
      else await storage.put(`${db}-${between}/db.gz`, Buffer.from('garbage, not a gzip stream'));
      const out = path.join(outDir(), 'data');
      const progress: RestoreProgress[] = [];
      const report = await restoreDatabase({ storage, db, out, onProgress: (p) => progress.push(p) });
      expect(report.chain.map((g) => g.generation)).toEqual([gen1, gen2]);
      expect(report.snapshot?.key).toBe(`${db}-${gen1}/db.gz`);
      expect(await cliDump(out)).toBe(dumps.after2);
      expect(fs.readdirSync(path.dirname(out))).toEqual(['data']);
      expect(progress[0]?.phase).toBe('plan');
    }
  });
});

describe('restore', () => {
  it('plans from one listing of the database (no listing of the generations first), its generations read at once', async () => {
    const storage = await localStore();
    const { gen2 } = await chain(storage, 'ns-x:one-listing');
    const lists: { prefix: string; delimiter: string | undefined }[] = [];
    const counting = new Proxy(storage, {
      get(target, prop, receiver) {
        if (prop === 'list') {
          return (prefix: string, options: ListOptions = {}) => {
            lists.push({ prefix, delimiter: options.delimiter });
            return target.list(prefix, options);
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const out = path.join(outDir(), 'data');
    const report = await restoreDatabase({ storage: counting, db: 'ns-x:one-listing', out });
    expect(report.generation).toBe(gen2);
    expect(await cliDump(out)).toBe(dumps.after2);
    expect(lists).toEqual([{ prefix: 'ns-x:one-listing-', delimiter: undefined }]);
  });

  it("asks for the snapshot before the generations' small objects, which wait for its first bytes", async () => {
    const storage = await localStore();
    const db = 'ns-x:snapshot-first';
    const { gen1 } = await chain(storage, db);
    const events: string[] = [];
    const recording = new Proxy(storage, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        const fn = (v as (...a: unknown[]) => unknown).bind(target);
        if (prop !== 'get' && prop !== 'getStream' && prop !== 'getReader') return fn;
        return async (key: string, ...rest: unknown[]) => {
          events.push(`${String(prop)} ${key.slice(key.lastIndexOf('/') + 1)}`);
          const got = (await fn(key, ...rest)) as { body: unknown };
          if (prop === 'getReader') {
            // The snapshot's first read is where its answer has begun.
            const body = got.body as { read: (buf: Uint8Array) => Promise<number> };
            const read = body.read.bind(body);
            let first = true;
            body.read = async (buf) => {
              const n = await read(buf);
              if (first) events.push('snapshot bytes');
              first = false;
              return n;
            };
          }
          return got;
        };
      },
    });
    const out = path.join(outDir(), 'data');
    const report = await restoreDatabase({ storage: recording, db, out });
    expect(report.snapshot?.key).toBe(`${db}-${gen1}/db.gz`);
    expect(await cliDump(out)).toBe(dumps.after2);
    const small = events.filter((e) => /\.(meta|dep|libsqlctl-durable)$/.test(e));
    expect(small.length).toBeGreaterThanOrEqual(3);
    expect(events.indexOf('getReader db.gz')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('snapshot bytes')).toBeLessThan(events.indexOf(small[0]!));
  });

  it("reads only the durable marker of a generation whose marker copies .meta and .dep; verify reads them all and compares", async () => {
    const storage = await localStore();
    const db = 'ns-x:marker-copies';
    const { gen1, gen2 } = await chain(storage, db);
    const meta = (w: CapturedWal) => ({ pageSize: w.header.pageSize, checksum: w.header.checksum });
    await putDurable(storage, db, gen1, wal1.count, true, { meta: meta(wal1), parent: null });
    await putDurable(storage, db, gen2, wal2.count, true, { meta: meta(wal2), parent: gen1 });
    const reads: string[] = [];
    const recording = new Proxy(storage, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        const fn = (v as (...a: unknown[]) => unknown).bind(target);
        if (prop !== 'get') return fn;
        return (key: string, ...rest: unknown[]) => {
          reads.push(key.slice(key.lastIndexOf('/') + 1));
          return fn(key, ...rest);
        };
      },
    });
    const out = path.join(outDir(), 'data');
    const report = await restoreDatabase({ storage: recording, db, out });
    expect(report.chain.map((g) => g.generation)).toEqual([gen1, gen2]);
    expect(await cliDump(out)).toBe(dumps.after2);
    expect(reads.filter((k) => k.startsWith('.')).sort()).toEqual(['.libsqlctl-durable', '.libsqlctl-durable']);
    expect((await verifyBackup({ storage, db })).ok).toBe(true);
    // A marker whose copy disagrees: restore reads .dep where the copy names none; verify refuses it.
    await putDurable(storage, db, gen2, wal2.count, true, { meta: meta(wal2), parent: null });
    reads.length = 0;
    await restoreDatabase({ storage: recording, db, out, replace: true });
    expect(reads).toContain('.dep');
    expect(await cliDump(out)).toBe(dumps.after2);
    const verdict = await verifyBackup({ storage, db });
    expect(verdict.ok).toBe(false);
    expect(verdict.problems.join(' ')).toMatch(/\.libsqlctl-durable.*names parent none, the generation's \.dep names/);
    expect(verdict.checks.find((c) => c.status === 'failed')?.name).toBe('durable marker');
  });

  it('starts from an empty file when the chain has no snapshot and its WAL starts a database', async () => {
    const storage = await localStore();
    const gen = genAt(T0);
    await putWal(storage, 'ns-x:fresh', gen, emptyWal, { frames: 2, compression: 'zstd' });
    const out = path.join(outDir(), 'data');
    const report = await restoreDatabase({ storage, db: 'ns-x:fresh', out });
    expect(report.fromEmpty).toBe(true);
    expect(report.snapshot).toBeNull();
    expect(report.checks.find((c) => c.name === 'snapshot digest')).toMatchObject({ status: 'skipped' });
    expect(await cliDump(out)).toBe(dumps.fresh);
  });

  it('reads sqld-made raw and zstd snapshots without our digest, and spills a big transaction to disk', async () => {
    const storage = await localStore();
    for (const c of ['raw', 'zstd'] as const) {
      const db = `ns-x:snap-${c}`;
      const gen = genAt(T0);
      await putSnapshot(storage, db, gen, snap0, c, false);
      await putWal(storage, db, gen, wal1, { frames: 5, compression: 'gz' });
      const out = path.join(outDir(), 'data');
      const report = await restoreDatabase({ storage, db, out, prefer: c, memoryLimit: 3 * 4096 });
      expect(await cliDump(out)).toBe(dumps.after1);
      expect(report.snapshot).toMatchObject({ compression: c, digestVerified: false });
      expect(report.checks.find((c) => c.name === 'snapshot digest')).toMatchObject({ status: 'skipped' });
      expect(fs.readdirSync(path.dirname(out))).toEqual(['data']);
    }
  });

  it('refuses to replace an existing file unless asked, and then leaves no stale -wal behind', async () => {
    const storage = await localStore();
    await chain(storage, 'ns-x:replace');
    const out = path.join(outDir(), 'data');
    fs.writeFileSync(out, 'keep me');
    const err = await restoreDatabase({ storage, db: 'ns-x:replace', out }).catch((e: unknown) => e);
    expect((err as LibsqlctlError).code).toBe('RESTORE_TARGET_EXISTS');
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    fs.writeFileSync(`${out}-wal`, 'stale');
    await restoreDatabase({ storage, db: 'ns-x:replace', out, replace: true });
    expect(fs.existsSync(`${out}-wal`)).toBe(false);
    expect(await cliDump(out)).toBe(dumps.after2);
  });
});

describe('restore into a data directory', () => {
  it('takes the lock, replaces only with force, and invalidates the replication log', async () => {
    const storage = await localStore();
    const db = 'ns-abc:default';
    await chain(storage, db);
    expect(namespaceOfDbName(db)).toBe('default');
    expect(namespaceOfDbName('ns-plain')).toBe('plain');
    const dataDir = path.join(outDir(), 'data.sqld');
    const ns = new DataDirPaths(dataDir).namespace('default');

    const lock = DataDirLock.acquire(dataDir);
    const locked = await restoreIntoDataDir({ storage, db, dataDir, namespace: 'default', force: true }).catch((e: unknown) => e);
    lock.release();
    expect((locked as LibsqlctlError).code).toBe('DATA_DIR_IN_USE');
    expect(fs.existsSync(ns.db)).toBe(false);

    await restoreIntoDataDir({ storage, db, dataDir, namespace: 'default', force: false });
    expect(await cliDump(ns.db)).toBe(dumps.after2);
    const exists = await restoreIntoDataDir({ storage, db, dataDir, namespace: 'default', force: false }).catch((e: unknown) => e);
    expect((exists as LibsqlctlError).code).toBe('RESTORE_TARGET_EXISTS');

    fs.writeFileSync(ns.wal, 'stale wal');
    fs.writeFileSync(ns.shm, 'stale shm');
    fs.writeFileSync(ns.captureState, 'old log position');
    await restoreIntoDataDir({ storage, db, dataDir, namespace: 'default', force: true });
    expect([fs.existsSync(ns.wal), fs.existsSync(ns.shm), fs.existsSync(ns.captureState)]).toEqual([false, false, false]);
    expect(fs.existsSync(new DataDirPaths(dataDir).lockFile)).toBe(false);
    expect(await cliDump(ns.db)).toBe(dumps.after2);
  });

  it('a failed restore leaves no directory it created', async () => {
    const storage = await localStore();
    const dataDir = path.join(outDir(), 'never');
    const err = await restoreIntoDataDir({ storage, db: 'ns-x:nothing', dataDir, namespace: 'nothing', force: false }).catch((e: unknown) => e);
    expect((err as LibsqlctlError).code).toBe('BACKUP_NOT_FOUND');
    expect(fs.existsSync(dataDir)).toBe(false);
  });
});

describe('the integrity check', () => {
  it('maps the whole restored file (SQLite takes the size it is given, up to its own maximum)', () => {
    const db = new Database(path.join(tmp.dir, 'mmap.db'));
    try {
      db.pragma(`mmap_size = ${INTEGRITY_MMAP_BYTES}`);
      expect(db.pragma('mmap_size', { simple: true })).toBeGreaterThanOrEqual(2 ** 31 - 2 ** 16);
    } finally {
      db.close();
    }
  });
});
