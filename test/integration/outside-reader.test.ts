/**
 * The `sqlite3` shell as an outside reader after every engine path that touches the database's files
 * (design.md §4, "POSIX locks"): seeding a new log, recovery, compaction and snapshots, checkpoints,
 * `GET /dump`, `startNewLog`. SQLite's locks are per process; had the engine opened and closed one
 * of `data`/`-wal`/`-shm` itself, the shell would believe it is alone when it closes and checkpoint and
 * delete the WAL under the engine. After each path: the `-wal` file still exists while frames wait in
 * it (and the engine holds no descriptor of a deleted one), the shell sees every acknowledged row, and
 * closing and reopening the namespace keeps them all.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../src/engine/connection.js';
import type { NamespaceDb } from '../../src/engine/namespace-db.js';
import type { Frame } from '../../src/engine/wal/frame.js';
import { replayIntoFile } from '../../src/engine/wal/replay.js';
import { EngineScope, framesOf, inspectFile, inspectPrimary, logFrames, replayLog, replayWithSnapshots, run, type NsOptions } from '../helpers/engine-log.js';
import { cliColumn, cliCount, cliDump, holdReadTransaction, requireSqliteCli } from '../helpers/sqlite-cli.js';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

const scope = new EngineScope();
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  await scope.dispose();
});
beforeAll(async () => {
  await requireSqliteCli();
});

const SCHEMA = 'CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, v BLOB)';
const ROWS_SQL = 'SELECT id FROM t ORDER BY id;';

/** Acknowledged row ids of one namespace, in the order the shell lists them. */
class Ledger {
  private readonly ids = new Set<string>();
  private seq = 0;

  constructor(private readonly tag: string) {}

  get size(): number {
    return this.ids.size;
  }

  /** Takes over a row acknowledged elsewhere (a copied namespace holds its original's rows). */
  adopt(id: string): void {
    this.ids.add(id);
  }

  sorted(): string[] {
    return [...this.ids].sort();
  }

  /** Commits `n` rows, one autocommit insert each; ids are recorded once the insert returned. */
  async write(conn: SqlConnection, n: number, payload = 64): Promise<void> {
    await run(conn, SCHEMA);
    for (let i = 0; i < n; i++) {
      const id = `${this.tag}-${String(this.seq++).padStart(5, '0')}`;
      await run(conn, 'INSERT INTO t (id, v) VALUES (?, randomblob(?))', [id, BigInt(payload)]);
      this.ids.add(id);
    }
  }
}

async function engineIds(conn: SqlConnection): Promise<string[]> {
  const res = await run(conn, ROWS_SQL);
  return res.rows.map((r) => String(r[0]));
}

/** Descriptors of this process that name `walPath` and a deleted file of that name. */
function walDescriptors(walPath: string): { linked: number; deleted: number } {
  const real = join(realpathSync(dirname(walPath)), basename(walPath));
  let linked = 0;
  let deleted = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target === real) linked += 1;
    else if (target.startsWith(`${real} (deleted)`)) deleted += 1;
  }
  return { linked, deleted };
}

/**
 * The checks after a path that touched the files, with the namespace open and frames waiting in the
 * WAL: the shell sees every acknowledged row, and neither before nor after it is the WAL gone.
 */
async function expectOutsideReaderSafe(ns: NamespaceDb, ledger: Ledger, label: string): Promise<void> {
  const wal = `${ns.dbFile}-wal`;
  expect(framesOf(ns).pendingWalBytes(), `${label}: frames waiting in the WAL (the check needs some)`).toBeGreaterThan(0);
  expect(existsSync(wal), `${label}: -wal before the outside reader`).toBe(true);
  expect(await cliColumn(ns.dbFile, ROWS_SQL), `${label}: rows seen by sqlite3`).toEqual(ledger.sorted());
  expect(existsSync(wal), `${label}: -wal after the outside reader closed`).toBe(true);
  const dump = await cliDump(ns.dbFile);
  expect(dump.match(/^INSERT INTO t VALUES/gm)?.length ?? 0, `${label}: rows in sqlite3's .dump`).toBe(ledger.size);
  expect(existsSync(wal), `${label}: -wal after the outside .dump`).toBe(true);
  const fds = walDescriptors(wal);
  expect(fds.deleted, `${label}: descriptors of a deleted -wal in the engine's process`).toBe(0);
  expect(fds.linked, `${label}: descriptors of the -wal in the engine's process`).toBeGreaterThan(0);
}

/** Writes a few more rows after the outside reader, checks again, closes, reopens and checks once more. */
async function expectSurvivesReopen(ns: NamespaceDb, ledger: Ledger, label: string, opts: NsOptions = {}): Promise<NamespaceDb> {
  const conn = ns.connect();
  await ledger.write(conn, 3);
  conn.close();
  await expectOutsideReaderSafe(ns, ledger, `${label} (more rows)`);
  await framesOf(ns).log.drain();
  await ns.close();
  expect(existsSync(`${ns.dbFile}-wal`), `${label}: -wal after a clean close`).toBe(false);
  const again = await scope.open(ns.dir, opts);
  expect(framesOf(again).newLogReason, `${label}: the log after a clean close and reopen`).toBeNull();
  const c = again.connect();
  expect(await engineIds(c), `${label}: rows after close and reopen`).toEqual(ledger.sorted());
  await ledger.write(c, 1);
  c.close();
  expect(await cliCount(again.dbFile, 't'), `${label}: sqlite3 count after reopen`).toBe(ledger.size);
  expect(existsSync(`${again.dbFile}-wal`), `${label}: -wal after reopen and a write`).toBe(true);
  expectLogReplays(again, scope.tempDir(), label);
  return again;
}

/** The log (with its snapshots, if compacted) replays to what readers of the database see. */
function expectLogReplays(ns: NamespaceDb, scratch: string, label: string): void {
  const log = framesOf(ns).log;
  const out = join(scratch, 'replayed.db');
  if (log.startFrameNo === 0n) replayLog(log, out);
  else replayWithSnapshots(log, out);
  const replayed = inspectFile(out);
  expect(replayed.integrity, `${label}: integrity of the replayed log`).toBe('ok');
  expect(countRows(out), `${label}: rows of t in the replayed log vs the database`).toBe(countRows(ns.dbFile));
  expect(replayed.dump, `${label}: the replayed log vs the database`).toBe(inspectPrimary(ns).dump);
}

/** Rows of t in a database file (read through SQLite, so safe on a live namespace's file). */
function countRows(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return Number(db.prepare('SELECT count(*) FROM t').pluck().get());
  } finally {
    db.close();
  }
}

/**
 * Replays the log (never compacted here) one transaction at a time: t's row count must never
 * decrease (the workload only inserts), so no transaction was logged twice or out of order.
 */
function expectLogNeverGoesBack(ns: NamespaceDb, scratch: string, label: string): void {
  const log = framesOf(ns).log;
  expect(log.startFrameNo, `${label}: the log is not compacted`).toBe(0n);
  const out = join(scratch, 'stepwise.db');
  const counts: number[] = [];
  let txn: Frame[] = [];
  for (const frame of logFrames(log, 0n, { count: 0, last: null })) {
    txn.push(frame);
    if (frame.sizeAfter === 0) continue;
    replayIntoFile(out, txn);
    txn = [];
    const db = new Database(out, { readonly: true, fileMustExist: true });
    try {
      const hasT = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 't'").get() !== undefined;
      counts.push(hasT ? Number(db.prepare('SELECT count(*) FROM t').pluck().get()) : 0);
    } finally {
      db.close();
    }
  }
  const back = counts.findIndex((c, i) => i > 0 && c < counts[i - 1]!);
  expect(back, `${label}: row counts after each logged transaction: ${counts.join(' ')}`).toBe(-1);
  expect(counts.at(-1), `${label}: rows after the last logged transaction`).toBe(countRows(ns.dbFile));
}

/** `cp -p` in another process: opening and closing the files here would drop the engine's SQLite locks. */
function cpOutside(files: readonly string[], toDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('cp', ['-p', ...files, toDir], { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(`cp -p into ${toDir}: ${err.message} ${stderr}`)) : resolve()));
  });
}

/** A namespace in a fresh directory with 5 acknowledged rows; `conn` stays open. */
async function openWithRows(): Promise<{ ns: NamespaceDb; ledger: Ledger; conn: SqlConnection }> {
  const ns = await scope.open(join(scope.tempDir(), 'ns'));
  const ledger = new Ledger('r');
  const conn = ns.connect();
  await ledger.write(conn, 5);
  return { ns, ledger, conn };
}

describe('sqlite3 as an outside reader after each engine path that touches the files', () => {
  it('seeding a new log in a fresh directory', async () => {
    const { ns, ledger, conn } = await openWithRows();
    expect(framesOf(ns).newLogReason, 'a fresh directory seeds a new log').not.toBeNull();
    conn.close();
    await expectOutsideReaderSafe(ns, ledger, 'fresh seed');
    await expectSurvivesReopen(ns, ledger, 'fresh seed');
  });

  it.each([
    ['deleted', (wallog: string): void => rmSync(wallog)],
    ['corrupt', (wallog: string): void => writeFileSync(wallog, Buffer.alloc(4096, 0xab))],
  ])('seeding a new log from an existing database whose log is %s', async (_what, damage) => {
    const { ns, ledger, conn } = await openWithRows();
    conn.close();
    await ns.close();
    damage(join(ns.dir, 'wallog'));
    const reopened = await scope.open(ns.dir);
    expect(framesOf(reopened).newLogReason, 'a new log was seeded').not.toBeNull();
    const c = reopened.connect();
    expect(await engineIds(c)).toEqual(ledger.sorted());
    await ledger.write(c, 2);
    c.close();
    await expectOutsideReaderSafe(reopened, ledger, 'seed from an existing database');
    await expectSurvivesReopen(reopened, ledger, 'seed from an existing database');
  });

  it('recovery from a state copied while the namespace was open (with its log, without its log, without its -wal)', async () => {
    const { ns, ledger, conn } = await openWithRows();
    // The database file holds these rows; the next ones are only in the WAL (and the log).
    expect(framesOf(ns).checkpointNow(), 'checkpoint before the copy').toBe(true);
    const inDatabaseFile = ledger.sorted();
    await ledger.write(conn, 5);
    // The log file holds the new frames too, as after a checkpoint or 1 MB of appends.
    framesOf(ns).log.flush();
    const copies = [
      { label: 'copy with its log', files: ['data', 'data-wal', 'wallog', 'wallog-capture', '.sentinel'], rows: ledger.sorted(), continues: true },
      { label: 'copy without its log', files: ['data', 'data-wal', 'wallog-capture', '.sentinel'], rows: ledger.sorted(), continues: false },
      // A backup that took the database and the log but not the -wal (or a -wal removed after a
      // crash): the database lacks the log's last transactions, so that log cannot go on.
      { label: 'copy without its -wal', files: ['data', 'wallog', 'wallog-capture', '.sentinel'], rows: inDatabaseFile, continues: null },
    ];
    const dirs: string[] = [];
    for (const copy of copies) {
      const dir = join(scope.tempDir(), 'ns');
      mkdirSync(dir);
      await cpOutside(
        copy.files.map((f) => join(ns.dir, f)),
        dir,
      );
      dirs.push(dir);
    }
    // The original keeps working with the shell next to it.
    await expectOutsideReaderSafe(ns, ledger, 'original after the copy');

    for (const [i, { label, rows, continues }] of copies.entries()) {
      const copyLedger = new Ledger('copy');
      for (const id of rows) copyLedger.adopt(id);
      const copy = await scope.open(dirs[i]!);
      expect(framesOf(copy).uncleanShutdown, `${label}: recovery after an unclean stop`).toBe(true);
      if (continues === true) expect(framesOf(copy).newLogReason, `${label}: the copied log continues`).toBeNull();
      if (continues === false) expect(framesOf(copy).newLogReason, `${label}: a new log is seeded`).not.toBeNull();
      const c = copy.connect();
      expect(await engineIds(c), `${label}: rows recovered`).toEqual(copyLedger.sorted());
      expectLogReplays(copy, scope.tempDir(), `${label}, right after recovery`);
      await copyLedger.write(c, 2);
      c.close();
      await expectOutsideReaderSafe(copy, copyLedger, label);
      await expectSurvivesReopen(copy, copyLedger, label);
    }
    conn.close();
    await expectSurvivesReopen(ns, ledger, 'original after the copy');
  });

  it('compaction, and a snapshot being built and handed to --snapshot-exec', async () => {
    const dir = scope.tempDir();
    const probeOut = join(dir, 'probe.out');
    const probe = join(dir, 'probe.sh');
    const nsDir = join(dir, 'ns');
    // Runs while the compacted log's snapshot is being processed: the shell reads the live database.
    writeFileSync(probe, `#!/bin/sh\nsqlite3 -batch ${shellQuote(join(nsDir, 'data'))} ${shellQuote(ROWS_SQL)} > ${shellQuote(`${probeOut}.tmp`)} 2>&1\necho "exit $?" >> ${shellQuote(`${probeOut}.tmp`)}\nmv ${shellQuote(`${probeOut}.tmp`)} ${shellQuote(probeOut)}\n`);
    chmodSync(probe, 0o755);
    const opts: NsOptions = { maxFrames: 20n, snapshotExec: probe, dbPath: dir };
    const ns = await scope.open(nsDir, opts);
    const ledger = new Ledger('c');
    const conn = ns.connect();
    for (let i = 0; i < 200 && framesOf(ns).log.startFrameNo === 0n; i++) await ledger.write(conn, 1, 512);
    expect(framesOf(ns).log.startFrameNo, 'the log was compacted').toBeGreaterThan(0n);
    await framesOf(ns).log.drain();
    expect(readdirSync(join(nsDir, 'snapshots')).length, 'snapshots after compaction').toBeGreaterThan(0);
    const probed = readFileSync(probeOut, 'utf8').trim().split('\n');
    expect(probed.at(-1), `sqlite3 during the snapshot: ${probed.join(' | ')}`).toBe('exit 0');
    expect(probed.slice(0, -1), 'rows seen by sqlite3 while the snapshot was handed over').toEqual(ledger.sorted());
    conn.close();
    await expectOutsideReaderSafe(ns, ledger, 'after compaction');
    await expectSurvivesReopen(ns, ledger, 'after compaction', opts);
  });

  it('checkpoints: checkpointNow() and checkpoint()', async () => {
    const { ns, ledger, conn } = await openWithRows();
    const frames = framesOf(ns);
    expect(frames.checkpointNow(), 'checkpointNow() completed').toBe(true);
    expect(frames.pendingWalBytes()).toBe(0);
    // Fully checkpointed: the shell must still not find itself alone when it closes.
    expect(await cliColumn(ns.dbFile, ROWS_SQL), 'rows seen by sqlite3 after checkpointNow()').toEqual(ledger.sorted());
    await ledger.write(conn, 3);
    await expectOutsideReaderSafe(ns, ledger, 'after checkpointNow()');
    expect(await frames.checkpoint(), 'checkpoint() completed').toBe(true);
    expect(await cliCount(ns.dbFile, 't'), 'sqlite3 count after checkpoint()').toBe(ledger.size);
    await ledger.write(conn, 3);
    await expectOutsideReaderSafe(ns, ledger, 'after checkpoint()');
    conn.close();
    await expectSurvivesReopen(ns, ledger, 'after checkpoints');
  });

  it('startNewLog()', async () => {
    const { ns, ledger, conn } = await openWithRows();
    const before = framesOf(ns).logId;
    await framesOf(ns).startNewLog('test: a new log');
    expect(framesOf(ns).logId, 'log_id after startNewLog').not.toBe(before);
    expect(await cliColumn(ns.dbFile, ROWS_SQL), 'rows seen by sqlite3 right after startNewLog').toEqual(ledger.sorted());
    await ledger.write(conn, 3);
    conn.close();
    await expectOutsideReaderSafe(ns, ledger, 'after startNewLog');
    const newId = framesOf(ns).logId;
    const again = await expectSurvivesReopen(ns, ledger, 'after startNewLog');
    expect(framesOf(again).logId, 'the new log continues after reopen').toBe(newId);
  });

  it('startNewLog() while an outside reader holds a read transaction: refused or done, the log never goes back', async () => {
    const { ns, ledger, conn } = await openWithRows();
    await ledger.write(conn, 5);
    const frames = framesOf(ns);
    const before = frames.logId;
    const held = await holdReadTransaction(ns.dbFile, 't');
    expect(held.count, 'rows in the outside snapshot').toBe(ledger.size);
    let outcome: string;
    try {
      try {
        await frames.startNewLog('test: a new log next to an outside reader');
        outcome = 'done';
      } catch (err) {
        outcome = `refused: ${err instanceof Error ? err.message : String(err)}`;
      }
      // Writes go on while the outside reader still pins its snapshot (the WAL cannot restart).
      await ledger.write(conn, 2);
    } finally {
      await held.release();
    }
    console.log(`startNewLog next to an outside read transaction: ${outcome}`);
    if (outcome === 'done') expect(frames.logId, 'log_id after startNewLog').not.toBe(before);
    else expect(frames.logId, 'log_id after a refused startNewLog').toBe(before);
    await ledger.write(conn, 2);
    conn.close();
    expectLogNeverGoesBack(ns, scope.tempDir(), `after startNewLog ${outcome}`);
    await expectOutsideReaderSafe(ns, ledger, `after startNewLog ${outcome}`);
    await expectSurvivesReopen(ns, ledger, `after startNewLog ${outcome}`);
  });

  it('GET /dump on a real server (in this process)', async () => {
    const dbPath = join(scope.tempDir(), 'data.sqld');
    const data = join(dbPath, 'dbs', 'default', 'data');
    const ledger: string[] = [];
    const insert = async (url: string, ids: string[]): Promise<void> => {
      const requests = [{ type: 'execute', stmt: { sql: SCHEMA } }, ...ids.map((id) => ({ type: 'execute', stmt: { sql: 'INSERT INTO t (id, v) VALUES (?, zeroblob(16))', args: [{ type: 'text', value: id }] } })), { type: 'close' }];
      const res = await postJson(`${url}/v2/pipeline`, { baton: null, requests });
      const results = (res.body as { results?: { type: string }[] }).results ?? [];
      expect(res.status, res.text).toBe(200);
      expect(results.map((r) => r.type), res.text).toEqual(requests.map(() => 'ok'));
      ledger.push(...ids);
    };
    const first = await startTestServer({ 'db-path': dbPath });
    servers.push(first);
    await insert(first.url, ['d-1', 'd-2', 'd-3']);
    const dump = await fetch(`${first.url}/dump`);
    const script = await dump.text();
    expect(dump.status, script).toBe(200);
    expect(script.match(/^INSERT INTO t VALUES/gm)?.length, 'rows in GET /dump').toBe(3);
    expect(existsSync(`${data}-wal`), '-wal after GET /dump').toBe(true);
    expect(await cliColumn(data, ROWS_SQL), 'rows seen by sqlite3 after GET /dump').toEqual([...ledger].sort());
    expect(existsSync(`${data}-wal`), '-wal after GET /dump and the outside reader').toBe(true);
    await insert(first.url, ['d-4']);
    expect(await cliCount(data, 't'), 'sqlite3 count after another write').toBe(ledger.length);
    expect(existsSync(`${data}-wal`), '-wal after the outside count').toBe(true);
    expect(walDescriptors(`${data}-wal`).deleted, 'descriptors of a deleted -wal').toBe(0);
    await first.close();
    servers.splice(servers.indexOf(first), 1);

    const second = await startTestServer({ 'db-path': dbPath });
    servers.push(second);
    const rows = await postJson(`${second.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt: { sql: ROWS_SQL } }, { type: 'close' }] });
    const got = (rows.body as { results: { response: { result: { rows: { value: string }[][] } } }[] }).results[0]!.response.result.rows.map((r) => r[0]!.value);
    expect(got, 'rows after a restart').toEqual([...ledger].sort());
    await insert(second.url, ['d-5']);
    expect(await cliColumn(data, ROWS_SQL), 'rows seen by sqlite3 after the restart').toEqual([...ledger].sort());
    expect(existsSync(`${data}-wal`), '-wal after the restart and the outside reader').toBe(true);
  });
});

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}
