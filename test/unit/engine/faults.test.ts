/**
 * Fault injection through the engine's seam (src/engine/faults.ts; never a patched `fs`): a full disk
 * at each fault point. For every point: no crash (no uncaught exception or unhandled rejection),
 * writes refused with SQLITE_IOERR where the point is on the write path, reads served meanwhile,
 * recovery once the fault is gone, no frame duplicated or missing, and the error logged.
 */
import Database from 'better-sqlite3';
import { createClient, LibsqlError, type Client } from '@libsql/client';
import { getEventListeners, setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { resolveServeConfig } from '../../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../../src/config/serve-flags.js';
import type { SqlConnection } from '../../../src/engine/connection.js';
import { DiskFullFaults, type FaultPoint } from '../../../src/engine/faults.js';
import { silentLogger } from '../../../src/engine/logger.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import { WalReader } from '../../../src/engine/wal/sqlite-wal.js';
import { WallogFile } from '../../../src/engine/wal/wallog-file.js';
import { LibsqlctlError } from '../../../src/errors.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { bytes, EngineScope, framesOf, inspectFile, inspectPrimary, logFrames, replayWithSnapshots, run, type NsOptions } from '../../helpers/engine-log.js';
import { LEVEL, LogCapture } from '../../helpers/log-capture.js';

const scope = new EngineScope();
const servers: RunningServer[] = [];
const clients: Client[] = [];

/** Errors that escaped into the event loop: each would crash a production process. */
const escaped: unknown[] = [];
const onEscaped = (err: unknown): void => void escaped.push(err);

beforeAll(() => {
  process.on('uncaughtException', onEscaped);
  process.on('unhandledRejection', onEscaped);
});

afterAll(() => {
  process.off('uncaughtException', onEscaped);
  process.off('unhandledRejection', onEscaped);
});

afterEach(async () => {
  vi.useRealTimers();
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
  await scope.dispose();
  expect(escaped.splice(0)).toEqual([]);
});

/** Nothing escaped into the event loop so far (vitest would report it too, but only at the end). */
function expectNoCrash(): void {
  expect(escaped).toEqual([]);
}

/** A namespace in `nsDir` (default: `<dir>/ns`) with its own fault injector and in-memory log. */
async function openNs(opts: NsOptions & { faults?: DiskFullFaults } = {}, nsDir?: string, dir = scope.tempDir()) {
  const faults = opts.faults ?? new DiskFullFaults();
  const logs = new LogCapture();
  const ns = await scope.open(nsDir ?? join(dir, 'ns'), { faults, logger: logs.logger, ...opts });
  return { dir, ns, faults, logs, writer: ns.connect(), reader: ns.connect() };
}

type Fixture = Awaited<ReturnType<typeof openNs>>;

let seed = 1;

/** One transaction of two rows with blobs that need overflow pages (several frames each). */
async function writeTxn(conn: SqlConnection): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
  await run(conn, 'BEGIN');
  try {
    for (const s of [++seed, ++seed]) await run(conn, 'INSERT INTO t (v, b) VALUES (?, ?)', [`row-${s}`, bytes(s, 6000)]);
    await run(conn, 'COMMIT');
  } catch (err) {
    await run(conn, 'ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function insert(conn: SqlConnection, v: string): Promise<unknown> {
  return run(conn, 'INSERT INTO t (v) VALUES (?)', [v]);
}

async function count(conn: SqlConnection, where = '1'): Promise<bigint> {
  return (await run(conn, `SELECT count(*) FROM t WHERE ${where}`)).rows[0]?.[0] as bigint;
}

/** The promise must reject with an SQLITE_IOERR-class LibsqlctlError whose message matches `pattern`. */
async function expectIoErr(p: Promise<unknown>, pattern: RegExp): Promise<LibsqlctlError> {
  const err: unknown = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(LibsqlctlError);
  expect((err as LibsqlctlError).code).toBe('SQLITE_IOERR');
  expect((err as LibsqlctlError).message).toMatch(pattern);
  return err as LibsqlctlError;
}

/** An error-level line matching `pattern` that carries the injected ENOSPC of `point`. */
function expectLogged(logs: LogCapture, pattern: RegExp, point: FaultPoint): void {
  const hits = logs.find(pattern, LEVEL.error).filter((l) => l.err?.code === 'ENOSPC' && (l.err.message ?? '').includes(point));
  expect(hits.length, `an error log line matching ${pattern} with the ENOSPC of ${point}; got ${JSON.stringify(logs.errors().map((l) => l.msg))}`).toBeGreaterThan(0);
}

let replays = 0;

/**
 * No duplicated or missing frame: the frame numbers are consecutive from 0 (snapshots, then the log),
 * replaying them rebuilds exactly the database, the replication index is the last frame, and the log
 * frames of the current WAL generation are the WAL's committed frames, one for one.
 */
function expectExactLog(ns: NamespaceDb, dir: string): void {
  const frames = framesOf(ns);
  const log = frames.log;
  expect(frames.writeRefusal).toBeNull();
  expect(frames.replicationIndex()).toBe(log.nextFrameNo - 1n);
  const out = join(dir, `replayed-${++replays}.db`);
  replayWithSnapshots(log, out);
  const replayed = inspectFile(out);
  const primary = inspectPrimary(ns);
  expect(replayed.integrity).toBe('ok');
  expect(replayed.pageCount).toBe(primary.pageCount);
  expect(replayed.dump).toBe(primary.dump);

  const state = JSON.parse(readFileSync(ns.paths.captureState, 'utf8')) as { salt1: number | null; salt2: number | null; genStartFrameNo: string };
  const wal = new WalReader(ns.paths.wal);
  try {
    const walFrames = wal.readCommitted().transactions.flatMap((t) => t.frames);
    // No WAL (a clean shutdown removes it): the state names a generation that was checkpointed whole.
    if (walFrames.length === 0) return;
    // Capture records a WAL generation before logging its first frame: committed frames of a
    // generation the state does not name were never logged.
    expect({ salt1: wal.salts?.salt1, salt2: wal.salts?.salt2 }).toEqual({ salt1: state.salt1, salt2: state.salt2 });
    const genStart = BigInt(state.genStartFrameNo);
    expect(log.nextFrameNo - genStart, 'log frames of this WAL generation vs committed WAL frames').toBe(BigInt(walFrames.length));
    const from = genStart > log.startFrameNo ? genStart : log.startFrameNo;
    const logged = [...logFrames(log, from, { count: 0, last: null })];
    const expected = walFrames.slice(Number(from - genStart));
    expect(logged.length).toBe(expected.length);
    for (const [i, f] of logged.entries()) {
      expect([f.pageNo, f.page.equals(expected[i]!.page)], `log frame ${f.frameNo}`).toEqual([expected[i]!.pageNo, true]);
    }
  } finally {
    wal.close();
  }
}

/** frame_count in the on-disk header of `wallog` (what a restart would trust). */
function headerFrameCount(ns: NamespaceDb): bigint {
  const f = WallogFile.open(ns.paths.wallog, { readOnly: true });
  const frameCount = f.frameCount;
  f.close();
  return frameCount;
}

describe('fault points on the write path', () => {
  it('log-append: the write that hit it fails, later writes are refused, reads go on; the next write after disarm recovers', async () => {
    const { dir, ns, faults, logs, writer, reader } = await openNs();
    const frames = framesOf(ns);
    for (let i = 0; i < 3; i++) await writeTxn(writer);
    const rows = await count(reader);
    const next = frames.log.nextFrameNo;

    faults.arm('log-append');
    await expectIoErr(insert(writer, 'committed-unlogged'), /could not be logged/);
    expect(frames.writeRefusal).not.toBeNull();
    expect(frames.log.nextFrameNo).toBe(next);
    await expectIoErr(insert(reader, 'refused'), /refused until the replication log catches up/);
    await expectIoErr(writeTxn(writer), /refused/);
    expect(await count(reader)).toBe(rows + 1n);
    expect(await count(writer, "v = 'committed-unlogged'")).toBe(1n);
    expect(frames.checkpointNow()).toBe(false); // never checkpoint frames the log lacks
    expectLogged(logs, /frame capture failed, writes are refused/, 'log-append');

    faults.disarm();
    await insert(writer, 'after-recovery');
    expect(frames.writeRefusal).toBeNull();
    expect(await count(reader)).toBe(rows + 2n);
    expect(await count(reader, "v = 'refused'")).toBe(0n);
    expectExactLog(ns, dir);
    expect(logs.find(/frame capture recovered/, LEVEL.warn).length).toBe(1);
    expectNoCrash();
  });

  it('log-flush: the deferred header write fails without crashing; writes are refused until it succeeds again', async () => {
    const { dir, ns, faults, logs, writer, reader } = await openNs();
    const frames = framesOf(ns);
    for (let i = 0; i < 2; i++) await writeTxn(writer);
    await vi.waitFor(() => expect(headerFrameCount(ns)).toBe(frames.log.nextFrameNo), { timeout: 2000, interval: 5 });
    const rows = await count(reader);

    faults.arm('log-flush');
    // Commit and append succeed (the write is acknowledged); the header write one turn later fails.
    await insert(writer, 'acknowledged');
    await vi.waitFor(() => expect(frames.writeRefusal).not.toBeNull(), { timeout: 2000, interval: 5 });
    expect(faults.hits.get('log-flush')).toBeGreaterThan(0);
    expectLogged(logs, /frame capture failed, writes are refused/, 'log-flush');
    const index = frames.replicationIndex();

    await expectIoErr(insert(writer, 'refused'), /refused until the replication log catches up/);
    await expectIoErr(insert(reader, 'refused'), /refused/);
    expect(await count(reader)).toBe(rows + 1n);
    expect(frames.replicationIndex()).toBe(index);

    faults.disarm();
    await insert(writer, 'after-recovery');
    expect(frames.writeRefusal).toBeNull();
    expect(await count(reader)).toBe(rows + 2n);
    expect(await count(reader, "v = 'refused'")).toBe(0n);
    await vi.waitFor(() => expect(headerFrameCount(ns)).toBe(frames.log.nextFrameNo - frames.log.startFrameNo), { timeout: 2000, interval: 5 });
    expectExactLog(ns, dir);
    expectNoCrash();
  });

  it('capture-state: a new WAL generation whose state cannot be written is refused like a failed append, then recovers', async () => {
    const { dir, ns, faults, logs, writer, reader } = await openNs();
    const frames = framesOf(ns);
    for (let i = 0; i < 2; i++) await writeTxn(writer);
    // After a checkpoint the next writer restarts the WAL: capture must rewrite wallog-capture first.
    expect(frames.checkpointNow()).toBe(true);
    const rows = await count(reader);
    const next = frames.log.nextFrameNo;

    faults.arm('capture-state');
    await expectIoErr(insert(writer, 'committed-unlogged'), /could not be logged/);
    expect(faults.hits.get('capture-state')).toBeGreaterThan(0);
    expect(frames.log.nextFrameNo).toBe(next);
    await expectIoErr(writeTxn(reader), /refused until the replication log catches up/);
    expect(await count(reader)).toBe(rows + 1n);
    expect(frames.checkpointNow()).toBe(false);
    expectLogged(logs, /frame capture failed, writes are refused/, 'capture-state');

    faults.disarm();
    await writeTxn(writer);
    expect(await count(reader)).toBe(rows + 3n);
    expectExactLog(ns, dir);
    expectNoCrash();
  });

  it('capture-state at a checkpoint: the checkpoint fails without crashing, and the log stays exact', async () => {
    const { dir, ns, faults, logs, writer, reader } = await openNs();
    const frames = framesOf(ns);
    for (let i = 0; i < 2; i++) await writeTxn(writer);
    const rows = await count(reader);

    faults.arm('capture-state');
    await expect(frames.checkpoint()).resolves.toBe(false);
    expectLogged(logs, /checkpoint failed/, 'capture-state');
    // Writes may be taken up again, but the next one starts a new WAL generation and hits the fault.
    await expectIoErr(insert(writer, 'committed-unlogged'), /could not be logged|refused/);
    expect(await count(reader)).toBe(rows + 1n);

    faults.disarm();
    await insert(writer, 'after-recovery');
    expect(await count(reader)).toBe(rows + 2n);
    expectExactLog(ns, dir);
    await expect(frames.checkpoint()).resolves.toBe(true);
    await writeTxn(writer);
    expectExactLog(ns, dir);
    expectNoCrash();
  });
});

describe('fault points off the write path', () => {
  it('compaction: frames past the budget are logged once while compaction fails; it compacts once the fault is gone', async () => {
    const maxFrames = 20n;
    const { dir, ns, faults, logs, writer } = await openNs({ maxFrames });
    const frames = framesOf(ns);
    const log = frames.log;
    await writeTxn(writer);

    faults.arm('compaction');
    for (let i = 0; i < 50 && log.nextFrameNo - log.startFrameNo <= maxFrames + 10n; i++) await writeTxn(writer);
    expect(log.nextFrameNo - log.startFrameNo).toBeGreaterThan(maxFrames + 10n);
    expect(faults.hits.get('compaction')).toBeGreaterThan(0);
    expect(log.startFrameNo).toBe(0n); // not compacted
    expect(frames.writeRefusal).toBeNull(); // compaction is not capture: writes go on
    expectLogged(logs, /log compaction failed/, 'compaction');
    expectExactLog(ns, dir);

    faults.disarm();
    // Compaction is retried a little later, not on every commit: move the clock past that.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 60_000);
    await writeTxn(writer);
    vi.useRealTimers();
    expect(log.startFrameNo).toBeGreaterThan(0n);
    await log.drain();
    expect(log.snapshots().length).toBe(1);
    expectExactLog(ns, dir);
    await writeTxn(writer);
    expectExactLog(ns, dir);
    expectNoCrash();
  });

  it('compaction: a snapshot that cannot be built after the swap is built at the next start', async () => {
    const { dir, ns, faults, logs, writer } = await openNs({ maxFrames: 20n });
    const log = framesOf(ns).log;
    for (let i = 0; i < 50 && log.startFrameNo === 0n; i++) {
      await writeTxn(writer);
      // The swap happened in this commit; the snapshot is built a turn later: make that fail.
      if (log.startFrameNo > 0n) faults.arm('compaction');
    }
    expect(log.startFrameNo).toBeGreaterThan(0n);
    await log.drain();
    expect(faults.hits.get('compaction')).toBe(1);
    expect(log.snapshots()).toEqual([]);
    expectLogged(logs, /compaction of .* failed/, 'compaction');
    await writeTxn(writer);
    const expected = inspectPrimary(ns).dump;
    const next = log.nextFrameNo;
    faults.disarm();
    await ns.close();

    const reopened = await openNs({ maxFrames: 20n }, join(dir, 'ns'), dir);
    const log2 = framesOf(reopened.ns).log;
    await log2.drain();
    expect(log2.logId).toBe(log.logId);
    expect(log2.nextFrameNo).toBe(next);
    expect(log2.snapshots().length).toBe(1);
    expect(inspectPrimary(reopened.ns).dump).toBe(expected);
    expectExactLog(reopened.ns, dir);
    await writeTxn(reopened.writer);
    expectExactLog(reopened.ns, dir);
    expectNoCrash();
  });

  it('timer: a failing outside-writer poll is logged, writes go on, and the poll captures once the fault is gone', async () => {
    const { dir, ns, faults, logs, writer, reader } = await openNs({ outsidePollMs: 20 });
    const frames = framesOf(ns);
    await writeTxn(writer);

    faults.arm('timer');
    await vi.waitFor(() => expect(faults.hits.get('timer') ?? 0).toBeGreaterThanOrEqual(2), { timeout: 2000, interval: 5 });
    expectLogged(logs, /outside-writer poll failed/, 'timer');
    await writeTxn(writer); // not on the write path
    expect(frames.writeRefusal).toBeNull();
    const index = frames.replicationIndex();

    // Another process commits: only the poll would capture it while no writer of ours runs.
    const outside = new Database(ns.dbFile, { timeout: 0 });
    outside.pragma('wal_autocheckpoint = 0');
    outside.prepare('INSERT INTO t (v) VALUES (?)').run('from-outside');
    outside.close();
    const hits = faults.hits.get('timer') ?? 0;
    await vi.waitFor(() => expect(faults.hits.get('timer') ?? 0).toBeGreaterThanOrEqual(hits + 2), { timeout: 2000, interval: 5 });
    expect(frames.replicationIndex()).toBe(index);
    expect(await count(reader, "v = 'from-outside'")).toBe(1n);

    faults.disarm();
    await vi.waitFor(() => expect(frames.replicationIndex()).toBeGreaterThan(index ?? -1n), { timeout: 2000, interval: 5 });
    expectExactLog(ns, dir);
    await writeTxn(writer);
    expectExactLog(ns, dir);
    expectNoCrash();
  });
});

describe('startup on a full disk', () => {
  it('startup: the namespace opens, serves reads and refuses writes; after disarm the next write opens the log', async () => {
    const dir = scope.tempDir();
    const nsDir = join(dir, 'ns');
    const healthy = await openNs({}, nsDir, dir);
    for (let i = 0; i < 3; i++) await writeTxn(healthy.writer);
    const { logId, nextFrameNo: next } = framesOf(healthy.ns).log;
    const expected = inspectPrimary(healthy.ns).dump;
    const rows = await count(healthy.reader);
    await healthy.ns.close();

    const faults = new DiskFullFaults();
    faults.arm('startup');
    const { ns, logs, writer, reader } = await openNs({ faults }, nsDir, dir);
    const frames = framesOf(ns);
    expect((frames.writeRefusal as { code?: string } | null)?.code).toBe('ENOSPC');
    expectLogged(logs, /replication log cannot be opened/, 'startup');
    expect(await count(reader)).toBe(rows);
    expect(inspectPrimary(ns).dump).toBe(expected);
    await expectIoErr(insert(writer, 'refused'), /refused until the replication log can be opened/);
    await expectIoErr(writeTxn(reader), /refused/);
    expect(await count(reader)).toBe(rows);

    faults.disarm();
    await insert(writer, 'after-recovery');
    expect(frames.writeRefusal).toBeNull();
    expect(frames.log.logId).toBe(logId); // the log continued, no new log
    expect(frames.log.nextFrameNo).toBeGreaterThan(next);
    expect(await count(reader)).toBe(rows + 1n);
    expectExactLog(ns, dir);
    expectNoCrash();
  });

  it('startup (server): starts on a full disk, answers /health and SELECT, refuses INSERT; INSERT works after disarm', async () => {
    const dir = scope.tempDir();
    const config = await resolveServeConfig(
      { ...serveFlagDefaults(), 'db-path': join(dir, 'data.sqld'), 'http-listen-addr': '127.0.0.1:0', 'shutdown-timeout': 5, 'no-welcome': true },
      {},
    );
    const first = await startServer(config, { logger: silentLogger() });
    servers.push(first);
    const seedClient = createClient({ url: `http://127.0.0.1:${first.httpAddress.port}`, intMode: 'bigint' });
    clients.push(seedClient);
    await seedClient.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    await seedClient.batch(["INSERT INTO t (v) VALUES ('a')", "INSERT INTO t (v) VALUES ('b')"], 'write');
    seedClient.close();
    await first.close();

    const faults = new DiskFullFaults();
    faults.arm('startup');
    const logs = new LogCapture();
    const server = await startServer(config, { faults, logger: logs.logger });
    servers.push(server);
    const url = `http://127.0.0.1:${server.httpAddress.port}`;
    expectLogged(logs, /replication log cannot be opened/, 'startup');
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const client = createClient({ url, intMode: 'bigint' });
    clients.push(client);
    const before = await client.execute('SELECT v FROM t ORDER BY id');
    expect(before.rows.map((r) => r.v)).toEqual(['a', 'b']);
    const err: unknown = await client.execute("INSERT INTO t (v) VALUES ('refused')").then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(LibsqlError);
    expect((err as LibsqlError).code).toBe('SQLITE_IOERR');
    expect((err as LibsqlError).message).toMatch(/writes are refused until the replication log can be opened: ENOSPC/);

    faults.disarm();
    await client.execute("INSERT INTO t (v) VALUES ('c')");
    const after = await client.execute('SELECT v FROM t ORDER BY id');
    expect(after.rows.map((r) => r.v)).toEqual(['a', 'b', 'c']);
    expectExactLog(server.context.namespaces.peek('default')!, dir);
    expectNoCrash();
  });
});

/** A namespace whose writes are refused because of a full disk at `point` (armed on return). */
async function refusing(point: 'log-append' | 'log-flush' | 'capture-state' | 'startup'): Promise<Fixture> {
  const dir = scope.tempDir();
  const nsDir = join(dir, 'ns');
  let f = await openNs({}, nsDir, dir);
  await writeTxn(f.writer);
  if (point === 'startup') {
    await f.ns.close();
    const faults = new DiskFullFaults();
    faults.arm('startup');
    f = await openNs({ faults }, nsDir, dir);
  } else if (point === 'log-flush') {
    f.faults.arm(point);
    await insert(f.writer, 'acknowledged');
  } else {
    if (point === 'capture-state') expect(framesOf(f.ns).checkpointNow()).toBe(true);
    f.faults.arm(point);
    await expectIoErr(insert(f.writer, 'committed-unlogged'), /could not be logged/);
  }
  await vi.waitFor(() => expect(framesOf(f.ns).writeRefusal).not.toBeNull(), { timeout: 2000, interval: 5 });
  return f;
}

describe('a write refused inside an explicit transaction', () => {
  const points = ['log-append', 'log-flush', 'capture-state', 'startup'] as const;
  for (const point of points) {
    for (const retry of [false, true]) {
      const what = retry ? 'retrying the statement in the same transaction is refused too' : 'ROLLBACK succeeds and the refusal stands';
      it(`${point}: ${what}`, async () => {
        const { dir, ns, faults, writer, reader } = await refusing(point);
        const rows = await count(reader);
        await run(writer, 'BEGIN');
        await expectIoErr(insert(writer, 'in-txn'), /refused/);
        if (retry) await expectIoErr(insert(writer, 'in-txn-retry'), /refused/);
        await run(writer, 'ROLLBACK'); // not a write: it must not report a commit that failed to log
        expect(framesOf(ns).writeRefusal).not.toBeNull();
        await expectIoErr(insert(reader, 'other'), /refused/);
        expect(await count(reader)).toBe(rows);

        faults.disarm();
        await insert(writer, 'after-recovery');
        expect(await count(reader)).toBe(rows + 1n);
        expectExactLog(ns, dir);
        expectNoCrash();
      });
    }
  }

  it('log-flush: a header write that fails while a write transaction is open keeps writes refused after its COMMIT', async () => {
    const { dir, ns, faults, writer, reader } = await openNs();
    const frames = framesOf(ns);
    await writeTxn(writer);
    faults.arm('log-flush');
    await insert(writer, 'acknowledged'); // its header write runs one event-loop turn later
    await run(reader, 'BEGIN');
    await insert(reader, 'in-txn'); // the write lock is taken before that turn: nothing refused yet
    await vi.waitFor(() => expect(frames.writeRefusal).not.toBeNull(), { timeout: 2000, interval: 5 });
    await run(reader, 'COMMIT'); // its frames reach the log, but the header still cannot be written
    expect(frames.writeRefusal).not.toBeNull();
    await expectIoErr(insert(writer, 'refused'), /refused/);

    faults.disarm();
    await insert(writer, 'after-recovery');
    expect(await count(reader, "v = 'refused'")).toBe(0n);
    expectExactLog(ns, dir);
    expectNoCrash();
  });
});

describe('log waiters', () => {
  it('waitFor leaves no abort listener behind over 10 000 waits on one signal', async () => {
    const { ns, writer } = await openNs();
    const log = framesOf(ns).log;
    await run(writer, 'CREATE TABLE w (x INTEGER)');
    const ac = new AbortController();
    const { signal } = ac;
    setMaxListeners(200, signal); // 95 waiters at a time on one signal are intended here
    for (let round = 0; round < 100; round++) {
      // 100 rounds of 100 waits: 95 on the next frame (they get a listener), 5 on one that exists.
      const next = log.nextFrameNo;
      const pending = Array.from({ length: 95 }, () => log.waitFor(next, signal));
      for (let i = 0; i < 5; i++) pending.push(log.waitFor(next - 1n, signal)); // already there
      expect(getEventListeners(signal, 'abort').length).toBe(95);
      await run(writer, 'INSERT INTO w (x) VALUES (?)', [BigInt(round)]);
      await Promise.all(pending);
      expect(getEventListeners(signal, 'abort').length).toBe(0);
    }
    expect(log.waiterCount).toBe(0);

    const aborted = log.waitFor(log.nextFrameNo, signal);
    expect(getEventListeners(signal, 'abort').length).toBe(1);
    ac.abort(new Error('reader gone'));
    await expect(aborted).rejects.toThrow('reader gone');
    expect(getEventListeners(signal, 'abort').length).toBe(0);
    expect(log.waiterCount).toBe(0);
    await expect(log.waitFor(log.nextFrameNo, signal)).rejects.toThrow('reader gone');
    expect(getEventListeners(signal, 'abort').length).toBe(0);
    expectNoCrash();
  });
});
