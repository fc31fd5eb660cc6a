import { existsSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NeedSnapshotError } from '../../../src/engine/log/replication-log.js';
import { bytes, EngineScope, framesOf, inspectFile, inspectPrimary, replayLog, run } from '../../helpers/engine-log.js';

let scope: EngineScope;

afterEach(async () => {
  await scope.dispose();
});

describe('ReplicationLog readers', () => {
  it('wakes every waiter once its frame exists, and lets waiters abort', async () => {
    scope = new EngineScope();
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const log = framesOf(ns).log;
    const conn = ns.connect();
    await run(conn, 'CREATE TABLE t (x)');
    const next = log.nextFrameNo;
    const woken: bigint[] = [];
    const waiters = [next, next, next + 1n].map((n) => log.waitFor(n).then(() => woken.push(n)));
    const aborter = new AbortController();
    const aborted = log.waitFor(next + 1000n, aborter.signal).then(
      () => 'resolved',
      (err: unknown) => (err instanceof Error ? err.message : 'rejected'),
    );
    // already present frames resolve at once
    await log.waitFor(next - 1n);
    expect(woken).toEqual([]);
    // every commit adds at least one frame: two inserts reach frames `next` and `next + 1`
    await run(conn, 'INSERT INTO t VALUES (1)');
    await run(conn, 'INSERT INTO t VALUES (2)');
    await Promise.all(waiters);
    expect(woken.sort()).toEqual([next, next, next + 1n].sort());
    aborter.abort(new Error('client went away'));
    expect(await aborted).toBe('client went away');
    const frames = log.readFrames(next, 100);
    expect(frames.length).toBeGreaterThan(0);
    expect(frames[0]?.frameNo).toBe(next);
    expect(frames.at(-1)?.frameNo).toBe(log.replicationIndex);
  });

  it('answers NEED_SNAPSHOT for frames compacted away, and serves them from a snapshot', async () => {
    scope = new EngineScope();
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { maxFrames: 4n });
    const log = framesOf(ns).log;
    const conn = ns.connect();
    await run(conn, 'CREATE TABLE t (x)');
    for (let i = 0; i < 10; i++) await run(conn, 'INSERT INTO t VALUES (?)', [Buffer.alloc(3000, i)]);
    await log.drain();
    expect(log.startFrameNo).toBeGreaterThan(0n);
    let code = 'none';
    try {
      log.readFrames(0n, 10);
    } catch (err) {
      code = err instanceof NeedSnapshotError ? err.code : 'other';
    }
    expect(code).toBe('NEED_SNAPSHOT');
    const snapshots = log.snapshots();
    expect(snapshots.length).toBeGreaterThan(0);
    expect(snapshots[0]?.startFrameNo).toBe(0n);
    expect(snapshots.at(-1)?.endFrameNo).toBe(log.startFrameNo - 1n);
  });
});

describe('snapshots at start-up', () => {
  it('a corrupt snapshot makes the namespace start a new log from the database, data intact', async () => {
    scope = new EngineScope();
    const nsDir = join(scope.tempDir(), 'ns');
    const first = await scope.open(nsDir, { maxFrames: 4n });
    const conn = first.connect();
    await run(conn, 'CREATE TABLE t (x)');
    for (let i = 0; i < 10; i++) await run(conn, 'INSERT INTO t VALUES (?)', [Buffer.alloc(3000, i)]);
    const log = framesOf(first).log;
    await log.drain();
    const oldLogId = log.logId;
    const [snap] = log.snapshots();
    expect(snap).toBeDefined();
    await first.close();
    // cut the snapshot short: its header no longer matches the file size
    const { size } = statSync(snap!.path);
    truncateSync(snap!.path, size - 100);

    const second = await scope.open(nsDir, { maxFrames: 4n });
    const newLog = framesOf(second).log;
    expect(newLog.logId).not.toBe(oldLogId);
    // the old log's history is gone with it (the new one may already have compacted its seed)
    expect(existsSync(snap!.path)).toBe(false);
    await newLog.drain();
    expect(await newLog.checkSnapshots()).toBeNull();
    const rows = await run(second.connect(), 'SELECT count(*) FROM t');
    expect(rows.rows[0]?.[0]).toBe(10n);
  });
});

describe('checkpoints in the commit path', () => {
  it('checkpoint once the WAL is big, and back off while a reader blocks them', async () => {
    scope = new EngineScope();
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { checkpointWalBytes: 16 * 1024 });
    const frames = framesOf(ns);
    let consulted = 0;
    frames.addCheckpointGuard(() => {
      consulted += 1;
      return true;
    });
    const writer = ns.connect();
    await run(writer, 'CREATE TABLE t (x)');
    // with nothing in the way, a commit that takes the WAL past 16 KB checkpoints it right away
    for (let i = 0; i < 20; i++) await run(writer, 'INSERT INTO t VALUES (?)', [Buffer.alloc(2000, i)]);
    expect(consulted).toBeGreaterThan(0);
    const reader = ns.connect();
    await run(reader, 'BEGIN');
    await run(reader, 'SELECT count(*) FROM t');
    const before = consulted;
    for (let i = 0; i < 50; i++) await run(writer, 'INSERT INTO t VALUES (?)', [Buffer.alloc(2000, i)]);
    // refused once (the reader's snapshot), then left to the retry timer instead of every commit
    expect(consulted - before).toBeLessThanOrEqual(2);
    await run(reader, 'COMMIT');
    expect(frames.checkpointNow()).toBe(true);
  });
});

describe('seeding a new log', () => {
  it('writes a database larger than one seeding piece as one transaction that replays to it', async () => {
    scope = new EngineScope();
    const dir = scope.tempDir();
    const nsDir = join(dir, 'ns');
    const first = await scope.open(nsDir);
    const conn = first.connect();
    await run(conn, 'CREATE TABLE t (x)');
    // ~6 MB: more than the 1024 pages read per seeding piece
    await run(conn, 'BEGIN');
    for (let i = 0; i < 1500; i++) await run(conn, 'INSERT INTO t VALUES (?)', [bytes(i, 4000)]);
    await run(conn, 'COMMIT');
    const oldLogId = framesOf(first).log.logId;
    await first.close();
    truncateSync(join(nsDir, 'wallog'), 10); // unusable: a new log is seeded from the database

    const second = await scope.open(nsDir);
    const log = framesOf(second).log;
    expect(log.logId).not.toBe(oldLogId);
    const pages = Number(inspectPrimary(second).pageCount);
    expect(pages).toBeGreaterThan(1024);
    // one transaction: only its last frame commits
    const frames = log.readFrames(0n, pages + 10);
    expect(frames).toHaveLength(pages);
    expect(frames.filter((f) => f.sizeAfter !== 0).map((f) => f.frameNo)).toEqual([BigInt(pages - 1)]);
    const out = join(dir, 'replayed.db');
    replayLog(log, out);
    expect(inspectFile(out).dump).toBe(inspectPrimary(second).dump);
  });
});
