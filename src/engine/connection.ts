import Database from 'better-sqlite3';
import type { MaybePromise } from '../maybe-async.js';
import { bindArgs } from './bind.js';
import type { ClientConnection, StatementDescription } from './client-connection.js';
import { runProgram, type ProgramStep, type RunProgramOptions, type StepOutcome } from './program.js';
import { classifyStatement, type SplitStmt } from './sql-split.js';
import { synchronousFor, type NamespaceConfig } from './namespace-config.js';
import { blockedError, ForbiddenError, SqlError, toSqlError } from './sql-error.js';
import { findParameters, type SqlParam } from './sql-params.js';
import { RowStream } from './row-stream.js';
import type { StatementGuard } from './watchdog.js';
import { needsWritePermission, statementPolicyError } from './statement-policy.js';
import type { LockHolder } from './write-lock.js';
import { estimateValueSize, type ExecResult, type SqlArgs, type SqlColumn, type SqlValue } from './values.js';

/** What a connection needs from its namespace database. */
export interface ConnectionHost {
  readonly name: string;
  /** A SQLite handle from the namespace's idle pool, or a new one. */
  takeHandle(): SqliteHandle;
  /** Gives a handle back (in autocommit) for the next connection. */
  returnHandle(handle: SqliteHandle): void;
  acquireWriteLock(holder: LockHolder, signal?: AbortSignal): Promise<void>;
  /** Takes the lock at once when it is free (nobody holds it or waits); false otherwise. */
  tryAcquireWriteLock?(holder: LockHolder): boolean;
  releaseWriteLock(holder: LockHolder): void;
  holdsWriteLock(holder: LockHolder): boolean;
  /** Called when a write transaction is about to start, with the lock held; throws (or rejects) to refuse writes. */
  beforeWrite(): void | Promise<void>;
  /** Called after a write transaction committed, while the lock is still held. */
  afterCommit(): void;
  onConnectionClosed(conn: SqlConnection): void;
  /** The namespace's replication index (primary: last logged commit; replica: last applied). */
  replicationIndex(): bigint | null;
  /** The namespace's current settings (blocking, size limit, durability; namespace-config.ts). */
  readonly config: NamespaceConfig;
  /** Counts a client statement that ran (namespace-stats.ts). */
  recordQuery(sql: string, rowsRead: number, rowsWritten: number, elapsedMs: number): void;
}

export interface ExecOptions {
  /** The session may write (authorization, spec §3.7). */
  allowWrite: boolean;
  /** Response size limit for this statement's rows (bytes, estimated). */
  maxResponseBytes: number;
  /** Engine-internal callers (maintenance, tests) may run what clients may not (VACUUM, pragmas). */
  trusted?: boolean;
  signal?: AbortSignal;
}

export interface Prepared {
  stmt: Database.Statement;
  info: SplitStmt;
  columns: SqlColumn[] | null;
  isInsert: boolean;
  params: SqlParam[];
  /** Running it may change connection state (pragmas, attached or temp objects): don't pool the handle. */
  taints: boolean;
  /** Why a client may not run it (sqld's statement classes), or null. */
  refused: Error | null;
  /** A principal needs Write permission to run it (sqld's classes: statement-policy.ts). */
  needsWrite: boolean;
  /** Which block of the namespace config refuses it: reads (also blocks writes), writes, or none (COMMIT, SAVEPOINT, …). */
  blockedBy: 'reads' | 'writes' | 'none';
}

/** A statement that passed `admit`: what to run, its bound arguments, and whether a BEGIN was demoted to a read-only one. */
interface Admitted {
  p: Prepared;
  bound: ReturnType<typeof bindArgs>;
  demotedBegin: boolean;
}

/** Transaction ends, savepoints and (refused anyway) ATTACH/DETACH are never blocked, as in sqld. */
const NEVER_BLOCKED = new Set(['commit', 'rollback', 'savepoint', 'release', 'rollback_to', 'attach', 'detach']);

const TAINTING_KINDS = new Set(['pragma', 'attach', 'detach', 'other']);
const TEMP_RE = /\btemp(?:orary)?\b/i;

const CACHE_SIZE = 64;
const INSERT_RE = /^(?:\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*(?:insert|replace)\b/i;

/**
 * A physical SQLite connection with its prepared-statement cache. Handles outlive the logical
 * SqlConnections that borrow them: opening a connection per request costs more than the query.
 */
export class SqliteHandle {
  readonly cache = new Map<string, Prepared>();
  /** The newest entry of the cache (no reordering when the same statement runs again). */
  private lastSql: string | null = null;
  private lastPrepared: Prepared | null = null;
  /** Set once a statement may have changed per-connection state; such a handle is closed, not reused. */
  dirty = false;
  /** The namespace config version whose per-connection settings this connection has (0: none yet). */
  private configVersion = 0;
  /** SQLite's own `max_page_count` for this connection, restored when the namespace's limit is lifted. */
  private defaultMaxPages: number | null = null;

  /** @param guard the statement watchdog's hold on this connection (null: its statements have no time limit) */
  constructor(
    readonly sqlite: Database.Database,
    readonly guard: StatementGuard | null = null,
  ) {}

  /** Prepares (or finds in the cache) a statement with its classification and parameters. */
  prepare(sql: string): Prepared {
    // The statement just run again (a loop of the same statement): already the newest entry.
    if (sql === this.lastSql && this.lastPrepared !== null) return this.lastPrepared;
    const hit = this.cache.get(sql);
    if (hit) {
      this.cache.delete(sql);
      this.cache.set(sql, hit);
      this.lastSql = sql;
      this.lastPrepared = hit;
      return hit;
    }
    const info = classifyStatement(sql);
    const text = info.kind === 'begin' && info.beginMode === 'readonly' ? 'BEGIN DEFERRED' : sql;
    let stmt: Database.Statement;
    try {
      stmt = this.sqlite.prepare(text);
    } catch (err) {
      throw toSqlError(err, 'prepare');
    }
    if (stmt.reader) stmt.raw(true);
    const columns = stmt.reader ? stmt.columns().map((c) => ({ name: c.name, decltype: c.type })) : null;
    const taints = TAINTING_KINDS.has(info.kind) || (info.kind === 'ddl' && TEMP_RE.test(sql));
    const needsWrite = needsWritePermission(info, stmt.readonly);
    const blockedBy = NEVER_BLOCKED.has(info.kind) ? 'none' : info.kind === 'begin' || !needsWrite ? 'reads' : 'writes';
    const p: Prepared = { stmt, info, columns, isInsert: INSERT_RE.test(sql), params: findParameters(sql), taints, refused: statementPolicyError(info), needsWrite, blockedBy };
    this.cache.set(sql, p);
    this.lastSql = sql;
    this.lastPrepared = p;
    if (this.cache.size > CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return p;
  }

  /**
   * Brings the per-connection settings of the namespace config onto this connection (a version
   * check per statement; the pragmas run only when the config changed). `PRAGMA synchronous` cannot
   * change inside a transaction: then it waits for the next statement outside one.
   */
  applyConfig(config: NamespaceConfig): void {
    if (config.version === this.configVersion || this.sqlite.inTransaction) return;
    try {
      this.defaultMaxPages ??= Number(this.sqlite.pragma('max_page_count', { simple: true }));
      // SQLite keeps the limit at least at the current page count: writes that need more pages fail with SQLITE_FULL.
      this.sqlite.pragma(`max_page_count = ${config.maxDbPages ?? this.defaultMaxPages}`);
      this.sqlite.pragma(`synchronous = ${synchronousFor(config.durabilityMode)}`);
    } catch (err) {
      // The statement fails with SQLite's reason; the next one tries again.
      throw toSqlError(err, 'run');
    }
    this.configVersion = config.version;
  }

  close(): void {
    this.cache.clear();
    this.lastSql = null;
    this.lastPrepared = null;
    this.sqlite.close();
  }
}

/**
 * One SQLite connection owned by one Hrana stream (or one legacy request). Writes go through the
 * namespace's async write lock; the lock is kept until the connection is back in autocommit.
 */
export class SqlConnection implements LockHolder, ClientConnection {
  private readonly handle: SqliteHandle;
  private readonly sqlite: Database.Database;
  private readonlyTxn = false;
  private timedOut = false;
  /** Set when the engine rolled back this connection's transaction (replica apply): the next statement fails with it. */
  private aborted: SqlError | null = null;
  private closed = false;
  /** The cursor statement reading on this connection, if any. */
  private rows: RowStream | null = null;

  constructor(private readonly host: ConnectionHost) {
    this.handle = host.takeHandle();
    this.sqlite = this.handle.sqlite;
  }

  /** False inside a transaction, and while a cursor's statement holds its read snapshot. */
  get isAutocommit(): boolean {
    return !this.sqlite.inTransaction && !this.rows?.isOpen;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Inside a transaction begun with `BEGIN … READONLY`. */
  get inReadonlyTransaction(): boolean {
    return this.readonlyTxn && this.sqlite.inTransaction;
  }

  /** Rolls back an open transaction (a replica moving a program to its primary); no-op in autocommit. */
  rollback(): void {
    this.rollBackForEngine();
  }

  /**
   * Reports (once) that the previous transaction was rolled back because it held the write lock too
   * long; the next program must then fail with TRANSACTION_TIMEOUT (spec §4.7).
   */
  takeTimedOut(): boolean {
    const t = this.timedOut;
    this.timedOut = false;
    return t;
  }

  preempt(): void {
    if (this.rollBackForEngine()) this.timedOut = true;
  }

  /** Rolls back the open transaction for the engine (a replica applying frames); the next statement fails with `reason`. */
  abortTransaction(reason: SqlError): void {
    if (this.rollBackForEngine(reason)) this.aborted = reason;
  }

  /** Ends an open transaction the engine takes away (preemption, replica apply); true when there was one. */
  private rollBackForEngine(reason?: SqlError): boolean {
    const reading = this.rows?.isOpen === true;
    this.rows?.close(reason ?? new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out'));
    const had = this.sqlite.inTransaction || reading;
    if (had) {
      try {
        this.sqlite.exec('ROLLBACK');
      } catch {
        // the connection is unusable anyway; the next statement reports the error
      }
    }
    this.readonlyTxn = false;
    this.host.releaseWriteLock(this);
    return had;
  }

  /** Describes a statement without running it. */
  describe(sql: string): StatementDescription {
    const p = this.prepare(sql);
    return {
      params: parameterNames(p.params),
      columns: p.columns ?? [],
      isExplain: p.info.kind === 'explain',
      isReadonly: p.stmt.readonly,
    };
  }

  /** The checks every statement passes before it runs; the statement to run and its bound arguments. */
  private admit(sql: string, args: SqlArgs, opts: ExecOptions): Admitted {
    this.assertOpen();
    if (this.rows?.isOpen) throw new SqlError('CURSOR_BUSY', 'A cursor is still reading on this connection');
    if (this.aborted) {
      const reason = this.aborted;
      this.aborted = null;
      throw reason;
    }
    // Before preparing: SQLite compiles a pragma's current value into the statement.
    this.handle.applyConfig(this.host.config);
    let p = this.prepare(sql);
    if (p.refused && !opts.trusted) throw p.refused;
    if (p.taints) this.handle.dirty = true;
    const bound = bindArgs(p.params, args, p.info.kind === 'explain');
    // A read-only principal's BEGIN IMMEDIATE/EXCLUSIVE is allowed (sqld classes it as a read) but
    // runs deferred and read-only: it must not take the write lock it could never use.
    const demotedBegin = !opts.allowWrite && p.info.kind === 'begin' && (p.info.beginMode === 'immediate' || p.info.beginMode === 'exclusive');
    if (demotedBegin) p = this.prepare('BEGIN DEFERRED');
    if (p.needsWrite && !opts.allowWrite) {
      throw new ForbiddenError('FORBIDDEN', `Authorization forbidden: Current session doesn't not have Write permission to namespace ${this.host.name}`);
    }
    const config = this.host.config;
    if (!opts.trusted && p.blockedBy !== 'none' && (config.blockReads || (config.blockWrites && p.blockedBy === 'writes'))) {
      throw blockedError(config.blockReason);
    }
    return { p, bound, demotedBegin };
  }

  /**
   * Like `execute`, but a read-only statement that returns rows hands them out a piece at a time
   * (`RowStream`, for cursors) instead of all at once; anything else runs whole.
   */
  async openRows(sql: string, args: SqlArgs, opts: ExecOptions): Promise<{ result: ExecResult } | { rows: RowStream }> {
    this.assertOpen();
    this.handle.applyConfig(this.host.config);
    const probe = this.prepare(sql);
    if (!probe.stmt.reader || !probe.stmt.readonly) return { result: await this.execute(sql, args, opts) };
    const { p, bound } = this.admit(sql, args, opts);
    let iter: IterableIterator<SqlValue[]>;
    try {
      iter = p.stmt.iterate(...bound) as IterableIterator<SqlValue[]>;
    } catch (err) {
      throw toSqlError(err, 'run');
    }
    const watched = opts.trusted ? null : (this.handle.guard?.forFetches(this.sqlite, this.host.name, sql) ?? null);
    const started = performance.now();
    const rows = new RowStream(iter, p.columns ?? [], () => {
      if (this.rows === rows) this.rows = null;
      if (!opts.trusted) this.host.recordQuery(sql, rows.rowsRead, 0, performance.now() - started);
      this.settle();
    }, watched);
    this.rows = rows;
    return { rows };
  }

  /**
   * `execute` without a turn of the promise queue where nothing has to wait: reads, statements of a
   * write transaction this connection is in, and writes that find the write lock free and the
   * role's check before a write synchronous. A result then, else a promise of one.
   */
  executeNow(sql: string, args: SqlArgs, opts: ExecOptions): MaybePromise<ExecResult> {
    const admitted = this.admit(sql, args, opts);
    if (!this.needsWriteLock(admitted.p)) return this.runAdmitted(sql, admitted, opts);
    // A free lock is taken at once (the usual single writer); otherwise the statement waits its turn.
    if (this.host.tryAcquireWriteLock?.(this) === true) return this.checkThenRun(sql, admitted, opts);
    return this.host.acquireWriteLock(this, opts.signal).then(() => this.checkThenRun(sql, admitted, opts));
  }

  async execute(sql: string, args: SqlArgs, opts: ExecOptions): Promise<ExecResult> {
    return this.executeNow(sql, args, opts);
  }

  /**
   * With the write lock just taken: the role's check before a write, then the statement. When the
   * check refuses, the lock goes back, also inside an open (deferred) transaction, or a retry would
   * skip the refusal: nothing was written under it.
   */
  private checkThenRun(sql: string, admitted: Admitted, opts: ExecOptions): MaybePromise<ExecResult> {
    let check: void | Promise<void>;
    try {
      this.assertOpen();
      check = this.host.beforeWrite();
    } catch (err) {
      this.host.releaseWriteLock(this);
      throw err;
    }
    if (!check) return this.runAdmitted(sql, admitted, opts);
    return check.then(
      () => {
        try {
          this.assertOpen();
        } catch (err) {
          this.host.releaseWriteLock(this);
          throw err;
        }
        return this.runAdmitted(sql, admitted, opts);
      },
      (err: unknown) => {
        this.host.releaseWriteLock(this);
        throw err;
      },
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new SqlError('STREAM_NOT_OPEN', 'The connection is closed');
  }

  /** Whether the statement writes without the write lock held (refused inside a read-only transaction). */
  private needsWriteLock(p: Prepared): boolean {
    if (p.stmt.readonly) return false;
    if (this.readonlyTxn) throw new SqlError('SQLITE_READONLY', 'SQLite error: cannot write in a read-only transaction');
    return !this.host.holdsWriteLock(this);
  }

  /** Runs an admitted statement (the write lock held where it writes), then settles the connection. */
  private runAdmitted(sql: string, { p, bound, demotedBegin }: Admitted, opts: ExecOptions): ExecResult {
    const guard = opts.trusted ? null : this.handle.guard;
    const inTransaction = guard !== null && this.sqlite.inTransaction;
    const started = performance.now();
    try {
      const result = this.run(p, bound, opts.maxResponseBytes, guard, started);
      if (demotedBegin || (p.info.kind === 'begin' && p.info.beginMode === 'readonly')) this.readonlyTxn = true;
      if (!opts.trusted) this.host.recordQuery(sql, result.rowsRead, result.rowsWritten, result.durationMs);
      return result;
    } catch (err) {
      throw guard ? guard.failed(err, this.sqlite, this.host.name, sql, inTransaction, performance.now() - started) : err;
    } finally {
      this.settle();
    }
  }

  runProgram(steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[]> {
    return runProgram(this, steps, opts);
  }

  replicationIndex(): bigint | null {
    return this.host.replicationIndex();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rows?.close();
    try {
      if (this.sqlite.inTransaction) this.sqlite.exec('ROLLBACK');
    } catch {
      // closing anyway
    }
    this.host.releaseWriteLock(this);
    this.host.onConnectionClosed(this);
    this.host.returnHandle(this.handle);
  }

  /** After each statement: a finished write transaction is captured, then the lock is released. */
  private settle(): void {
    if (this.sqlite.inTransaction) return;
    this.readonlyTxn = false;
    if (this.host.holdsWriteLock(this)) {
      try {
        this.host.afterCommit();
      } finally {
        this.host.releaseWriteLock(this);
      }
    }
  }

  /** Runs a client's statement; with a guard, the watchdog interrupts it once it runs too long. */
  private run(p: Prepared, bound: ReturnType<typeof bindArgs>, maxBytes: number, guard: StatementGuard | null, started: number): ExecResult {
    if (!guard) return this.step(p, bound, maxBytes, started);
    guard.arm();
    try {
      return this.step(p, bound, maxBytes, started);
    } finally {
      guard.disarm();
    }
  }

  private step(p: Prepared, bound: ReturnType<typeof bindArgs>, maxBytes: number, started: number): ExecResult {
    try {
      if (p.stmt.reader) {
        const rows: SqlValue[][] = [];
        let size = 0;
        for (const row of p.stmt.iterate(...bound) as IterableIterator<SqlValue[]>) {
          for (const v of row) size += estimateValueSize(v);
          if (size > maxBytes) {
            throw new SqlError('RESPONSE_TOO_LARGE', 'Response is too large');
          }
          rows.push(row);
        }
        let changes = 0;
        let lastInsertRowid: bigint | null = null;
        if (!p.stmt.readonly) {
          const r = this.sqlite.prepare('SELECT changes(), last_insert_rowid()').raw(true).get() as [bigint, bigint];
          changes = Number(r[0]);
          if (p.isInsert) lastInsertRowid = r[1];
        }
        return {
          columns: p.columns ?? [],
          rows,
          changes,
          lastInsertRowid,
          rowsRead: rows.length,
          rowsWritten: changes,
          durationMs: performance.now() - started,
        };
      }
      const info = p.stmt.run(...bound);
      const changes = Number(info.changes);
      return {
        columns: [],
        rows: [],
        changes,
        lastInsertRowid: p.isInsert ? BigInt(info.lastInsertRowid) : null,
        rowsRead: 0,
        rowsWritten: changes,
        durationMs: performance.now() - started,
      };
    } catch (err) {
      throw toSqlError(err, err instanceof RangeError || err instanceof TypeError ? 'bind' : 'run');
    }
  }

  private prepare(sql: string): Prepared {
    return this.handle.prepare(sql);
  }

}

/** Parameter names by index (null for a bare `?`), as Hrana's describe reports them. */
function parameterNames(params: readonly SqlParam[]): (string | null)[] {
  const count = params.length === 0 ? 0 : params[params.length - 1]!.index;
  const names = new Array<string | null>(count).fill(null);
  for (const p of params) names[p.index - 1] = p.name;
  return names;
}
