/** `libsqlctl bottomless ls|restore|verify|rm|create` end to end on the built CLI, against a file:/// store and s3rver. */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalStorage } from '../../src/backup/storage/local-storage.js';
import { S3Storage } from '../../src/backup/storage/s3-storage.js';
import { cliScratch, spawnCli, STACK_FRAME_RE, within } from '../helpers/child-server.js';
import { startS3rver, type S3TestEndpoint } from '../helpers/s3rver.js';
import { cliDump, requireSqliteCli, sqliteCli } from '../helpers/sqlite-cli.js';
import { captureWal, type CapturedWal, genAt, insertSql, makeDb, putDep, putDurable, putSnapshot, putWal } from '../unit/backup/restore-fixtures.js';

const scratch = cliScratch('libsqlctl-bottomless-cli-');
// Several CLI processes per test, each loading every command module: bounds for a loaded machine.
vi.setConfig({ testTimeout: 120_000 });
const RUN_BOUND_MS = 60_000;
const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const storeDir = path.join(scratch, 'store');
const endpoint = pathToFileURL(storeDir).href;
let storage: LocalStorage;
let wal1: CapturedWal;
let wal2: CapturedWal;
let after1 = '';
let after2 = '';
let gen1 = '';
let gen2 = '';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function run(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const child = spawnCli(['bottomless', ...args], { cwd: scratch, env: { DEBUG: undefined, ...env } });
  const exit = await within(child.exited, RUN_BOUND_MS, `libsqlctl bottomless ${args.join(' ')}`);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

/** Exit `code`; stderr ends with one `Error: …` line and one `Try: …` line (after any progress lines), no stack trace. */
function expectOneLineError(r: Run, code: number, message: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(STACK_FRAME_RE);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines.filter((l) => /^(Error|Try):/.test(l)), r.stderr).toEqual([expect.stringMatching(message), expect.stringMatching(/^Try: /)]);
  expect(lines.slice(-2)[0]).toMatch(/^Error: /);
}

beforeAll(async () => {
  await requireSqliteCli();
  storage = new LocalStorage({ dir: storeDir, bucket: 'bottomless' });
  await storage.ensureBucket();
  const work = path.join(scratch, 'work.db');
  await makeDb(work, `CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); ${insertSql(1, 3)}`);
  const snap = fs.readFileSync(work);
  wal1 = await captureWal(work, insertSql(4, 6));
  after1 = await cliDump(work);
  wal2 = await captureWal(work, insertSql(10, 4));
  after2 = await cliDump(work);
  gen1 = genAt(T0);
  gen2 = genAt(T0 + 86_400_000);
  // The server's default namespace without a database id: ns-:default.
  await putSnapshot(storage, 'ns-:default', gen1, snap, 'gz');
  await putWal(storage, 'ns-:default', gen1, wal1, { frames: 3, compression: 'zstd', commitMs: (f) => T0 + f });
  await putDurable(storage, 'ns-:default', gen1, wal1.count);
  await putDep(storage, 'ns-:default', gen2, gen1);
  await putWal(storage, 'ns-:default', gen2, wal2, { frames: 3, compression: 'gz', commitMs: (f) => T0 + 86_400_000 + f });
  await putDurable(storage, 'ns-:default', gen2, wal2.count, false);
  // A broken one: its last batch is lost, and the durable marker knows.
  const broken = genAt(T0);
  await putSnapshot(storage, 'ns-id7:broken', broken, snap, 'raw');
  await putWal(storage, 'ns-id7:broken', broken, wal1, { frames: 3, skip: [Math.ceil(wal1.count / 3) - 1] });
  await putDurable(storage, 'ns-id7:broken', broken, wal1.count);
});
afterAll(async () => {
  await storage?.close();
});

describe('bottomless ls', () => {
  it('a table newest first, --json, -v --json, -l, dates; nothing found', async () => {
    const [table, json, verbose, limited, older, none] = await Promise.all([
      run(['ls', '-e', endpoint]),
      run(['ls', '-e', endpoint, '--json']),
      run(['ls', '-e', endpoint, '-v', '--json']),
      run(['ls', '-e', endpoint, '-l', '1', '--json']),
      run(['ls', '-e', endpoint, '--older-than', '2024-05-01', '--json']),
      run(['ls', '-e', endpoint, '--db-name', 'nothing'], { LIBSQL_BOTTOMLESS_DATABASE_ID: 'x' }),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('Database ns-:default');
    expect(table.stdout).toContain('2024-05-01 12:00:00');
    expect(table.stdout.indexOf(gen2)).toBeLessThan(table.stdout.indexOf(gen1));
    expect(table.stdout.indexOf(gen2)).toBeGreaterThan(0);
    expect(JSON.parse(json.stdout)).toEqual([
      { generation: gen2, createdAt: '2024-05-02T12:00:00.000Z' },
      { generation: gen1, createdAt: '2024-05-01T12:00:00.000Z' },
    ]);
    const details = JSON.parse(verbose.stdout) as Record<string, unknown>[];
    expect(details[1]).toMatchObject({
      generation: gen1,
      consistentWalFrame: wal1.count,
      pageSize: 4096,
      walFrameChecksum: wal1.header.checksum.map((w) => w.toString(16).toUpperCase()).join('-'),
      previousGeneration: null,
      snapshot: { objectSize: expect.any(Number) as unknown, digest: 'crc64' },
      durable: { lastFrame: wal1.count, sealed: true },
    });
    expect(details[0]).toMatchObject({ generation: gen2, previousGeneration: gen1, snapshot: null, durable: { sealed: false } });
    expect((JSON.parse(limited.stdout) as { generation: string }[]).map((g) => g.generation)).toEqual([gen2]);
    expect((JSON.parse(older.stdout) as { generation: string }[]).map((g) => g.generation)).toEqual([gen1]);
    expect([none.code, none.stdout.trim()]).toEqual([0, 'No generations found']);
  });
});

describe('bottomless restore', () => {
  it('-o FILE, then refuses to overwrite it without --force; --json prints one object and no progress', async () => {
    const out = path.join(scratch, 'restored.db');
    const first = await run(['restore', '-e', endpoint, '-o', out]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`Restored ns-:default generation ${gen2} into ${out}`);
    expect(first.stdout).toContain('Verification: ok');
    expect(first.stderr).toMatch(/applying \d+ batch\(es\)/);
    expect(await cliDump(out)).toBe(after2);

    const again = await run(['restore', '-e', endpoint, '-o', out]);
    expectOneLineError(again, 1, /already exists/);

    const forced = await run(['restore', '-e', endpoint, '-o', out, '--force', '-g', gen1, '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toBe('');
    expect(JSON.parse(forced.stdout)).toMatchObject({ generation: gen1, out, transactions: wal1.commits.length });
    expect(await cliDump(out)).toBe(after1);
  });

  it('--utc-time to one commit, and it says so', async () => {
    const out = path.join(scratch, 'pitr.db');
    const commit = wal1.commits[2]!;
    const r = await run(['restore', '-e', endpoint, '-o', out, '--utc-time', new Date(T0 + commit).toISOString()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/precision to one commit/);
    expect(await sqliteCli(out, ['SELECT count(*) FROM t;'])).toBe('6\n');
  });

  it('into the data directory: --force rules, and refused while a server holds the lock', async () => {
    const dataDir = path.join(scratch, 'data.sqld');
    const dbFile = path.join(dataDir, 'dbs', 'default', 'data');
    const r = await run(['restore', '-e', endpoint, '-d', dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(await cliDump(dbFile)).toBe(after2);
    expectOneLineError(await run(['restore', '-e', endpoint, '-d', dataDir]), 1, new RegExp(`${dbFile.replace(/[.]/g, '\\.')} already exists`));

    // A live process that is not the CLI holds the lock: this test process.
    const lockFile = path.join(dataDir, '.libsqlctl.lock');
    fs.writeFileSync(lockFile, `${process.pid}\n`);
    try {
      expectOneLineError(await run(['restore', '-e', endpoint, '-d', dataDir, '--force']), 1, new RegExp(`in use by process ${process.pid}`));
    } finally {
      fs.rmSync(lockFile);
    }
    fs.writeFileSync(`${dbFile}-wal`, 'stale');
    const forced = await run(['restore', '-e', endpoint, '-d', dataDir, '--force', '-g', gen1]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(fs.existsSync(`${dbFile}-wal`)).toBe(false);
    expect(await cliDump(dbFile)).toBe(after1);
  });

  it('a gap fails with one line and leaves nothing; bad flags exit 2', async () => {
    const out = path.join(scratch, 'never.db');
    const gap = await run(['restore', '-e', endpoint, '-n', 'ns-id7:broken', '-o', out]);
    expectOneLineError(gap, 1, /generation [0-9a-f-]{36}: frames \d+\.\.\d+ are missing/);
    expect(fs.readdirSync(scratch).filter((f) => f.includes('never'))).toEqual([]);

    const bad = await Promise.all([
      run(['restore', '-e', endpoint, '-g', 'not-a-uuid']),
      run(['restore', '-e', endpoint, '--utc-time', 'yesterday']),
      run(['restore', '-e', endpoint, '-n', 'ns-a:b', '--db-name', 'c']),
    ]);
    expectOneLineError(bad[0], 2, /-g "not-a-uuid": not a generation id/);
    expectOneLineError(bad[1], 2, /--utc-time: not a valid time/);
    expectOneLineError(bad[2], 2, /--db-name.*cannot also be provided|--namespace.*cannot also be provided/);
  });
});

describe('bottomless verify', () => {
  it('ok for a complete backup; exit 1 naming the missing frames otherwise', async () => {
    const [ok, failed] = await Promise.all([run(['verify', '-e', endpoint]), run(['verify', '-e', endpoint, '--db-name', 'broken'], { LIBSQL_BOTTOMLESS_DATABASE_ID: 'id7' })]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/ok\s+durable marker/);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('Verification: ok');
    expect(failed.stdout).toMatch(/failed\s+durable marker: .*are missing/);
    expect(failed.stdout).toContain('Verification failed:');
    expectOneLineError(failed, 1, /incomplete or damaged: generation .* frames \d+\.\.\d+ are missing/);
  });
});

describe('bottomless rm and create', () => {
  it('rm -g --dry-run lists, rm -g deletes, rm --older-than removes old generations and its tombstone', async () => {
    const db = 'ns-rm:default';
    const [a, b, c] = [genAt(T0), genAt(T0 + 86_400_000), genAt(T0 + 3 * 86_400_000)];
    for (const g of [a, b, c]) await putWal(storage, db, g, wal1, { frames: 100 });
    const dry = await run(['rm', '-e', endpoint, '-n', db, '-g', c, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`Would remove ${db}-${c}/.meta`);
    const removed = await run(['rm', '-e', endpoint, '-n', db, '-g', c, '--json']);
    expect(JSON.parse(removed.stdout)).toEqual({ dryRun: false, generations: [c], keys: [`${db}-${c}/.meta`, expect.stringMatching(new RegExp(`^${db}-${c}/000000000001-`)) as unknown] });
    const old = await run(['rm', '-e', endpoint, '-n', db, '--older-than', '2024-05-02', '-v']);
    expect(old.code, old.stderr).toBe(0);
    expect(old.stdout).toContain(`Tombstoned ${db} at 2024-05-02 00:00:00 UTC`);
    expect(old.stdout).toContain(`Removed 1 generation(s) of ${db} up to 2024-05-02`);
    const left: string[] = [];
    for await (const e of storage.list(`${db}`, { delimiter: '/' })) left.push(e.kind === 'prefix' ? e.prefix : e.key);
    expect(left).toEqual([`${db}-${b}/`]);
    expectOneLineError(await run(['rm', '-e', endpoint, '-n', db]), 2, /exactly one of -g/);
  });

  it('create -s uploads a live WAL database as a new generation; restore gives it back', async () => {
    const src = path.join(scratch, 'source.db');
    await makeDb(src, `CREATE TABLE s(a, b); INSERT INTO s VALUES (1, 'one'), (2, randomblob(9000));`);
    const created = await run(['create', '-e', endpoint, '-n', 'ns-c:default', '-s', src, '--json'], { LIBSQL_BOTTOMLESS_COMPRESSION: 'zstd' });
    expect(created.code, created.stderr).toBe(0);
    const { generation, key } = JSON.parse(created.stdout) as { generation: string; key: string };
    expect(key).toBe(`ns-c:default-${generation}/db.zstd`);
    const out = path.join(scratch, 'created.db');
    const restored = await run(['restore', '-e', endpoint, '-n', 'ns-c:default', '-o', out]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain('crc64 verified');
    expect(await cliDump(out)).toBe(await cliDump(src));
    expectOneLineError(await run(['create', '-e', endpoint, '-s', path.join(scratch, 'missing.db')]), 2, /no such file/);
  });
});

describe('against S3 (s3rver)', () => {
  let s3: S3TestEndpoint;
  beforeAll(async () => {
    s3 = await startS3rver();
  });
  afterAll(async () => {
    await s3?.close();
  });

  it('create, ls, restore', async () => {
    const env = { LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID: s3.accessKeyId, LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION: s3.region, LIBSQL_BOTTOMLESS_ENDPOINT: s3.endpoint, LIBSQL_BOTTOMLESS_BUCKET: 'cli-test' };
    const src = path.join(scratch, 's3-source.db');
    await makeDb(src, `CREATE TABLE s(a); INSERT INTO s VALUES (42);`);
    const created = await run(['create', '-s', src], env);
    expect(created.code, created.stderr).toBe(0);
    const gen = /^snapshot uploaded for generation: ([0-9a-f-]{36})$/m.exec(created.stdout)?.[1];
    expect(gen).toBeDefined();
    const ls = await run(['ls', '--json'], env);
    expect((JSON.parse(ls.stdout) as { generation: string }[]).map((g) => g.generation)).toEqual([gen]);
    const out = path.join(scratch, 's3-restored.db');
    const restored = await run(['restore', '-o', out], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await cliDump(out)).toBe(await cliDump(src));
    const s3storage = new S3Storage({ bucket: 'cli-test', endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, maxAttempts: 1 });
    try {
      expect(await s3storage.head(`ns-:default-${gen}/.changecounter`)).not.toBeNull();
    } finally {
      await s3storage.close();
    }
  });
});
