import { existsSync, readFileSync, statSync } from 'node:fs';
import { getEventListeners, setMaxListeners } from 'node:events';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { noFaults } from '../../../src/engine/faults.js';
import { silentLogger, type Logger } from '../../../src/engine/logger.js';
import type { LoggedTransaction } from '../../../src/engine/pipeline/transactions.js';
import { decodeClientWalIndex, encodeClientWalIndex } from '../../../src/engine/replica/client-wal-index.js';
import { parseCrashAt } from '../../../src/engine/replica/crash-points.js';
import { ReplicaRole, type ReplicaRoleOptions } from '../../../src/engine/roles/replica-role.js';
import type { OpenTransaction, RoleHost } from '../../../src/engine/roles/role.js';
import { SqlError } from '../../../src/engine/sql-error.js';
import { ApplierScope, type Replica } from '../../helpers/applier-scope.js';
import { MemoryFrameSource, PagePrimary } from '../../helpers/page-transactions.js';

const scope = new ApplierScope();
const cleanups = scope.cleanups;
afterEach(() => scope.dispose());
const workload = (): PagePrimary => scope.workload();

function openDb(file: string): Database.Database {
  const db = new Database(file, { timeout: 0 });
  db.defaultSafeIntegers(true);
  cleanups.push(() => {
    db.close();
  });
  return db;
}

const count = (db: Database.Database, table = 't'): bigint => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as bigint;
const last = <T>(xs: readonly T[]): T => xs[xs.length - 1] as T;

/** A client read transaction as the host would expose it (rolled back by the applier). */
class ClientReader implements OpenTransaction {
  aborted: SqlError | null = null;
  constructor(readonly db: Database.Database) {}
  abortTransaction(reason: SqlError): void {
    this.db.exec('ROLLBACK');
    this.aborted = reason;
  }
  /** Runs a statement; the first one after an abort fails with the abort's reason. */
  query(sql: string): unknown {
    const reason = this.aborted;
    this.aborted = null;
    if (reason) throw reason;
    return this.db.prepare(sql).pluck().get();
  }
}

/** A logger whose debug lines containing `text` resolve `seen`. */
function watchingLogger(text: string): { logger: Logger; seen: Promise<void> } {
  let resolve = (): void => {};
  const seen = new Promise<void>((r) => (resolve = r));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (chunk.toString().includes(text)) resolve();
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), seen };
}

describe('replica files', () => {
  it("client_wal_index: sqld's 32 bytes (log_id u128 LE, frame_no u64 LE, all ones = none, zero padding)", () => {
    const logId = '00112233-4455-6677-8899-aabbccddeeff';
    const buf = encodeClientWalIndex({ logId, committedFrameNo: 0x0102n });
    expect(buf.toString('hex')).toBe(`ffeeddccbbaa99887766554433221100${'0201000000000000'}${'00'.repeat(8)}`);
    expect(decodeClientWalIndex(buf)).toEqual({ logId, committedFrameNo: 0x0102n });
    const none = encodeClientWalIndex({ logId, committedFrameNo: null });
    expect(none.subarray(16, 24).toString('hex')).toBe('ff'.repeat(8));
    expect(decodeClientWalIndex(none)?.committedFrameNo).toBeNull();
    expect(decodeClientWalIndex(Buffer.alloc(0))).toBeNull();
    expect(() => decodeClientWalIndex(Buffer.alloc(31))).toThrow(/32 bytes/);
  });

  it('parses crash points', () => {
    expect(parseCrashAt(undefined)).toBeNull();
    expect(parseCrashAt('')).toBeNull();
    expect(parseCrashAt('during-pages:3')).toEqual({ point: 'during-pages', after: 3 });
    expect(parseCrashAt('before-index')).toEqual({ point: 'before-index', after: 1 });
    for (const bad of ['during-pages:0', 'nowhere:1', 'after-redo:1:2', 'after-redo:x']) expect(() => parseCrashAt(bad)).toThrow(RangeError);
  });
});

describe('FrameApplier', () => {
  it('applies transactions one by one: every index equals the primary at that index', async () => {
    const primary = workload();
    const replica = scope.replica();
    const applier = await replica.open();
    await applier.reset('6f1c0e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6');
    expect(applier.logId).toBe('6f1c0e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6');
    expect(applier.appliedFrameNo).toBeNull();
    for (const txn of primary.transactions) {
      await applier.apply([txn]);
      expect(applier.appliedFrameNo).toBe(txn.lastFrameNo);
      replica.expectAt(primary, txn);
    }
    await expect(applier.apply([primary.transactions[0] as LoggedTransaction])).rejects.toThrow(/does not follow/);
  });

  it('applies several transactions as one unit (newest page wins, last size, largest frame_no)', async () => {
    const primary = workload();
    const replica = scope.replica();
    const applier = await replica.open();
    await applier.reset('0d6d9a77-2a3b-4c5d-9e8f-0123456789ab');
    const txns = primary.transactions;
    await applier.apply(txns.slice(0, 3));
    replica.expectAt(primary, txns[2] as LoggedTransaction);
    await applier.apply(txns.slice(3)); // includes a DROP, a VACUUM that shrinks, then growth again
    replica.expectAt(primary, last(txns));
  });

  it('patches page 1: rollback journal mode, change counter + 1, in-header size', async () => {
    const primary = workload();
    const replica = scope.replica();
    const applier = await replica.open();
    await applier.reset('11111111-2222-4333-8444-555555555555');
    let previous = 0;
    for (const txn of primary.transactions) {
      await applier.apply([txn]);
      const header = readFileSync(replica.paths.db).subarray(0, 100);
      expect([header[18], header[19]]).toEqual([1, 1]);
      expect(header.readUInt32BE(24)).toBe(previous + 1);
      expect(header.readUInt32BE(92)).toBe(previous + 1);
      expect(header.readUInt32BE(28)).toBe(txn.sizeAfter);
      previous = header.readUInt32BE(24);
    }
    const fresh = openDb(replica.paths.db);
    expect(fresh.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(count(fresh)).toBeGreaterThan(0n);
    expect(existsSync(`${replica.paths.db}-wal`)).toBe(false);
  });

  it('readers with cached pages see the new data, and a shrinking database is truncated', async () => {
    const primary = workload();
    const txns = primary.transactions;
    const replica = scope.replica();
    const applier = await replica.open();
    await applier.reset('22222222-3333-4444-8555-666666666666');
    await applier.apply(txns.slice(0, 3));
    const reader = openDb(replica.paths.db);
    const updated = reader.prepare("SELECT count(*) FROM t WHERE v LIKE '%-updated'").pluck();
    expect(updated.get()).toBe(0n);
    expect(txns[3]?.frames.some((f) => f.pageNo === 1)).toBe(false); // same size and header: only the counter tells
    await applier.apply([txns[3] as LoggedTransaction]);
    expect(updated.get()).toBe(10n);
    const before = count(reader);
    expect(count(reader, 'junk')).toBe(40n);
    const vacuumAt = txns.findIndex((t, i) => i > 0 && t.sizeAfter < (txns[i - 1] as LoggedTransaction).sizeAfter);
    expect(vacuumAt).toBeGreaterThan(4);
    const sizeBefore = statSync(replica.paths.db).size;
    for (const txn of txns.slice(4, vacuumAt + 1)) await applier.apply([txn]);
    expect(statSync(replica.paths.db).size).toBe((txns[vacuumAt] as LoggedTransaction).sizeAfter * 4096);
    expect(statSync(replica.paths.db).size).toBeLessThan(sizeBefore);
    expect(count(reader)).toBeLessThan(before); // rows deleted, the same connection and cache
    expect(() => count(reader, 'junk')).toThrow(/no such table/);
    await applier.apply(txns.slice(vacuumAt + 1));
    expect(reader.prepare("SELECT count(*) FROM t WHERE v LIKE 'late-%'").pluck().get()).toBe(10n);
    expect(reader.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('rolls back a read transaction after the grace period; autocommit reads stay consistent', async () => {
    const primary = new PagePrimary();
    cleanups.push(() => primary.close());
    primary.run('CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) INSERT INTO acct SELECT i, 100 FROM n');
    for (let i = 0; i < 6; i++) primary.run(`UPDATE acct SET bal = bal - ${i + 1} WHERE id = 1; UPDATE acct SET bal = bal + ${i + 1} WHERE id = 2`);
    const [first, ...rest] = primary.transactions as [LoggedTransaction, ...LoggedTransaction[]];
    const replica = scope.replica();
    const readers: ClientReader[] = [];
    const applier = await replica.open({ readGraceMs: 60, openTransactions: () => readers.filter((r) => r.db.inTransaction) });
    await applier.reset('33333333-4444-4555-8666-777777777777');
    await applier.apply([first]);
    const client = new ClientReader(openDb(replica.paths.db));
    readers.push(client);
    const auto = openDb(replica.paths.db);
    client.db.exec('BEGIN');
    expect(client.query('SELECT sum(bal) FROM acct')).toBe(1000n);
    for (const txn of rest) {
      const started = performance.now();
      let applied = false;
      const apply = applier.apply([txn]).then(() => (applied = true));
      let reads = 0;
      while (!applied) {
        // while the applier waits for the reader, autocommit reads see the last whole state
        expect(auto.prepare('SELECT sum(bal) FROM acct').pluck().get()).toBe(1000n);
        reads += 1;
        await new Promise(setImmediate);
      }
      await apply;
      if (txn === rest[0]) {
        expect(performance.now() - started).toBeGreaterThanOrEqual(50);
        expect(reads).toBeGreaterThan(1);
        expect(client.aborted?.code).toBe('TRANSACTION_TIMEOUT');
        expect(client.aborted?.message).toMatch(/replica had to apply new frames/);
        expect(() => client.query('SELECT 1')).toThrow(/replica had to apply/);
        expect(client.query('SELECT bal FROM acct WHERE id = 2')).toBe(101n);
      }
      expect(auto.prepare('SELECT sum(bal) FROM acct').pluck().get()).toBe(1000n);
    }
    expect(auto.prepare('SELECT bal FROM acct WHERE id = 1').pluck().get()).toBe(100n - 21n);
  });

  it('waits out a lock held outside its read transactions (asynchronously), then applies', async () => {
    const primary = workload();
    const replica = scope.replica();
    const { logger, seen } = watchingLogger('waits for readers');
    const applier = await replica.open({ logger });
    await applier.reset('44444444-5555-4666-8777-888888888888');
    await applier.apply(primary.transactions.slice(0, 2));
    const outsider = openDb(replica.paths.db);
    outsider.exec('BEGIN');
    const rows = count(outsider);
    let applied = false;
    const apply = applier.apply(primary.transactions.slice(2)).then(() => (applied = true));
    await seen;
    expect(applied).toBe(false);
    expect(count(outsider)).toBe(rows);
    outsider.exec('COMMIT');
    await apply;
    replica.expectAt(primary, last(primary.transactions));
  });

});

/** A RoleHost over real files; the write lock is never used by a replica. */
function roleHost(replica: Replica): RoleHost {
  const maintenance = openDb(replica.paths.db);
  const noLock = (): never => {
    throw new Error('a replica never takes the write lock');
  };
  return {
    name: 'default',
    paths: replica.paths,
    files: replica.files,
    logger: silentLogger(),
    faults: noFaults,
    maintenance,
    openInternalConnection: () => openDb(replica.paths.db),
    acquireWriteLock: () => Promise.reject(new Error('a replica never takes the write lock')),
    tryAcquireWriteLock: noLock,
    releaseWriteLock: noLock,
    openTransactions: () => [],
  };
}

async function openRole(opts: ReplicaRoleOptions = {}): Promise<{ role: ReplicaRole; replica: Replica }> {
  const replica = scope.replica();
  const role = new ReplicaRole({ maxBatchFrames: 64, ...opts });
  await role.open(roleHost(replica));
  cleanups.push(() => role.close());
  return { role, replica };
}

describe('ReplicaRole', () => {
  it('refuses writes with SQLITE_READONLY', async () => {
    const { role } = await openRole();
    expect(role.journalMode).toBe('rollback');
    let refused: unknown = null;
    try {
      role.beforeWrite();
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(SqlError);
    expect((refused as SqlError).code).toBe('SQLITE_READONLY');
    expect((refused as SqlError).message).toMatch(/read-only replica/);
  });

  it('follows a source: backfill, live appends, snapshots (NEED_SNAPSHOT), then abort', async () => {
    const primary = workload();
    const txns = primary.transactions;
    const source = new MemoryFrameSource(txns.slice(0, 5));
    source.compact((txns[1] as LoggedTransaction).lastFrameNo);
    source.compact((txns[3] as LoggedTransaction).lastFrameNo);
    let batches = 0;
    const { role, replica } = await openRole({ crashHook: (p) => void (p === 'before-index' && batches++) });
    const ctl = new AbortController();
    const following = role.follow(source, ctl.signal);
    await role.waitForIndex((txns[4] as LoggedTransaction).lastFrameNo);
    expect(batches).toBe(3); // two snapshots, then the one transaction left in the log
    replica.expectAt(primary, txns[4] as LoggedTransaction);
    source.append(...txns.slice(5));
    await role.waitForIndex(last(txns).lastFrameNo);
    expect(batches).toBe(4); // the three appended at once went in together
    replica.expectAt(primary, last(txns));
    expect(role.replicationIndex()).toBe(last(txns).lastFrameNo);
    ctl.abort();
    await following;
    expect(source.waiting).toBe(0);
  });

  it('starts over on LOG_CHANGED and for a source of another log', async () => {
    const small = new PagePrimary();
    cleanups.push(() => small.close());
    small.run('CREATE TABLE old (x); INSERT INTO old VALUES (1)');
    const primary = workload();
    const source = new MemoryFrameSource(small.transactions);
    const { role, replica } = await openRole();
    const ctl = new AbortController();
    const following = role.follow(source, ctl.signal);
    await role.waitForIndex(last(small.transactions).lastFrameNo);
    for (let i = 2; i <= 6; i++) {
      source.append(small.run(`INSERT INTO old VALUES (${i})`)); // one apply each: the counter climbs
      await role.waitForIndex(last(small.transactions).lastFrameNo);
    }
    replica.expectAt(small, last(small.transactions));
    const counter = (): number => readFileSync(replica.paths.db).readUInt32BE(24);
    const counterBefore = counter();
    source.newLog(primary.transactions);
    await role.waitForIndex(last(primary.transactions).lastFrameNo);
    replica.expectAt(primary, last(primary.transactions));
    expect(counter()).toBeGreaterThan(counterBefore); // continues across the reset: no reader cache matches
    expect(role.logId()).toBe(source.logId);
    ctl.abort();
    await following;
    const extra = primary.run("INSERT INTO t (v) VALUES ('after the second log')");
    const other = new MemoryFrameSource(primary.transactions);
    const again = new AbortController();
    const second = role.follow(other, again.signal);
    await role.waitForIndex(extra.lastFrameNo); // beyond everything of the previous log
    expect(role.logId()).toBe(other.logId);
    replica.expectAt(primary, extra);
    again.abort();
    await second;
  });

  it('waitForIndex: 10 000 waiters resolve together and leave no abort listener behind', async () => {
    const primary = workload();
    const source = new MemoryFrameSource(primary.transactions.slice(0, 1));
    const { role } = await openRole();
    const ctl = new AbortController();
    const following = role.follow(source, ctl.signal);
    await role.waitForIndex(0n);
    const waits = new AbortController();
    setMaxListeners(20_000, waits.signal);
    const target = (primary.transactions[2] as LoggedTransaction).lastFrameNo;
    const all = Array.from({ length: 10_000 }, () => role.waitForIndex(target, waits.signal));
    const cancelled = new AbortController();
    const dropped = role.waitForIndex(target, cancelled.signal);
    expect(getEventListeners(waits.signal, 'abort')).toHaveLength(10_000);
    cancelled.abort(new Error('client went away'));
    await expect(dropped).rejects.toThrow('client went away');
    source.append(...primary.transactions.slice(1));
    await Promise.all(all);
    expect(getEventListeners(waits.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(cancelled.signal, 'abort')).toHaveLength(0);
    ctl.abort();
    await following;
  });
});
