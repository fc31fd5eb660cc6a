/**
 * bottomless-restore: restore of the same database — one generation in Litestream's sense: a
 * ~100 MB snapshot plus ~20 000 small transactions of WAL — from the same s3rver, by
 * `libsqlctl bottomless restore -o` and by `litestream restore -o`, each a child process, alternating,
 * median wall time of each over at least 7 rounds (Litestream's single runs range over 0.34–0.68 s
 * on a 2-core machine, so a median of 3 moved by ±15% from one bench run to the next). Both keep
 * their own checks in the timed run (ours: checksum chains, gzip CRCs, the snapshot's CRC-64,
 * integrity_check); after every run (untimed) the restored file must hold exactly
 * the source's rows. Our process start-up (`libsqlctl -V`, which loads oclif, and `bottomless
 * restore` of an empty bucket: everything a restore loads, and one listing) is measured and
 * reported separately. Target ratio ours/Litestream ≤ 1. Where the environment sets
 * NODE_EXTRA_CA_CERTS, the timed libsqlctl runs go without it (plain HTTP, no TLS: see timedEnv),
 * and the report says what it costs a Node start.
 *
 * The database: `serve` (without backups) fills a table with random blobs (BENCH_BOTTOMLESS_MB,
 * default 100), stops; Litestream's copy is that file. Then `serve --enable-bottomless-replication`
 * starts on it (no backup state yet: its first generation opens with a snapshot of the whole file)
 * and takes BENCH_BOTTOMLESS_TXNS (default 20 000) single-row INSERTs over HTTP, and stops
 * gracefully (everything uploaded). The same INSERTs go into Litestream's copy (better-sqlite3, WAL
 * mode) while `litestream replicate` runs; it is stopped once a restore of its replica equals the
 * source. Our engine checkpoints every 4 MB of WAL and one bottomless generation is one WAL
 * generation, so our side is a chain of generations (one snapshot, then WAL only; the details
 * say how many) where Litestream has one generation with several WAL indexes: the same data either
 * way.
 *
 * s3rver quirk: its delimiter listing hides `generations/<id>/` (a folder holding only folders), so
 * Litestream would find no generation; an empty `<path>/generations/<id>/.marker` object fixes that.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { BackupStorage } from '../src/backup/storage/storage.js';
import {
  bottomlessEnv,
  cleanEnv,
  cli,
  ensureBuilt,
  litestreamBinary,
  litestreamEnv,
  litestreamReplicate,
  run,
  serve,
  startS3rver,
  writeLitestreamConfig,
  type S3rver,
} from './bottomless-harness.js';
import type { Benchmark, BenchOptions } from './types.js';
import { benchTempDir, execSql, fmtNumber, median } from './util.js';

/** Timed rounds of each restore at least (see above). */
const MIN_ROUNDS = 7;

const MB = Number(process.env.BENCH_BOTTOMLESS_MB ?? 100);
const TXNS = Number(process.env.BENCH_BOTTOMLESS_TXNS ?? 20_000);
const OUR_BUCKET = 'bottomless';
const LS_BUCKET = 'litestream';
const LS_PATH = 'db';
const SCHEMA = ['CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)', 'CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT)'];

/** The i-th small transaction's row (the same on both sides). */
const smallRow = (i: number): string => `row ${i} ${'x'.repeat(40 + (i % 60))}`;

/** Rows and a sha256 over the content of our two tables (Litestream adds tables of its own). */
function digest(file: string): { rows: number; sha: string } {
  const db = new Database(file, { fileMustExist: true });
  try {
    const hash = createHash('sha256');
    let rows = 0;
    for (const table of ['big', 'small']) {
      for (const row of db.prepare(`SELECT * FROM ${table} ORDER BY id`).raw().iterate() as Iterable<unknown[]>) {
        hash.update(`${table}|`);
        for (const v of row) hash.update(Buffer.isBuffer(v) ? v : `${String(v)}|`);
        rows++;
      }
    }
    return { rows, sha: hash.digest('hex') };
  } finally {
    db.close();
  }
}

/** Copies a SQLite file and its WAL (if any) with the server stopped. */
function copyDb(from: string, to: string): void {
  fs.copyFileSync(from, to);
  if (fs.existsSync(`${from}-wal`)) fs.copyFileSync(`${from}-wal`, `${to}-wal`);
}

function rmDb(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
}

/** Objects and bytes below a prefix. */
async function usage(storage: BackupStorage, prefix: string): Promise<{ objects: number; bytes: number; keys: string[] }> {
  const keys: string[] = [];
  let bytes = 0;
  for await (const e of storage.list(prefix)) {
    if (e.kind !== 'object') continue;
    keys.push(e.key);
    bytes += e.size;
  }
  return { objects: keys.length, bytes, keys };
}

/** Runs `count` jobs with at most `parallel` in flight. */
async function pool(count: number, parallel: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) await job(next++);
  }));
}

interface Fixture {
  tmp: string;
  s3: S3rver;
  reference: { rows: number; sha: string };
  ourEnv: NodeJS.ProcessEnv;
  ls: { bin: string; version: string; config: string; dbPath: string };
  facts: string[];
}

/** Builds both backups of the same database (not timed). */
async function buildFixture(opts: BenchOptions, tmp: string, s3: S3rver, binary: { path: string; version: string }): Promise<Fixture> {
  const facts: string[] = [];
  const dataDir = path.join(tmp, 'ours.sqld');
  const source = path.join(dataDir, 'dbs/default/data');
  const ourEnv = bottomlessEnv(s3.endpoint, OUR_BUCKET);
  const quiet = ['--log-level', 'warn'];

  opts.log(`  filling ~${MB} MB through serve`);
  let server = await serve(opts, dataDir, cleanEnv(), quiet);
  for (const sql of SCHEMA) await execSql(server.url, sql);
  // 4000-byte blobs: one per 4 KiB page, so the file is about MB large and does not compress
  const perStatement = 1000;
  for (let done = 0; done * perStatement * 4000 < MB * 1_000_000; done++) {
    await execSql(server.url, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${perStatement}) INSERT INTO big (b) SELECT randomblob(4000) FROM c`);
  }
  await server.stop();
  const lsDir = path.join(tmp, 'litestream');
  fs.mkdirSync(lsDir);
  const lsDb = path.join(lsDir, 'db');
  copyDb(source, lsDb);

  opts.log(`  ${TXNS} small transactions through serve --enable-bottomless-replication`);
  const ours = await s3.bucket(OUR_BUCKET);
  server = await serve(opts, dataDir, ourEnv, ['--enable-bottomless-replication', ...quiet]);
  const url = server.url;
  const insert = async (id: number): Promise<void> => {
    await execSql(url, 'INSERT INTO small (id, v) VALUES (?, ?)', [{ type: 'integer', value: String(id) }, { type: 'text', value: smallRow(id) }]);
  };
  // The first transaction opens the first generation, whose snapshot is the whole file. The others
  // wait until that snapshot is stored: under this load (a 4 MB checkpoint every ~1-2 s) a snapshot
  // that takes longer than the checkpoint's 5 s prepare timeout to stage is abandoned at every
  // checkpoint, and no generation ever gets one (the report says more).
  const t0 = performance.now();
  await insert(1);
  const deadline = performance.now() + 300_000;
  while (!(await usage(ours, 'ns-bench:default-')).keys.some((k) => /\/db\.(gz|zstd|raw)$/.test(k))) {
    if (performance.now() > deadline) throw new Error('the first snapshot was not stored within 300 s');
    await sleep(100);
  }
  const snapshotMs = performance.now() - t0;
  const t1 = performance.now();
  await pool(TXNS - 1, 8, (i) => insert(i + 2));
  const paceMs = performance.now() - t1;
  facts.push(`setup (not timed): first snapshot stored ${fmtNumber(snapshotMs / 1000, 1)} s after the first transaction; then ${TXNS - 1} transactions over HTTP in ${fmtNumber(paceMs / 1000, 1)} s`);
  await server.stop();
  const scratch = path.join(tmp, 'scratch.db');
  copyDb(source, scratch);
  const reference = digest(scratch);
  rmDb(scratch);
  const ourObjects = await usage(ours, 'ns-bench:default-');
  const gens = new Set(ourObjects.keys.map((k) => k.split('/')[0]));
  const snapshots = ourObjects.keys.filter((k) => /\/db\.(gz|zstd|raw)$/.test(k)).length;
  facts.push(`source: ${reference.rows} rows, ${fmtNumber(fs.statSync(source).size / 1e6, 1)} MB file; ours in the store: ${ourObjects.objects} objects, ${fmtNumber(ourObjects.bytes / 1e6, 1)} MB, ${gens.size} bottomless generation(s), ${snapshots} snapshot(s)`);

  const ls = await replicateWithLitestream(opts, binary, s3, lsDb, reference, paceMs, facts);
  return { tmp, s3, reference, ourEnv, ls, facts };
}

/**
 * Litestream's side: `replicate` on the copy while the same transactions go in at the pace ours
 * took (so that both stores hold a comparable number of objects), until its replica restores to
 * the source.
 */
async function replicateWithLitestream(
  opts: BenchOptions,
  binary: { path: string; version: string },
  s3: S3rver,
  lsDb: string,
  reference: { sha: string },
  paceMs: number,
  facts: string[],
): Promise<{ bin: string; version: string; config: string; dbPath: string }> {
  const lsDir = path.dirname(lsDb);
  const config = path.join(lsDir, 'litestream.yml');
  writeLitestreamConfig(config, lsDb, s3.endpoint, LS_BUCKET, LS_PATH);
  const store = await s3.bucket(LS_BUCKET);
  const app = new Database(lsDb);
  app.pragma('journal_mode = WAL');
  app.pragma('wal_checkpoint(TRUNCATE)');
  app.pragma('synchronous = NORMAL'); // content is what matters here, not the app's own fsyncs
  opts.log(`  litestream ${binary.version}: replicate, the same ${TXNS} transactions through better-sqlite3`);
  const replicate = litestreamReplicate(opts, binary.path, config);
  const marked = new Set<string>();
  /** s3rver's listing quirk: make every generation folder hold an object. */
  const mark = async (): Promise<void> => {
    for (const key of (await usage(store, `${LS_PATH}/generations/`)).keys) {
      const id = key.split('/')[2];
      if (id === undefined || marked.has(id)) continue;
      await store.put(`${LS_PATH}/generations/${id}/.marker`, Buffer.alloc(0));
      marked.add(id);
    }
  };
  try {
    const insert = app.prepare('INSERT INTO small (id, v) VALUES (?, ?)');
    const start = performance.now();
    for (let i = 1; i <= TXNS; i++) {
      insert.run(i, smallRow(i));
      const wait = i % 50 === 0 ? start + (i / TXNS) * paceMs - performance.now() : 0;
      if (wait > 0) await sleep(wait);
    }
    const wrote = performance.now();
    // Caught up = a restore of the replica equals the source (bounded; Litestream syncs every 1 s).
    const probe = path.join(lsDir, 'probe.db');
    const deadline = performance.now() + 180_000;
    for (;;) {
      await mark();
      rmDb(probe);
      const ok = await run(opts, binary.path, ['restore', '-config', config, '-o', probe, lsDb], litestreamEnv()).then(
        () => digest(probe).sha === reference.sha,
        () => false,
      );
      if (ok) break;
      if (performance.now() > deadline) throw new Error('Litestream did not catch up within 180 s');
      await sleep(1000);
    }
    rmDb(probe);
    facts.push(`Litestream's copy: the same ${TXNS} transactions in ${fmtNumber((wrote - start) / 1000, 1)} s; its replica restored to the source ${fmtNumber((performance.now() - wrote) / 1000, 1)} s after the last one`);
  } finally {
    await replicate.stop();
    app.close();
  }
  await mark();
  const lsObjects = await usage(store, `${LS_PATH}/`);
  const count = (part: string): number => lsObjects.keys.filter((k) => k.includes(part)).length;
  facts.push(`Litestream in the store: ${lsObjects.objects} objects (${count('/snapshots/')} snapshot(s), ${count('/wal/')} WAL segment(s), ${marked.size} .marker), ${fmtNumber(lsObjects.bytes / 1e6, 1)} MB, ${marked.size} generation(s)`);
  if (marked.size !== 1) throw new Error(`Litestream made ${marked.size} generations, expected 1`);
  return { bin: binary.path, version: binary.version, config, dbPath: lsDb };
}

const s = (ms: number): string => `${fmtNumber(ms / 1000, 2)} s`;

/**
 * The environment of the timed libsqlctl runs. NODE_EXTRA_CA_CERTS, where the machine sets it,
 * makes Node read and parse that CA bundle at every start, before any of our code runs; the
 * restore talks plain HTTP to s3rver (no TLS), and Litestream (Go) reads CAs only for TLS. So the
 * timed runs go without it, and the report says what it costs (`extraCasCost`).
 */
function timedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _cas, ...rest } = env;
  return rest;
}

/** What NODE_EXTRA_CA_CERTS costs a Node start here (`node -e 0`, medians), or null when it is not set. */
async function extraCasCost(opts: BenchOptions, env: NodeJS.ProcessEnv, rounds: number): Promise<string | null> {
  if (env.NODE_EXTRA_CA_CERTS === undefined) return null;
  const withCas: number[] = [];
  const without: number[] = [];
  for (let i = 0; i < rounds; i++) {
    withCas.push((await run(opts, process.execPath, ['-e', '0'], env)).ms);
    without.push((await run(opts, process.execPath, ['-e', '0'], timedEnv(env))).ms);
  }
  return `NODE_EXTRA_CA_CERTS is set in this environment: Node parses that CA bundle at every start (node -e 0: ${s(median(withCas))} with it, ${s(median(without))} without); the restore talks plain HTTP, so the timed libsqlctl runs go without it`;
}

export const bottomlessRestore: Benchmark = {
  name: 'bottomless-restore',
  description: `restore ~${MB} MB snapshot + ${TXNS} small transactions from s3rver: libsqlctl vs Litestream (median wall time, incl. checks)`,
  async run(opts) {
    const binary = litestreamBinary();
    if (binary.path === null) throw new Error(`no Litestream baseline: ${binary.reason}`);
    ensureBuilt(opts);
    const tmp = benchTempDir(opts, 'bottomless');
    const s3 = await startS3rver(opts);
    try {
      const fx = await buildFixture(opts, tmp.dir, s3, { path: binary.path, version: binary.version });
      const ls = fx.ls;
      const ourEnv = timedEnv(fx.ourEnv);
      const rounds = Math.max(MIN_ROUNDS, opts.rounds);
      const check = (file: string, who: string): void => {
        const got = digest(file);
        if (got.sha !== fx.reference.sha) throw new Error(`${who}: the restored database differs from the source (${got.rows} rows, expected ${fx.reference.rows})`);
        rmDb(file);
      };
      const ours = async (i: number): Promise<number> => {
        const out = path.join(fx.tmp, `ours-${i}.db`);
        const r = await cli(opts, ['bottomless', 'restore', '-o', out, '--json'], ourEnv);
        if (i === 0) {
          const rep = JSON.parse(r.stdout) as { chain: unknown[]; batches: number; frames: number; transactions: number; checks: { name: string; status: string }[] };
          fx.facts.push(`ours restores a chain of ${rep.chain.length} generation(s): ${rep.transactions} transactions, ${rep.frames} frames in ${rep.batches} batches; checks ${rep.checks.map((c) => `${c.name} ${c.status}`).join(', ')}`);
        }
        check(out, 'libsqlctl');
        return r.ms;
      };
      const theirs = async (i: number): Promise<number> => {
        const out = path.join(fx.tmp, `litestream-${i}.db`);
        const r = await run(opts, ls.bin, ['restore', '-config', ls.config, '-o', out, ls.dbPath], litestreamEnv());
        check(out, 'litestream');
        return r.ms;
      };
      opts.log('  warm-up: one restore each (not measured)');
      await ours(0);
      await theirs(0);
      const our: number[] = [];
      const their: number[] = [];
      for (let i = 1; i <= rounds; i++) {
        // alternate which goes first, so that drift and caches favour neither
        if (i % 2 === 1) {
          our.push(await ours(i));
          their.push(await theirs(i));
        } else {
          their.push(await theirs(i));
          our.push(await ours(i));
        }
        opts.log(`  round ${i}: libsqlctl ${s(our.at(-1)!)}, litestream ${s(their.at(-1)!)}`);
      }
      const empty = timedEnv(bottomlessEnv(fx.s3.endpoint, 'empty'));
      await fx.s3.bucket('empty');
      const startup: number[] = [];
      const lsStartup: number[] = [];
      const restoreEmpty: number[] = [];
      for (let i = 0; i < rounds; i++) {
        startup.push((await cli(opts, ['-V'], ourEnv)).ms);
        // Exit 1: no generations (nothing is written).
        restoreEmpty.push((await cli(opts, ['bottomless', 'restore', '-o', path.join(tmp.dir, 'empty.db')], empty, undefined, 1)).ms);
        lsStartup.push((await run(opts, ls.bin, ['version'], litestreamEnv())).ms);
      }
      const cas = await extraCasCost(opts, fx.ourEnv, rounds);
      if (cas !== null) fx.facts.push(cas);
      const [mo, ml, su, le, lsu] = [median(our), median(their), median(startup), median(restoreEmpty), median(lsStartup)];
      return {
        name: this.name,
        unit: 'ms',
        value: mo,
        baseline: ml,
        ratio: mo / ml,
        target: 1,
        comparison: '<=',
        details: [
          ...fx.facts,
          `libsqlctl restore ${our.map(s).join(', ')} (median ${s(mo)}); litestream ${ls.version} restore ${their.map(s).join(', ')} (median ${s(ml)})`,
          `process start-up: libsqlctl -V ${s(su)}, libsqlctl bottomless restore of an empty bucket (start-up and one listing) ${s(le)}, litestream version ${s(lsu)} (medians of ${rounds})`,
          `restore minus start-up: libsqlctl ${s(mo - le)} (minus the empty bucket's restore), litestream ${s(ml - lsu)}`,
        ],
      };
    } finally {
      await s3.close();
      tmp.remove();
    }
  },
};
