import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../src/engine/connection.js';
import { resolveServeConfig } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import { NamespaceDb } from '../../src/engine/namespace-db.js';
import { PrimaryRole } from '../../src/engine/roles/primary-role.js';
import type { SqlArgs } from '../../src/engine/values.js';
import { ConfigError } from '../../src/errors.js';
import { loadWatchdogAddon, StatementWatchdog, WATCHDOG_LIBRARY, WATCHDOG_POLL_MS } from '../../src/engine/watchdog.js';
import { framesOf, inspectFile, inspectPrimary, replayLog } from '../helpers/engine-log.js';
import { cliScratch, startChildServer, stopChild, within } from '../helpers/child-server.js';
import { LEVEL, LogCapture } from '../helpers/log-capture.js';
import { postJson, startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/** `--max-statement-duration-s` (docs/LIMITS.md "Runaway statements"): native/watchdog.c interrupts it. */

const ENDLESS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)';
const ENDLESS_COUNT = `${ENDLESS} SELECT count(*) FROM c`;
const ENDLESS_ROWS = `${ENDLESS} SELECT x FROM c`;
/** Writes 4 KiB rows without end: more than SQLite's page cache within the limit, so pages spill into the WAL. */
const ENDLESS_INSERT = `INSERT INTO t (v) SELECT randomblob(4096) FROM (${ENDLESS_ROWS})`;
const bounded = (n: number): string => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ${n}) SELECT count(*) FROM c`;
const NO_ARGS: SqlArgs = { positional: [], named: new Map() };

function addon(): Exclude<ReturnType<typeof loadWatchdogAddon>, Error>['addon'] {
  const lib = loadWatchdogAddon();
  if (lib instanceof Error) throw lib;
  return lib.addon;
}

describe('the watchdog library', () => {
  it('was built from source by the install (binding.gyp) and loads as both addon and extension, sharing one copy', () => {
    expect(fs.existsSync(WATCHDOG_LIBRARY), `${WATCHDOG_LIBRARY} is missing: \`npm ci\` builds it (npm run build:native)`).toBe(true);
    const lib = addon();
    const before = lib.stats().slotsInUse;
    const db = new Database(':memory:');
    try {
      db.loadExtension(WATCHDOG_LIBRARY);
      expect(typeof db.prepare('SELECT libsqlctl_watchdog_slot()').pluck().get()).toBe('number');
      // The extension's slot table is the addon's: the same file is mapped once.
      expect(lib.stats().slotsInUse).toBe(before + 1);
      expect(() => db.prepare("SELECT load_extension('nothing')").get()).toThrow(/not authorized/);
    } finally {
      db.close();
    }
    expect(lib.stats().slotsInUse).toBe(before);
  });

  it('when it cannot be loaded, the server is told once and runs without it', () => {
    const logs = new LogCapture();
    expect(StatementWatchdog.open(1000, logs.logger, path.join(os.tmpdir(), 'no-such-directory', 'watchdog.node'))).toBeNull();
    expect(logs.find(/statement watchdog is not available/, LEVEL.warn)).toHaveLength(1);
  });
});

describe('--max-statement-duration-s', () => {
  const limitOf = async (value?: string): Promise<number> =>
    (await resolveServeConfig({ ...serveFlagDefaults(), ...(value === undefined ? {} : { 'max-statement-duration-s': value }) }, {})).limits.maxStatementDurationMs;

  it('is 10 s by default, takes fractions, is off at 0, and refuses what is not a duration', async () => {
    expect(await limitOf()).toBe(10_000);
    expect(await limitOf('0.25')).toBe(250);
    expect(await limitOf('0')).toBe(0);
    for (const bad of ['-1', 'ten', '3000000']) await expect(limitOf(bad)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('engine connections', () => {
  const LIMIT_MS = 100;
  const logs = new LogCapture();
  let watchdog: StatementWatchdog;
  let ns: NamespaceDb;
  let conn: SqlConnection;
  const opts = { allowWrite: true, maxResponseBytes: 1e9 };

  beforeAll(async () => {
    watchdog = StatementWatchdog.open(LIMIT_MS, logs.logger)!;
    expect(watchdog).not.toBeNull();
    const before = addon().stats().slotsInUse;
    const dir = tempDir();
    ns = new NamespaceDb({
      paths: new NamespacePaths(path.join(dir, 'ns')),
      name: 'engine-ns',
      txnTimeoutMs: 60_000,
      role: new PrimaryRole({
        checkpoint: { intervalMs: null, walBytes: 1 << 30, prepareTimeoutMs: 5000 },
        compaction: { maxFrames: 1n << 50n, maxDurationMs: null, snapshotExec: null, scriptBackupDir: path.join(dir, 'script_backup') },
        outsidePollMs: null,
      }),
      watchdog,
    });
    await ns.open();
    // The maintenance connection is the engine's: no slot.
    expect(addon().stats().slotsInUse).toBe(before);
    conn = ns.connect();
    await conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v)', NO_ARGS, opts);
    expect(addon().stats().slotsInUse).toBe(before + 1);
  });
  afterAll(async () => {
    const inUse = addon().stats().slotsInUse;
    await ns?.close();
    // Closing the namespace closed its client connection, and SQLite gave its slot back.
    expect(addon().stats().slotsInUse).toBe(inUse - 1);
    watchdog?.close();
    fs.rmSync(path.dirname(ns.dir), { recursive: true, force: true });
  });

  it('interrupts a client statement past the limit and logs the namespace and duration, the SQL only at debug', async () => {
    logs.clear();
    const started = performance.now();
    const err = (await conn.execute(ENDLESS_COUNT, NO_ARGS, opts).then(() => null, (e: unknown) => e)) as { code?: string; message?: string } | null;
    expect(err?.code).toBe('SQLITE_INTERRUPT');
    expect(err?.message).toMatch(/0\.1 s \(--max-statement-duration-s\)$/);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(LIMIT_MS - 5);
    expect(took).toBeLessThan(LIMIT_MS + WATCHDOG_POLL_MS * 20);
    const [warn] = logs.find(/engine-ns: a statement ran longer than 0\.1 s/, LEVEL.warn);
    expect(warn).toMatchObject({ namespace: 'engine-ns', limitMs: LIMIT_MS, rolledBack: false });
    expect(warn?.durationMs).toBeGreaterThanOrEqual(LIMIT_MS - 5);
    expect(JSON.stringify(logs.lines.filter((l) => l.level >= LEVEL.info))).not.toContain('RECURSIVE');
    expect(logs.find(/the interrupted statement/)[0]?.sql).toBe(ENDLESS_COUNT);
    expect(Number((await conn.execute('SELECT 1', NO_ARGS, opts)).rows[0]?.[0])).toBe(1);
  });

  it('never interrupts trusted (engine) statements', async () => {
    // Longer and longer statements until one ran 4× the limit: none is interrupted.
    let n = 100_000;
    let took = 0;
    while (took < LIMIT_MS * 4) {
      const started = performance.now();
      const r = await conn.execute(bounded(n), NO_ARGS, { ...opts, trusted: true });
      took = performance.now() - started;
      expect(Number(r.rows[0]?.[0])).toBe(n);
      n *= 2;
    }
  });

  it('watches a cursor one fetch at a time: many short fetches pass, a long one is interrupted', async () => {
    const open = await conn.openRows(ENDLESS_ROWS, NO_ARGS, opts);
    if (!('rows' in open)) throw new Error('expected a cursor');
    const started = performance.now();
    let next = 1;
    while (performance.now() - started < LIMIT_MS * 4) {
      const rows = open.rows.fetch(1000, 1e9);
      expect(Number(rows[0]?.[0])).toBe(next);
      next += rows.length;
    }
    open.rows.close();
    const runaway = await conn.openRows(ENDLESS_COUNT, NO_ARGS, opts);
    if (!('rows' in runaway)) throw new Error('expected a cursor');
    expect(() => runaway.rows.fetch(10, 1e9)).toThrow(expect.objectContaining({ code: 'SQLITE_INTERRUPT' }));
    expect(conn.isAutocommit).toBe(true);
  });

  it("rolls back a cursor's transaction and frees the write lock", async () => {
    await conn.execute('BEGIN', NO_ARGS, opts);
    await conn.execute("INSERT INTO t (v) VALUES ('cursor-txn')", NO_ARGS, opts);
    expect(ns.holdsWriteLock(conn)).toBe(true);
    const runaway = await conn.openRows(ENDLESS_COUNT, NO_ARGS, opts);
    if (!('rows' in runaway)) throw new Error('expected a cursor');
    expect(() => runaway.rows.fetch(10, 1e9)).toThrow(/its transaction was rolled back/);
    expect(conn.isAutocommit).toBe(true);
    expect(ns.holdsWriteLock(conn)).toBe(false);
    expect((await conn.execute("SELECT count(*) FROM t WHERE v = 'cursor-txn'", NO_ARGS, opts)).rows[0]?.[0]).toBe(0n);
  });

  it('an interrupted write that spilled pages into the WAL leaves nothing in the database or the replication log', async () => {
    const writer = ns.connect();
    try {
      // A small page cache makes the endless insert spill its uncommitted pages into the WAL.
      await writer.execute('PRAGMA cache_size = 50', NO_ARGS, { ...opts, trusted: true });
      await writer.execute("INSERT INTO t (v) VALUES ('committed')", NO_ARGS, opts);
      const walBefore = fs.statSync(`${ns.dbFile}-wal`).size;
      await writer.execute('BEGIN', NO_ARGS, opts);
      await writer.execute("INSERT INTO t (v) VALUES ('rolled back')", NO_ARGS, opts);
      await expect(writer.execute(ENDLESS_INSERT, NO_ARGS, opts)).rejects.toThrow(/its transaction was rolled back/);
      expect(fs.statSync(`${ns.dbFile}-wal`).size).toBeGreaterThan(walBefore + 50 * 4096);
      expect(writer.isAutocommit).toBe(true);
      expect(ns.holdsWriteLock(writer)).toBe(false);
      await conn.execute("INSERT INTO t (v) VALUES ('after')", NO_ARGS, opts);
    } finally {
      writer.close();
    }
    const primary = inspectPrimary(ns);
    expect(primary.integrity).toBe('ok');
    expect(primary.dump).not.toContain('rolled back');
    expect(primary.dump).toContain('after');
    const log = framesOf(ns).log;
    await log.drain();
    const replayed = path.join(path.dirname(ns.dir), 'replayed.db');
    replayLog(log, replayed);
    expect(inspectFile(replayed).dump).toBe(primary.dump);
  });
});

type Json = Record<string, unknown>;
interface StreamResult {
  type: 'ok' | 'error';
  response?: Json & { result?: { rows: { value?: unknown }[][] }; is_autocommit?: boolean };
  error?: { message: string; code: string };
}

describe('a server with --max-statement-duration-s 0.5', () => {
  let srv: TestServer;
  const exec = (sql: string): Json => ({ type: 'execute', stmt: { sql } });

  async function pipeline(requests: Json[], baton: string | null = null): Promise<{ baton: string | null; results: StreamResult[] }> {
    const r = await postJson(`${srv.url}/v3/pipeline`, { baton, requests });
    expect(r.status, r.text).toBe(200);
    return r.body as { baton: string | null; results: StreamResult[] };
  }
  const value = (r: StreamResult | undefined): unknown => r?.response?.result?.rows[0]?.[0]?.value;

  beforeAll(async () => {
    // A write lock left behind would hold the next writer for the whole (here: long) transaction timeout.
    srv = await startTestServer({ 'max-statement-duration-s': '0.5' }, {}, { txnTimeoutMs: 60_000 });
    await pipeline([exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v)'), { type: 'close' }]);
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('answers an endless count(*) with SQLITE_INTERRUPT after the limit', async () => {
    const interrupts = addon().stats().interrupts;
    const started = performance.now();
    const { results } = await pipeline([exec(ENDLESS_COUNT), { type: 'close' }]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(450);
    expect(results[0]?.error?.code).toBe('SQLITE_INTERRUPT');
    expect(results[0]?.error?.message).toBe("SQLite error: interrupted: the statement ran longer than the server's limit of 0.5 s (--max-statement-duration-s)");
    expect(addon().stats().interrupts).toBe(interrupts + 1);
  });

  it.each([
    ['a write (SQLite rolls the transaction back)', ENDLESS_INSERT],
    ['a read (the server rolls the transaction back)', ENDLESS_COUNT],
  ])('an interrupted statement inside a transaction, %s: nothing of it stays, the write lock is free', async (_what, sql) => {
    await pipeline([exec('DELETE FROM t'), { type: 'close' }]);
    const first = await pipeline([exec('BEGIN'), exec("INSERT INTO t (v) VALUES ('in-txn')"), exec(sql), { type: 'get_autocommit' }]);
    expect(first.results.slice(0, 2).map((r) => r.type)).toEqual(['ok', 'ok']);
    expect(first.results[2]?.error?.code).toBe('SQLITE_INTERRUPT');
    expect(first.results[2]?.error?.message).toMatch(/its transaction was rolled back$/);
    expect(first.results[3]?.response?.is_autocommit).toBe(true);
    // Another client writes at once: the interrupted stream does not hold the write lock.
    const other = await within(pipeline([exec("INSERT INTO t (v) VALUES ('other')"), { type: 'close' }]), 10_000, 'a write after the interrupt');
    expect(other.results[0]?.type).toBe('ok');
    const after = await pipeline([exec("SELECT group_concat(v) FROM t"), exec('PRAGMA integrity_check'), { type: 'close' }], first.baton);
    expect(value(after.results[0])).toBe('other');
    expect(value(after.results[1])).toBe('ok');
  });

  it('leaves statements shorter than the limit alone, however many run one after another', async () => {
    const interrupts = addon().stats().interrupts;
    const started = performance.now();
    let baton: string | null = null;
    while (performance.now() - started < 1500) {
      const r = await pipeline([exec(bounded(20_000))], baton);
      expect(r.results[0]?.type, JSON.stringify(r.results[0])).toBe('ok');
      expect(value(r.results[0])).toBe('20000');
      baton = r.baton;
    }
    await pipeline([{ type: 'close' }], baton);
    expect(addon().stats().interrupts).toBe(interrupts);
  });
});

/** POSTs a pipeline with its own connection; `sent` resolves once the request is handed to the kernel. */
function postRaw(url: string, body: unknown): { sent: Promise<void>; answer: Promise<{ status: number; body: string }> } {
  const data = JSON.stringify(body);
  let req!: http.ClientRequest;
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  const sent = new Promise<void>((resolve) => req.on('finish', resolve));
  req.end(data);
  return { sent, answer };
}

describe('a server process blocked by a runaway statement', () => {
  const dir = cliScratch('libsqlctl-runaway-');

  it('answers /health sent while the statement runs, once the statement is interrupted', async () => {
    const child = await startChildServer(path.join(dir, 'data.sqld'), ['--max-statement-duration-s', '0.5']);
    // The statement starts a few event-loop turns after its request arrives, and nothing outside
    // tells when: an attempt whose /health was answered without waiting for it is tried again.
    let waited = false;
    for (let attempt = 1; attempt <= 3 && !waited; attempt++) {
      const runaway = postRaw(`${child.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt: { sql: ENDLESS_COUNT } }] });
      await runaway.sent;
      await new Promise((resolve) => setTimeout(resolve, 100));
      const healthSent = performance.now();
      const health = await within(fetch(`${child.url}/health`), 15_000, '/health while a statement runs');
      await health.arrayBuffer();
      const healthWaited = performance.now() - healthSent;
      expect(health.status).toBe(200);
      const answer = await within(runaway.answer, 15_000, 'the runaway statement to be interrupted');
      expect(answer.status).toBe(200);
      expect((JSON.parse(answer.body) as { results: StreamResult[] }).results[0]?.error?.code).toBe('SQLITE_INTERRUPT');
      waited = healthWaited >= 200;
    }
    expect(waited, 'no attempt sent /health while the statement ran').toBe(true);
    await stopChild(child);
    const warnings = child.stderr().split('\n').filter((l) => l.includes('a statement ran longer than'));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatch(/namespace default: a statement ran longer than 0\.5 s \(--max-statement-duration-s\) and was interrupted after \d+ ms/);
    expect(child.stderr()).not.toContain('RECURSIVE');
  });
});
