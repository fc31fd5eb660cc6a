import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { replayIntoFile } from '../../src/engine/wal/replay.js';
import { WalReader } from '../../src/engine/wal/sqlite-wal.js';
import { WallogFile } from '../../src/engine/wal/wallog-file.js';
import { killAllChildServers, killChild, startChildServer, stopChild, type ChildServer } from '../helpers/child-server.js';
import { inspectFile, wallogHeader } from '../helpers/engine-log.js';
import { cliColumn, cliCount, cliDump, requireSqliteCli, sqliteCli } from '../helpers/sqlite-cli.js';
import { type Json, isObj, pipeline } from '../helpers/pipeline.js';

/**
 * `libsqlctl serve` (child process) sharing its database with other processes — the `sqlite3`
 * shell, `cp` (design.md §4, "POSIX locks"; docs/REPLICATION_LOG.md): outside readers must not make
 * SQLite believe it is alone (it would checkpoint and delete the WAL under the server), outside
 * writes and checkpoints never leave a silent gap in the replication log, and a database file
 * replaced while the server is stopped starts a new log. After every scenario the whole `wallog`,
 * replayed into an empty file, must give the database.
 */

const UNCLEAN_RE = /did not shut down cleanly/;
const REQUEST_TIMEOUT_MS = 10_000;
/** The server polls for outside commits every second; this bounds waiting for it. */
const CAPTURE_BOUND_MS = 5000;
/** Each test starts a few servers (about 1.5 s each on an idle machine); bound for loaded ones. */
const TEST_TIMEOUT_MS = 60_000;

const text = (v: string): Json => ({ type: 'text', value: v });

interface StmtOutcome {
  rows: unknown[][];
  affected: number;
  /** sqld's replication_index of the result (a decimal string), or null. */
  replicationIndex: bigint | null;
}

/** One pipeline of statements on a fresh stream; every statement must succeed. */
async function execAll(url: string, stmts: { sql: string; args?: Json[] }[]): Promise<StmtOutcome[]> {
  const res = await pipeline(url, stmts.map((stmt) => ({ type: 'execute', stmt })), REQUEST_TIMEOUT_MS);
  const { body, raw } = res;
  const results = isObj(body) && Array.isArray(body.results) ? (body.results as unknown[]) : [];
  return stmts.map((stmt, i) => {
    const r = results[i];
    const result = isObj(r) && r.type === 'ok' && isObj(r.response) && isObj(r.response.result) ? r.response.result : null;
    if (res.status !== 200 || result === null || !Array.isArray(result.rows)) throw new Error(`${stmt.sql}: HTTP ${res.status} ${raw.slice(0, 500)}`);
    const index = result.replication_index;
    return {
      rows: result.rows.filter(Array.isArray),
      affected: typeof result.affected_row_count === 'number' ? result.affected_row_count : -1,
      replicationIndex: typeof index === 'string' ? BigInt(index) : null,
    };
  });
}

async function exec(url: string, sql: string, args: Json[] = []): Promise<StmtOutcome> {
  const [out] = await execAll(url, [{ sql, args }]);
  return out!;
}

function cellText(v: unknown): string {
  if (!isObj(v) || typeof v.value !== 'string') throw new Error(`unexpected cell ${JSON.stringify(v)}`);
  return v.value;
}

/** The ids of t as the server sees them, in order. */
async function serverIds(url: string): Promise<string[]> {
  return (await exec(url, 'SELECT id FROM t ORDER BY id')).rows.map((r) => cellText(r[0]));
}

/** Inserts acknowledged rows (one autocommit statement each) and records them. */
async function insertRows(url: string, ids: readonly string[], acked: Set<string>): Promise<bigint | null> {
  let index: bigint | null = null;
  for (const id of ids) {
    const r = await exec(url, 'INSERT INTO t(id, v) VALUES (?, ?)', [text(id), text(`value of ${id}`)]);
    expect(r.affected, `insert of ${id}`).toBe(1);
    acked.add(id);
    index = r.replicationIndex;
  }
  return index;
}

const sorted = (ids: Iterable<string>): string[] => [...ids].sort();

/** Files of the default namespace under a `--db-path`. */
function nsFiles(dbPath: string): { nsDir: string; data: string; wal: string; shm: string; wallog: string } {
  const nsDir = path.join(dbPath, 'dbs', 'default');
  const data = path.join(nsDir, 'data');
  return { nsDir, data, wal: `${data}-wal`, shm: `${data}-shm`, wallog: path.join(nsDir, 'wallog') };
}

/**
 * The server still uses the `-wal` file that has the name (Linux /proc): it holds a descriptor of it
 * and none of a deleted one. A WAL deleted under the server by a process that believed it was alone
 * shows up here as `data-wal (deleted)`.
 */
function expectWalLinked(server: ChildServer, walPath: string, label: string): void {
  expect(fs.existsSync(walPath), `${label}: ${path.basename(walPath)} exists`).toBe(true);
  const real = path.join(fs.realpathSync(path.dirname(walPath)), path.basename(walPath));
  const fdDir = `/proc/${server.pid}/fd`;
  const links: string[] = [];
  for (const fd of fs.readdirSync(fdDir)) {
    try {
      links.push(fs.readlinkSync(path.join(fdDir, fd)));
    } catch {
      // closed meanwhile
    }
  }
  expect(links.filter((l) => l.startsWith(`${real} (deleted)`)), `${label}: descriptors of a deleted WAL in the server`).toEqual([]);
  expect(links.filter((l) => l === real).length, `${label}: descriptors of the WAL in the server`).toBeGreaterThan(0);
}

/**
 * Whether a checkpoint of the server covered every committed frame of the WAL generation on disk:
 * `wallog-capture` names that generation's salts and its `checkpointedFrames` equals the frames the
 * WAL holds (read here by another process, which takes no SQLite lock). Returns why not, or null.
 */
function uncheckpointed(nsDir: string, walPath: string): string | null {
  let state: { salt1?: unknown; salt2?: unknown; checkpointedFrames?: unknown };
  try {
    state = JSON.parse(fs.readFileSync(path.join(nsDir, 'wallog-capture'), 'utf8')) as typeof state;
  } catch (err) {
    return `wallog-capture unreadable: ${String(err)}`;
  }
  const reader = new WalReader(walPath);
  try {
    const frames = reader.readCommitted().transactions.reduce((n, t) => n + t.frames.length, 0);
    const salts = reader.salts;
    if (salts === null || frames === 0) return 'no WAL frames';
    if (state.salt1 !== salts.salt1 || state.salt2 !== salts.salt2) return 'wallog-capture names another WAL generation';
    if (state.checkpointedFrames !== frames) return `checkpointed ${String(state.checkpointedFrames)} of ${frames} frames`;
    return null;
  } finally {
    reader.close();
  }
}

function logIdOf(wallog: string): string {
  return wallogHeader(wallog).logId;
}

/**
 * With the server stopped: the database is intact, and replaying its whole `wallog` (never compacted
 * here) into an empty file gives the same schema and rows. Returns the log id.
 */
function expectLogReplaysToDatabase(dbPath: string, label: string): string {
  const { data, wal, wallog } = nsFiles(dbPath);
  // After a clean stop SQLite has checkpointed and removed the WAL. The database is inspected as a
  // copy: a read-only connection on the original would leave empty -wal and -shm files behind.
  expect(fs.existsSync(wal), `${label}: the WAL after a clean stop`).toBe(false);
  const work = fs.mkdtempSync(path.join(scratch, 'replay-'));
  const copied = path.join(work, 'copy');
  fs.copyFileSync(data, copied);
  const real = inspectFile(copied);
  expect(real.integrity, `${label}: integrity_check of the database`).toBe('ok');
  const replayed = path.join(work, 'db');
  const log = WallogFile.open(wallog, { readOnly: true });
  let logId: string;
  try {
    logId = log.logId;
    expect(log.startFrameNo, `${label}: the log was compacted (a replay of wallog alone is not the database)`).toBe(0n);
    const result = replayIntoFile(replayed, log.iterateFrames());
    expect(result.framesSkipped, `${label}: uncommitted frames at the end of the log`).toBe(0);
  } finally {
    log.close();
  }
  const copy = inspectFile(replayed);
  expect(copy.integrity, `${label}: integrity_check of the replayed log`).toBe('ok');
  expect(copy.dump, `${label}: the replayed log vs the database`).toBe(real.dump);
  return logId;
}

/** Size and a digest of page 1 of a file nobody has open. */
function fileHead(file: string): { size: number; page1: string } {
  const bytes = fs.readFileSync(file);
  return { size: bytes.length, page1: createHash('sha1').update(bytes.subarray(0, 4096)).digest('hex') };
}

function cp(from: string, to: string, preserve = false): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('cp', [...(preserve ? ['-p'] : []), from, to], { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(`cp ${from} ${to}: ${err.message} ${stderr}`)) : resolve()));
  });
}

let scratch = '';

/** The servers of one test (their stderr goes into the failure report). */
class Servers {
  private readonly list: ChildServer[] = [];

  async start(dbPath: string, args: readonly string[] = []): Promise<ChildServer> {
    const s = await startChildServer(dbPath, args);
    this.list.push(s);
    return s;
  }

  report(): string {
    return this.list.map((s) => `--- server ${s.pid} stderr:\n${s.stderr()}`).join('\n');
  }
}

/** The salts of the `-wal` header (read by this process, which holds no SQLite lock on the file). */
function walSalts(walPath: string): string {
  const fd = fs.openSync(walPath, 'r');
  try {
    const header = Buffer.alloc(32);
    expect(fs.readSync(fd, header, 0, 32, 0), 'WAL header size').toBe(32);
    return header.subarray(16, 24).toString('hex');
  } finally {
    fs.closeSync(fd);
  }
}

async function stopClean(s: ChildServer, label: string): Promise<void> {
  expect(await stopChild(s), `${label}: clean stop (stderr:\n${s.stderr()})`).toEqual({ code: 0, signal: null });
}

beforeAll(async () => {
  await requireSqliteCli();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-outside-'));
});

afterAll(async () => {
  await killAllChildServers();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe.concurrent('serve next to other processes on the same database', () => {
  it('the self-hosting walkthrough: sqlite3 .dump and count while serving, kill -9, restart, log replay', async ({ onTestFailed }) => {
    const servers = new Servers();
    onTestFailed(() => console.error(servers.report()));
    const dbPath = fs.mkdtempSync(path.join(scratch, 'walk-'));
    const { data, wal } = nsFiles(dbPath);
    const acked = new Set<string>();
    const first = await servers.start(dbPath);
    await exec(first.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)');
    await insertRows(first.url, ['row-1', 'row-2'], acked);

    const dump = await cliDump(data);
    expect(dump, 'sqlite3 .dump while the server runs').toContain("INSERT INTO t VALUES('row-1','value of row-1');");
    expect(dump).toContain("INSERT INTO t VALUES('row-2','value of row-2');");
    expectWalLinked(first, wal, 'after the outside .dump');

    await insertRows(first.url, ['row-3', 'row-4'], acked);
    expectWalLinked(first, wal, 'after two more rows');
    expect(await cliCount(data, 't'), 'sqlite3 count(*) while the server runs').toBe(4);
    expectWalLinked(first, wal, 'after the outside count');

    expect((await killChild(first)).signal).toBe('SIGKILL');
    const second = await servers.start(dbPath);
    expect(second.stderr(), 'restart after kill -9').toMatch(UNCLEAN_RE);
    expect(await serverIds(second.url), 'rows after kill -9 and restart').toEqual(sorted(acked));
    expect((await exec(second.url, 'PRAGMA integrity_check')).rows.map((r) => cellText(r[0])), 'integrity_check after restart').toEqual(['ok']);
    await stopClean(second, 'walkthrough');
    expectLogReplaysToDatabase(dbPath, 'walkthrough');
  }, TEST_TIMEOUT_MS);

  it('an outside writer between our commits is captured (or starts a new log), and an outside TRUNCATE checkpoint loses nothing', async ({ onTestFailed }) => {
    const servers = new Servers();
    onTestFailed(() => console.error(servers.report()));
    const dbPath = fs.mkdtempSync(path.join(scratch, 'writer-'));
    const { nsDir, data, wal, wallog } = nsFiles(dbPath);
    const acked = new Set<string>();
    const outside = (id: string): Promise<string> => sqliteCli(data, [`INSERT INTO t(id, v) VALUES ('${id}', 'written by sqlite3');`]);
    /** Waits (bounded) until the server's replication_index differs from `before`: it captured the outside commit. */
    const captured = (url: string, before: bigint | null, label: string): Promise<void> =>
      vi.waitFor(
        async () => {
          const idx = (await exec(url, 'SELECT count(*) FROM t')).replicationIndex;
          expect(idx, `${label}: replication_index after the outside commit`).not.toBe(before);
        },
        { timeout: CAPTURE_BOUND_MS, interval: 100 },
      );

    const first = await servers.start(dbPath);
    await exec(first.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)');
    const before = await insertRows(first.url, ['srv-1', 'srv-2'], acked);
    expect(before, 'replication_index of our last insert').not.toBeNull();
    // 1. An outside commit while the server is idle: found by the server's poll.
    await outside('out-1');
    acked.add('out-1');
    await captured(first.url, before, 'idle server');
    // 2. An outside commit right before one of ours: captured at our commit at the latest.
    await outside('out-2');
    acked.add('out-2');
    await insertRows(first.url, ['srv-3'], acked);
    expect(await serverIds(first.url), 'the server sees the outside rows').toEqual(sorted(acked));
    expectWalLinked(first, wal, 'after the outside writers');
    // 3. An outside TRUNCATE checkpoint while the WAL holds frames no checkpoint of ours covered.
    const walBytes = fs.statSync(wal).size;
    const answer = (await sqliteCli(data, ['PRAGMA wal_checkpoint(TRUNCATE);'], { busyTimeoutMs: 0 })).trim();
    expect(answer.split('|')[0], `outside wal_checkpoint(TRUNCATE) answered ${answer}: the read guard must keep it from completing`).toBe('1');
    expect(fs.statSync(wal).size, 'WAL size after the outside TRUNCATE').toBe(walBytes);
    expectWalLinked(first, wal, 'after the outside TRUNCATE');
    await insertRows(first.url, ['srv-4'], acked);
    expect(await cliCount(data, 't'), 'outside count after the outside TRUNCATE').toBe(acked.size);

    expect((await killChild(first)).signal).toBe('SIGKILL');
    const logBefore = logIdOf(wallog);
    // 4. The same after a restart with periodic checkpoints: an outside commit after our checkpoint
    // restarts the WAL (new salts) behind the server, and an outside TRUNCATE may now complete.
    const second = await servers.start(dbPath, ['--checkpoint-interval-s', '1']);
    expect(second.stderr(), 'restart after kill -9').toMatch(UNCLEAN_RE);
    expect(await serverIds(second.url), 'rows after the outside TRUNCATE, kill -9 and restart').toEqual(sorted(acked));
    await insertRows(second.url, ['srv-5'], acked);
    await vi.waitFor(() => expect(uncheckpointed(nsDir, wal), 'a checkpoint of ours covering the WAL').toBeNull(), { timeout: CAPTURE_BOUND_MS, interval: 50 });
    const afterCheckpoint = (await exec(second.url, 'SELECT 1')).replicationIndex;
    const saltsBefore = walSalts(wal);
    await outside('out-3');
    expect(walSalts(wal), 'the outside commit after our complete checkpoint restarted the WAL').not.toBe(saltsBefore);
    acked.add('out-3');
    await captured(second.url, afterCheckpoint, 'after our checkpoint');
    await insertRows(second.url, ['srv-6'], acked);
    await sqliteCli(data, ['PRAGMA wal_checkpoint(TRUNCATE);'], { busyTimeoutMs: 0 });
    await insertRows(second.url, ['srv-7'], acked);
    await outside('out-4');
    acked.add('out-4');
    expect(await serverIds(second.url), 'rows seen by the restarted server').toEqual(sorted(acked));
    expect(await cliCount(data, 't'), 'outside count on the restarted server').toBe(acked.size);
    await stopClean(second, 'outside writer');
    const logAfter = expectLogReplaysToDatabase(dbPath, 'outside writer');
    expect(await cliColumn(data, 'SELECT id FROM t ORDER BY id;'), 'rows of the database after a clean stop').toEqual(sorted(acked));
    console.log(`outside writer: log ${logBefore.slice(0, 8)} -> ${logAfter.slice(0, 8)}${logAfter === logBefore ? ' (continued)' : ' (new log)'}`);
  }, TEST_TIMEOUT_MS);

  it('a database file replaced while stopped (another database, an older copy) starts a new log that replays to it', async ({ onTestFailed }) => {
    const servers = new Servers();
    onTestFailed(() => console.error(servers.report()));
    const dbPath = fs.mkdtempSync(path.join(scratch, 'replaced-'));
    const { data, wal, shm, wallog } = nsFiles(dbPath);
    const acked = new Set<string>();
    const first = await servers.start(dbPath);
    await exec(first.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)');
    await insertRows(first.url, ['a-1', 'a-2', 'a-3'], acked);
    await stopClean(first, 'before the replacement');
    const logA = expectLogReplaysToDatabase(dbPath, 'before the replacement');

    // Another database, made by the sqlite3 shell in WAL mode (page size 4096).
    const other = path.join(scratch, `other-${path.basename(dbPath)}.db`);
    await sqliteCli(other, [
      'PRAGMA page_size = 4096;',
      'PRAGMA journal_mode = WAL;',
      'CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT);',
      "INSERT INTO t VALUES ('other-1', 'x'), ('other-2', 'y');",
      'CREATE TABLE extra(n INTEGER);',
      'INSERT INTO extra VALUES (42);',
    ]);
    expect((await sqliteCli(other, ['PRAGMA page_size;'])).trim()).toBe('4096');
    expect(fs.existsSync(`${other}-wal`), 'the sqlite3 shell removed its WAL').toBe(false);
    expect([fs.existsSync(wal), fs.existsSync(shm)], '-wal and -shm after a clean stop').toEqual([false, false]);
    await cp(other, data);
    const second = await servers.start(dbPath);
    expect(await serverIds(second.url), 'rows of the replacing database').toEqual(['other-1', 'other-2']);
    expect((await exec(second.url, 'SELECT n FROM extra')).rows.map((r) => cellText(r[0]))).toEqual(['42']);
    await insertRows(second.url, ['b-1'], new Set());
    await stopClean(second, 'replaced by another database');
    const logB = expectLogReplaysToDatabase(dbPath, 'replaced by another database');
    expect(logB, 'log_id after the database was replaced').not.toBe(logA);

    // An older state of the same database: copied after a checkpoint (the clean stop), then the
    // database changes in place (same size and page 1), and the old copy comes back with its mtime.
    const older = path.join(scratch, `older-${path.basename(dbPath)}.db`);
    await cp(data, older, true);
    const olderIds = await cliColumn(older, 'SELECT id FROM t ORDER BY id;');
    const third = await servers.start(dbPath);
    await exec(third.url, "UPDATE t SET v = 'changed' WHERE id = 'other-1'");
    await stopClean(third, 'newer state');
    const logC = expectLogReplaysToDatabase(dbPath, 'newer state');
    expect(logC, 'log_id across a clean restart').toBe(logB);
    // Only the modification time tells the two files apart.
    expect(fileHead(older), 'size and page 1 of the older copy vs the database').toEqual(fileHead(data));
    await cp(older, data, true);
    const fourth = await servers.start(dbPath);
    expect(await serverIds(fourth.url), 'rows of the older copy').toEqual(olderIds);
    expect((await exec(fourth.url, "SELECT v FROM t WHERE id = 'other-1'")).rows.map((r) => cellText(r[0])), 'the older copy is served').toEqual(['x']);
    await stopClean(fourth, 'older copy');
    const logD = expectLogReplaysToDatabase(dbPath, 'older copy');
    expect(logD, 'log_id after an older copy of the database came back').not.toBe(logC);
    expect(logIdOf(wallog)).toBe(logD);
  }, TEST_TIMEOUT_MS);

  it('sqlite3 .dump while the server is stopped after kill -9 (sqlite3 checkpoints and deletes the WAL): all rows at restart, the log consistent', async ({
    onTestFailed,
  }) => {
    const servers = new Servers();
    onTestFailed(() => console.error(servers.report()));
    const dbPath = fs.mkdtempSync(path.join(scratch, 'stopped-dump-'));
    const { nsDir, data, wal, wallog } = nsFiles(dbPath);
    const acked = new Set<string>();
    const first = await servers.start(dbPath);
    await exec(first.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)');
    await insertRows(first.url, ['k-1', 'k-2', 'k-3'], acked);
    expect((await killChild(first)).signal).toBe('SIGKILL');
    const logBefore = logIdOf(wallog);
    expect(fs.statSync(wal).size, 'WAL frames left by the killed server').toBeGreaterThan(32);

    const dump = await cliDump(data);
    for (const id of acked) expect(dump, `outside .dump of the stopped database shows ${id}`).toContain(`'${id}'`);
    expect(fs.existsSync(wal), 'sqlite3, alone on the database, checkpointed and deleted the WAL').toBe(false);

    const second = await servers.start(dbPath, ['--checkpoint-interval-s', '1']);
    expect(await serverIds(second.url), 'rows after the outside checkpoint of the stopped database').toEqual(sorted(acked));
    await insertRows(second.url, ['k-4'], acked);

    // Again, with every frame checkpointed by the server before the kill: the outside shell then
    // finds nothing new to checkpoint, yet deletes the WAL the capture state names.
    await vi.waitFor(() => expect(uncheckpointed(nsDir, wal), 'a checkpoint of ours covering the WAL').toBeNull(), { timeout: CAPTURE_BOUND_MS, interval: 50 });
    expect((await killChild(second)).signal).toBe('SIGKILL');
    const logMiddle = logIdOf(wallog);
    expect(await cliColumn(data, 'SELECT id FROM t ORDER BY id;'), 'outside reader of the stopped database').toEqual(sorted(acked));
    expect(fs.existsSync(wal), 'sqlite3 deleted the checkpointed WAL').toBe(false);
    const third = await servers.start(dbPath);
    expect(await serverIds(third.url), 'rows after the second outside reader').toEqual(sorted(acked));
    await insertRows(third.url, ['k-5'], acked);
    await stopClean(third, 'after the outside dumps');
    const logAfter = expectLogReplaysToDatabase(dbPath, 'after the outside dumps');
    expect(await cliColumn(data, 'SELECT id FROM t ORDER BY id;')).toEqual(sorted(acked));
    const change = (a: string, b: string): string => `${a.slice(0, 8)} -> ${b.slice(0, 8)}${a === b ? ' (continued)' : ' (new log)'}`;
    console.log(`stopped dump: log ${change(logBefore, logMiddle)}, then ${change(logMiddle, logAfter)}`);
  }, TEST_TIMEOUT_MS);
});
