/**
 * The frame pipeline end to end, in one process: a primary's FrameSource applied into a replica-role
 * database by ReplicaRole.follow while clients read the replica (design.md §5).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import type { LibsqlctlError } from '../../src/errors.js';
import { NamespaceDb } from '../../src/engine/namespace-db.js';
import { ReplicaRole } from '../../src/engine/roles/replica-role.js';
import { EngineScope, inspectFile, inspectPrimary, run } from '../helpers/engine-log.js';
import { cliCount, cliIntegrity, holdReadTransaction, requireSqliteCli } from '../helpers/sqlite-cli.js';

let scope: EngineScope;
const replicas: NamespaceDb[] = [];

afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
  await scope.dispose();
});

async function openReplica(dir: string, readGraceMs = 50): Promise<{ db: NamespaceDb; role: ReplicaRole }> {
  const role = new ReplicaRole({ readGraceMs });
  const db = new NamespaceDb({ paths: new NamespacePaths(dir), name: 'replica', txnTimeoutMs: 60_000, role });
  await db.open();
  replicas.push(db);
  return { db, role };
}

describe('primary → replica through the frame source', () => {
  it('follows live commits while readers run, each read seeing a committed state', async () => {
    scope = new EngineScope();
    const dir = scope.tempDir();
    const primary = await scope.open(join(dir, 'primary'));
    const writer = primary.connect();
    await run(writer, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    await run(writer, 'CREATE TABLE total (n INTEGER)');
    await run(writer, 'INSERT INTO total VALUES (0)');

    const { db: replica, role } = await openReplica(join(dir, 'replica'));
    const abort = new AbortController();
    const following = role.follow(primary.frames!.frameSource(), abort.signal);
    await role.waitForIndex(primary.replicationIndex()!);

    const reader = replica.connect();
    // Every transaction inserts one row and bumps the total: a torn or half-applied state would differ.
    const check = async (): Promise<void> => {
      const r = await run(reader, 'SELECT (SELECT count(*) FROM t), (SELECT n FROM total)');
      const [count, n] = r.rows[0] as [bigint, bigint];
      expect(count).toBe(n);
    };
    let applied = 0;
    let lastIndex = role.replicationIndex();
    for (let i = 0; i < 300; i++) {
      await run(writer, 'BEGIN');
      await run(writer, 'INSERT INTO t (v) VALUES (?)', [Buffer.alloc(100 + (i % 7) * 900, i)]);
      await run(writer, 'UPDATE total SET n = n + 1');
      await run(writer, 'COMMIT');
      if (i === 150) {
        // A transaction that shrinks the table (the database may shrink with it).
        await run(writer, 'BEGIN');
        await run(writer, 'DELETE FROM t WHERE id % 5 = 0');
        await run(writer, 'UPDATE total SET n = (SELECT count(*) FROM t)');
        await run(writer, 'COMMIT');
      }
      // Reads between (and while) the replica applies batches of transactions.
      await check();
      if (i % 3 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (i % 50 === 0) await role.waitForIndex(primary.replicationIndex()!);
      await check();
      if (role.replicationIndex() !== lastIndex) applied += 1;
      lastIndex = role.replicationIndex();
    }
    await role.waitForIndex(primary.replicationIndex()!);
    await check();
    // The replica applied while being read, not only at the end.
    expect(applied).toBeGreaterThanOrEqual(6);
    const expected = inspectPrimary(primary);
    const got = inspectFile(replica.dbFile);
    expect(got.integrity).toBe('ok');
    expect(got.dump).toBe(expected.dump);
    expect((await run(reader, 'SELECT count(*) FROM t')).rows[0]?.[0]).toBe((await run(writer, 'SELECT count(*) FROM t')).rows[0]?.[0]);
    // The replica refuses writes, with its own error.
    const refused = await run(reader, 'INSERT INTO total VALUES (1)').catch((err: unknown) => err as LibsqlctlError);
    expect((refused as LibsqlctlError).code).toBe('SQLITE_READONLY');
    abort.abort();
    await following;
  });

  it('rolls back a read transaction that holds the applier up, with a clear error on its next statement', async () => {
    scope = new EngineScope();
    const dir = scope.tempDir();
    const primary = await scope.open(join(dir, 'primary'));
    const writer = primary.connect();
    await run(writer, 'CREATE TABLE t (x)');
    const { db: replica, role } = await openReplica(join(dir, 'replica'), 30);
    const abort = new AbortController();
    const following = role.follow(primary.frames!.frameSource(), abort.signal);
    await role.waitForIndex(primary.replicationIndex()!);

    const holder = replica.connect();
    await run(holder, 'BEGIN');
    expect((await run(holder, 'SELECT count(*) FROM t')).rows[0]?.[0]).toBe(0n);
    await run(writer, 'INSERT INTO t VALUES (1)');
    // The applier waits out the grace period, then rolls the reader back and applies.
    await role.waitForIndex(primary.replicationIndex()!);
    const err = await run(holder, 'SELECT count(*) FROM t').catch((e: unknown) => e as LibsqlctlError);
    expect((err as LibsqlctlError).code).toBe('TRANSACTION_TIMEOUT');
    expect((await run(holder, 'SELECT count(*) FROM t')).rows[0]?.[0]).toBe(1n);
    abort.abort();
    await following;
  });

  it('starts from a snapshot when the primary compacted its log (NEED_SNAPSHOT), then follows the log', async () => {
    scope = new EngineScope();
    const dir = scope.tempDir();
    const primary = await scope.open(join(dir, 'primary'), { maxFrames: 20n });
    const writer = primary.connect();
    await run(writer, 'CREATE TABLE t (x)');
    for (let i = 0; i < 100 && primary.frames!.log.startFrameNo === 0n; i++) await run(writer, 'INSERT INTO t VALUES (?)', [Buffer.alloc(3000, i)]);
    expect(primary.frames!.log.startFrameNo).toBeGreaterThan(0n);
    await primary.frames!.log.drain();

    const { db: replica, role } = await openReplica(join(dir, 'replica'));
    const abort = new AbortController();
    const following = role.follow(primary.frames!.frameSource(), abort.signal);
    for (let i = 0; i < 10; i++) await run(writer, 'INSERT INTO t VALUES (?)', [`after-${i}`]);
    await role.waitForIndex(primary.replicationIndex()!);
    const got = inspectFile(replica.dbFile);
    expect(got.integrity).toBe('ok');
    expect(got.dump).toBe(inspectPrimary(primary).dump);
    abort.abort();
    await following;
  });

  it('an outside reader (sqlite3) of the replica sees every applied row, holds the applier up only while it reads, and leaves the engine its locks', async () => {
    await requireSqliteCli();
    scope = new EngineScope();
    const dir = scope.tempDir();
    const primary = await scope.open(join(dir, 'primary'));
    const writer = primary.connect();
    await run(writer, 'CREATE TABLE t (x)');
    const { db: replica, role } = await openReplica(join(dir, 'replica'));
    const abort = new AbortController();
    const following = role.follow(primary.frames!.frameSource(), abort.signal);
    for (let i = 0; i < 20; i++) await run(writer, 'INSERT INTO t VALUES (?)', [i]);
    await role.waitForIndex(primary.replicationIndex()!);
    expect(await cliCount(replica.dbFile, 't')).toBe(20);
    expect(await cliIntegrity(replica.dbFile)).toBe('ok');

    // While another process holds a read transaction on the replica, applying waits (it cannot take
    // the exclusive lock); once the reader lets go, the frames are applied.
    const held = await holdReadTransaction(replica.dbFile, 't');
    const before = role.replicationIndex();
    await run(writer, 'INSERT INTO t VALUES (20)');
    const target = primary.replicationIndex()!;
    const applied = role.waitForIndex(target);
    // A negative ("not applied while the reader holds its lock") can only be observed over an interval.
    await new Promise<void>((resolve) => setTimeout(resolve, 100));
    expect(role.replicationIndex()).toBe(before);
    await held.release();
    await applied;
    expect(await cliCount(replica.dbFile, 't')).toBe(21);
    // The engine's own descriptor of the replica file is still open (no descriptor was closed under it).
    const fds = readdirSync('/proc/self/fd').map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    expect(fds.filter((l) => l === replica.dbFile).length).toBeGreaterThan(0);
    expect(fds.some((l) => l.endsWith('(deleted)') && l.startsWith(replica.dbFile))).toBe(false);
    abort.abort();
    await following;
    expect(inspectFile(replica.dbFile).dump).toBe(inspectPrimary(primary).dump);
  });
});
