/**
 * Frame capture (docs/REPLICATION_LOG.md): restarts, crash recovery from a copied namespace dir,
 * damaged logs, capture failures, checkpoint refusals and --snapshot-exec.
 */
import { NamespacePaths } from '../../../src/engine/data-dir.js';
import { DiskFullFaults } from '../../../src/engine/faults.js';
import { invalidateLog } from '../../../src/engine/log/log-recovery.js';
import { appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../../src/engine/connection.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import { LibsqlctlError } from '../../../src/errors.js';
import { FRAME_SIZE } from '../../../src/engine/wal/frame.js';
import { WALLOG_HEADER_SIZE } from '../../../src/engine/wal/wallog-header.js';
import {
  bytes,
  EngineScope,
  framesOf,
  inspectFile,
  inspectPrimary,
  logFrames,
  replayLog,
  replayWithSnapshots,
  run,
  pendingWal,
  wallogHeader,
} from '../../helpers/engine-log.js';

const scope = new EngineScope();
afterEach(() => scope.dispose());

const SENTINEL = '.sentinel';
const NS_FILES = ['data', 'data-wal', 'wallog', 'wallog-capture', SENTINEL];

let seedCounter = 1;

/** Commits `txns` transactions of `rows` rows (blobs large enough to need overflow pages). */
async function writeTxns(conn: SqlConnection, txns: number, rows = 2, blobSize = 6000): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
  for (let i = 0; i < txns; i++) {
    await run(conn, 'BEGIN');
    for (let r = 0; r < rows; r++) {
      seedCounter += 1;
      await run(conn, 'INSERT INTO t (v, b) VALUES (?, ?)', [`row-${seedCounter}`, bytes(seedCounter, blobSize)]);
    }
    await run(conn, 'COMMIT');
  }
}

async function count(conn: SqlConnection): Promise<bigint> {
  const res = await run(conn, 'SELECT count(*) FROM t');
  const v = res.rows[0]?.[0];
  if (typeof v !== 'bigint') throw new Error(`count(*) returned ${String(v)}`);
  return v;
}

/** Replays the namespace's whole log (from frame 0) and checks it equals what readers of the primary see. */
function expectLogReplaysToPrimary(ns: NamespaceDb, dir: string, label = 'replayed'): void {
  const out = join(dir, `${label}-${Date.now()}-${Math.random().toString(16).slice(2)}.db`);
  const log = framesOf(ns).log;
  const seen = replayLog(log, out);
  expect(seen.last).toBe(log.nextFrameNo - 1n);
  const replayed = inspectFile(out);
  const primary = inspectPrimary(ns);
  expect(replayed.integrity).toBe('ok');
  expect(replayed.pageCount).toBe(primary.pageCount);
  expect(replayed.dump).toBe(primary.dump);
}

function copyNsFiles(from: string, to: string, names: readonly string[]): void {
  mkdirSync(to, { recursive: true });
  // Like a crash would leave them: same bytes and modification times (the capture state compares
  // the database file's mtime with the one it recorded).
  for (const name of names) {
    copyFileSync(join(from, name), join(to, name));
    const st = statSync(join(from, name));
    utimesSync(join(to, name), st.atimeMs / 1000, st.mtimeMs / 1000);
  }
}

function wallogFrameCount(path: string): bigint {
  return wallogHeader(path).frameCount;
}

describe('frame capture: restarts', () => {
  it('(a) continues the same log after a clean shutdown', async () => {
    const dir = scope.tempDir();
    const nsDir = join(dir, 'ns');
    const first = await scope.open(nsDir);
    const conn = first.connect();
    await writeTxns(conn, 3);
    const log1 = framesOf(first).log;
    const logId = log1.logId;
    const next = log1.nextFrameNo;
    expect(next).toBeGreaterThan(0n);
    expect(framesOf(first).uncleanShutdown).toBe(false);
    const before = inspectPrimary(first).dump;
    await first.close();
    expect(existsSync(join(nsDir, SENTINEL))).toBe(false);

    const second = await scope.open(nsDir);
    const frames = framesOf(second);
    expect(frames.uncleanShutdown).toBe(false);
    expect(frames.log.logId).toBe(logId);
    expect(frames.log.nextFrameNo).toBe(next);
    expect(frames.replicationIndex()).toBe(next - 1n);
    expect(inspectPrimary(second).dump).toBe(before);
    expect(existsSync(join(nsDir, SENTINEL))).toBe(true);

    const conn2 = second.connect();
    await writeTxns(conn2, 2);
    expect(frames.log.nextFrameNo).toBeGreaterThan(next);
    const [firstNew] = frames.log.readFrames(next, 1);
    expect(firstNew?.frameNo).toBe(next);
    expect(frames.replicationIndex()).toBe(frames.log.nextFrameNo - 1n);
    expectLogReplaysToPrimary(second, dir);
  });
});

describe('frame capture: unclean shutdown (namespace dir copied while open)', () => {
  const cases = [
    { name: 'no checkpoint since the start', checkpoint: 'none', stateWithLog: false },
    { name: 'a checkpoint, then transactions in a new WAL generation', checkpoint: 'before-a2', stateWithLog: false },
    { name: 'a checkpoint just before the log was copied', checkpoint: 'at-copy', stateWithLog: true },
  ] as const;

  for (const c of cases) {
    it(`(b) captures the WAL transactions the log lacks before serving: ${c.name}`, async () => {
      const dir = scope.tempDir();
      const src = join(dir, 'src');
      const dst = join(dir, 'dst');
      const primary = await scope.open(src);
      const conn = primary.connect();
      const log = framesOf(primary).log;
      await writeTxns(conn, 3);
      if (c.checkpoint === 'before-a2') {
        expect(framesOf(primary).checkpointNow()).toBe(true);
        await writeTxns(conn, 2);
      }
      if (c.checkpoint === 'at-copy') expect(framesOf(primary).checkpointNow()).toBe(true);
      // The log as a crash would leave it: the transactions committed after this point are only in the WAL.
      copyNsFiles(src, dst, c.stateWithLog ? ['wallog', 'wallog-capture'] : ['wallog']);
      const copiedNext = log.nextFrameNo;
      await writeTxns(conn, 3);
      await run(conn, 'DELETE FROM t WHERE id % 3 = 0');
      expect(log.nextFrameNo).toBeGreaterThan(copiedNext);
      expect(pendingWal(primary)).toBeGreaterThan(0);
      expect(existsSync(join(src, SENTINEL))).toBe(true);
      copyNsFiles(src, dst, ['data', 'data-wal', SENTINEL, ...(c.stateWithLog ? [] : ['wallog-capture'])]);
      // The copied log lacks the later transactions (and, its header being written once per event-loop
      // turn, possibly some earlier ones: their frames then read as a torn tail).
      expect(wallogFrameCount(join(dst, 'wallog'))).toBeLessThanOrEqual(copiedNext);
      const expected = inspectPrimary(primary).dump;

      const recovered = await scope.open(dst);
      const frames = framesOf(recovered);
      expect(frames.uncleanShutdown).toBe(true);
      expect(frames.log.logId).toBe(log.logId);
      expect(frames.log.nextFrameNo).toBe(log.nextFrameNo);
      expect(frames.replicationIndex()).toBe(log.nextFrameNo - 1n);
      // The recovered log holds exactly the primary's frames: same numbers, pages and checksums.
      const a = [...logFrames(log, 0n, { count: 0, last: null })];
      const b = [...logFrames(frames.log, 0n, { count: 0, last: null })];
      expect(b.length).toBe(a.length);
      for (const [i, f] of a.entries()) {
        const g = b[i];
        expect(g && [g.frameNo, g.pageNo, g.sizeAfter, g.checksum]).toEqual([f.frameNo, f.pageNo, f.sizeAfter, f.checksum]);
        expect(g?.page.equals(f.page)).toBe(true);
      }
      expect(inspectPrimary(recovered).dump).toBe(expected);
      expectLogReplaysToPrimary(recovered, dir);

      // And it keeps going.
      const conn2 = recovered.connect();
      await writeTxns(conn2, 1);
      expect(frames.replicationIndex()).toBe(frames.log.nextFrameNo - 1n);
      expectLogReplaysToPrimary(recovered, dir);
    });
  }

  it('(b) recovers when the crash came right after a compaction left the log empty', async () => {
    const dir = scope.tempDir();
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const primary = await scope.open(src, { maxFrames: 20n });
    const conn = primary.connect();
    const log = framesOf(primary).log;
    // Transactions until one pushes the log past its budget: compaction then swaps in an empty log.
    for (let i = 0; i < 50 && log.startFrameNo === 0n; i++) await writeTxns(conn, 1);
    expect(log.startFrameNo).toBeGreaterThan(0n);
    expect(log.nextFrameNo).toBe(log.startFrameNo);
    await log.drain();
    expect(pendingWal(primary)).toBeGreaterThan(0);
    const expected = inspectPrimary(primary).dump;
    cpSync(src, dst, { recursive: true, filter: (p) => !p.endsWith('-shm') });
    const st = statSync(join(src, 'data'));
    utimesSync(join(dst, 'data'), st.atimeMs / 1000, st.mtimeMs / 1000);

    const recovered = await scope.open(dst, { maxFrames: 20n });
    const frames = framesOf(recovered);
    expect(frames.uncleanShutdown).toBe(true);
    expect(frames.log.logId).toBe(log.logId);
    expect(frames.log.nextFrameNo).toBe(log.nextFrameNo);
    expect(inspectPrimary(recovered).dump).toBe(expected);
    const out = join(dir, 'replayed.db');
    replayWithSnapshots(frames.log, out);
    expect(inspectFile(out).dump).toBe(expected);
  });
});

describe('frame capture: damaged logs', () => {
  const corruptions = [
    {
      name: 'a flipped byte in a frame page',
      apply: (path: string): void => {
        const buf = readFileSync(path);
        const at = WALLOG_HEADER_SIZE + FRAME_SIZE + 24 + 100; // page of the second frame
        buf[at] = (buf[at] ?? 0) ^ 0xff;
        writeFileSync(path, buf);
      },
    },
    {
      name: 'a flipped byte in a frame checksum',
      apply: (path: string): void => {
        const buf = readFileSync(path);
        const at = WALLOG_HEADER_SIZE + 8;
        buf[at] = (buf[at] ?? 0) ^ 0x01;
        writeFileSync(path, buf);
      },
    },
    { name: 'a truncated header', apply: (path: string): void => truncateSync(path, 30) },
  ];

  for (const c of corruptions) {
    it(`(c) starts a new log from the database after ${c.name} (clean shutdown)`, async () => {
      const dir = scope.tempDir();
      const nsDir = join(dir, 'ns');
      const first = await scope.open(nsDir);
      await writeTxns(first.connect(), 4);
      const oldId = framesOf(first).log.logId;
      const expected = inspectPrimary(first).dump;
      await first.close();
      c.apply(join(nsDir, 'wallog'));

      const second = await scope.open(nsDir);
      const frames = framesOf(second);
      expect(frames.uncleanShutdown).toBe(false);
      expect(frames.log.logId).not.toBe(oldId);
      expect(frames.log.startFrameNo).toBe(0n);
      expect(frames.log.nextFrameNo).toBe(inspectPrimary(second).pageCount);
      expect(inspectPrimary(second).dump).toBe(expected);
      expectLogReplaysToPrimary(second, dir);
      await writeTxns(second.connect(), 1);
      expectLogReplaysToPrimary(second, dir);
    });
  }

  it('(c) starts a new log after a crash with a corrupt frame, keeping the transactions only in the WAL', async () => {
    const dir = scope.tempDir();
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const primary = await scope.open(src);
    const conn = primary.connect();
    await writeTxns(conn, 3);
    expect(framesOf(primary).checkpointNow()).toBe(true);
    await writeTxns(conn, 3);
    expect(pendingWal(primary)).toBeGreaterThan(0);
    copyNsFiles(src, dst, NS_FILES);
    const expected = inspectPrimary(primary).dump;
    corruptions[0]!.apply(join(dst, 'wallog'));

    const recovered = await scope.open(dst);
    const frames = framesOf(recovered);
    expect(frames.uncleanShutdown).toBe(true);
    expect(frames.log.logId).not.toBe(framesOf(primary).log.logId);
    expect(inspectPrimary(recovered).dump).toBe(expected);
    expectLogReplaysToPrimary(recovered, dir);
  });

  it('(d) cuts a torn tail past frame_count and keeps the log', async () => {
    const dir = scope.tempDir();
    const nsDir = join(dir, 'ns');
    const first = await scope.open(nsDir);
    await writeTxns(first.connect(), 3);
    const { logId, nextFrameNo } = framesOf(first).log;
    const expected = inspectPrimary(first).dump;
    await first.close();
    const wallog = join(nsDir, 'wallog');
    const goodSize = statSync(wallog).size;
    expect(goodSize).toBe(WALLOG_HEADER_SIZE + Number(nextFrameNo) * FRAME_SIZE);
    appendFileSync(wallog, bytes(99, FRAME_SIZE + 1234)); // a whole frame's worth and a partial one

    const second = await scope.open(nsDir);
    const frames = framesOf(second);
    expect(frames.log.logId).toBe(logId);
    expect(frames.log.nextFrameNo).toBe(nextFrameNo);
    expect(statSync(wallog).size).toBe(goodSize);
    expect(inspectPrimary(second).dump).toBe(expected);
    await writeTxns(second.connect(), 2);
    expect(frames.log.readFrames(nextFrameNo, 1)[0]?.frameNo).toBe(nextFrameNo);
    expectLogReplaysToPrimary(second, dir);
  });

  it('(d) cuts a torn tail after a crash and still captures the WAL transactions the log lacks', async () => {
    const dir = scope.tempDir();
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const primary = await scope.open(src);
    const conn = primary.connect();
    await writeTxns(conn, 2);
    copyNsFiles(src, dst, ['wallog']);
    await writeTxns(conn, 2);
    copyNsFiles(src, dst, ['data', 'data-wal', 'wallog-capture', SENTINEL]);
    appendFileSync(join(dst, 'wallog'), bytes(5, 3000));
    const expected = inspectPrimary(primary).dump;

    const recovered = await scope.open(dst);
    const frames = framesOf(recovered);
    expect(frames.uncleanShutdown).toBe(true);
    expect(frames.log.logId).toBe(framesOf(primary).log.logId);
    expect(frames.log.nextFrameNo).toBe(framesOf(primary).log.nextFrameNo);
    expect(inspectPrimary(recovered).dump).toBe(expected);
    expectLogReplaysToPrimary(recovered, dir);
  });
});

describe('frame capture: failures and checkpoints', () => {
  it('(e) a capture failure refuses writes, keeps reads, blocks checkpoints, and leaves no gap once cleared', async () => {
    const dir = scope.tempDir();
    const faults = new DiskFullFaults();
    const ns = await scope.open(join(dir, 'ns'), { faults });
    const frames = framesOf(ns);
    const conn = ns.connect();
    const reader = ns.connect();
    await writeTxns(conn, 2);
    const rowsBefore = await count(conn);
    const nextBefore = frames.log.nextFrameNo;

    faults.arm('log-append');
    // The transaction commits in SQLite, but its frames cannot be logged: the writer hears of it.
    const failed = await run(conn, 'INSERT INTO t (v, b) VALUES (?, ?)', ['committed-unlogged', bytes(1, 9000)]).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(LibsqlctlError);
    expect((failed as LibsqlctlError).code).toBe('SQLITE_IOERR');
    expect(frames.log.nextFrameNo).toBe(nextBefore);

    // Further writes are refused while the fault persists (and do not run).
    const refused = await run(conn, "INSERT INTO t (v) VALUES ('refused')").then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(LibsqlctlError);
    expect((refused as LibsqlctlError).code).toBe('SQLITE_IOERR');
    const refusedOther = await run(reader, "INSERT INTO t (v) VALUES ('refused-too')").then(
      () => null,
      (err: unknown) => err,
    );
    expect((refusedOther as LibsqlctlError | null)?.code).toBe('SQLITE_IOERR');

    // Reads keep working and see the committed transaction.
    expect(await count(reader)).toBe(rowsBefore + 1n);
    expect(await count(conn)).toBe(rowsBefore + 1n);
    const walBefore = pendingWal(ns);
    expect(frames.checkpointNow()).toBe(false);
    expect(pendingWal(ns)).toBe(walBefore);

    faults.disarm();
    await run(conn, "INSERT INTO t (v) VALUES ('after-recovery')");
    expect(await count(reader)).toBe(rowsBefore + 2n);
    const refusedRows = await run(reader, "SELECT count(*) FROM t WHERE v LIKE 'refused%'");
    expect(refusedRows.rows[0]?.[0]).toBe(0n);
    expect(frames.log.nextFrameNo).toBeGreaterThan(nextBefore);
    expect(frames.replicationIndex()).toBe(frames.log.nextFrameNo - 1n);
    expectLogReplaysToPrimary(ns, dir);
    expect(frames.checkpointNow()).toBe(true);
    expect(pendingWal(ns)).toBe(0);
  });

  it('(f) a checkpoint is refused while a reader holds an old snapshot, and succeeds once it ends', async () => {
    const dir = scope.tempDir();
    const ns = await scope.open(join(dir, 'ns'));
    const frames = framesOf(ns);
    const writer = ns.connect();
    const reader = ns.connect();
    await writeTxns(writer, 2);
    await run(reader, 'BEGIN');
    const seen = await count(reader);
    await writeTxns(writer, 2);
    const wal = pendingWal(ns);
    expect(wal).toBeGreaterThan(0);

    expect(frames.checkpointNow()).toBe(false);
    expect(pendingWal(ns)).toBe(wal);
    expect(await count(reader)).toBe(seen); // the reader's snapshot is intact
    await run(reader, 'COMMIT');

    expect(frames.checkpointNow()).toBe(true);
    expect(pendingWal(ns)).toBe(0);
    expect(await count(reader)).toBe(seen + 4n);
    expectLogReplaysToPrimary(ns, dir);
  });

  it('(g) a checkpoint guard holds checkpoints back until it agrees', async () => {
    const dir = scope.tempDir();
    const ns = await scope.open(join(dir, 'ns'));
    const frames = framesOf(ns);
    await writeTxns(ns.connect(), 2);
    let allow = false;
    let asked = 0;
    const remove = frames.addCheckpointGuard(() => {
      asked += 1;
      return allow;
    });
    const wal = pendingWal(ns);
    expect(wal).toBeGreaterThan(0);
    expect(frames.checkpointNow()).toBe(false);
    expect(asked).toBe(1);
    expect(pendingWal(ns)).toBe(wal);
    allow = true;
    expect(frames.checkpointNow()).toBe(true);
    expect(pendingWal(ns)).toBe(0);
    await writeTxns(ns.connect(), 1);
    allow = false;
    const held = frames.addCheckpointGuard(() => false);
    remove();
    expect(frames.checkpointNow()).toBe(false);
    held();
    expect(frames.checkpointNow()).toBe(true);
    expectLogReplaysToPrimary(ns, dir);
  });

  it('(h) --snapshot-exec runs for every snapshot with <link> <namespace> <start> <end> <log_id>', async () => {
    const dir = scope.tempDir();
    const dbPath = join(dir, 'db-path');
    const record = join(dir, 'snapshot-exec.txt');
    const script = join(dir, 'on-snapshot.sh');
    writeFileSync(
      script,
      `#!/bin/sh\nprintf '%s %s %s %s %s\\n' "$1" "$2" "$3" "$4" "$5" >> '${record}'\ncp "$1" '${dir}/copy-'"$3"'-'"$4"'.snap'\n`,
    );
    chmodSync(script, 0o755);
    const ns = await scope.open(join(dbPath, 'dbs', 'test-ns'), { maxFrames: 10n, snapshotExec: script, dbPath });
    const log = framesOf(ns).log;
    for (let i = 0; i < 50 && log.startFrameNo === 0n; i++) await writeTxns(ns.connect(), 1);
    await writeTxns(ns.connect(), 3);
    await log.drain();
    const snaps = log.snapshots();
    expect(snaps.length).toBeGreaterThan(0);

    const lines = readFileSync(record, 'utf8').trim().split('\n');
    expect(lines.length).toBe(snaps.length);
    for (const [i, s] of snaps.entries()) {
      const fields = lines[i]?.split(' ') ?? [];
      expect(fields.length).toBe(5);
      const [link, nsName, start, end, logId] = fields;
      expect(link?.startsWith(join(dbPath, 'script_backup') + '/')).toBe(true);
      expect(link?.endsWith('.snap')).toBe(true);
      expect([nsName, start, end, logId]).toEqual(['test-ns', s.startFrameNo.toString(), s.endFrameNo.toString(), log.logId]);
      // The command could read the snapshot through the link: what it copied is the snapshot.
      expect(readFileSync(join(dir, `copy-${start}-${end}.snap`)).equals(readFileSync(s.path))).toBe(true);
      // The link is removed once the command succeeded.
      expect(existsSync(link ?? '')).toBe(false);
    }
    const out = join(dir, 'replayed.db');
    replayWithSnapshots(log, out);
    expect(inspectFile(out).dump).toBe(inspectPrimary(ns).dump);
  });
});

describe('frame capture: invalidating the log of a closed namespace', () => {
  it('invalidateLog makes the next open start a new log from the database as it is', async () => {
    const dir = scope.tempDir();
    const nsDir = join(dir, 'ns');
    const first = await scope.open(nsDir);
    await writeTxns(first.connect(), 3);
    const oldId = framesOf(first).log.logId;
    const before = inspectPrimary(first).dump;
    await first.close();
    invalidateLog(new NamespacePaths(nsDir));
    const second = await scope.open(nsDir);
    expect(framesOf(second).log.logId).not.toBe(oldId);
    expect(framesOf(second).newLogReason).toBe('no capture state');
    expect(inspectPrimary(second).dump).toBe(before);
    expectLogReplaysToPrimary(second, dir);
  });
});
