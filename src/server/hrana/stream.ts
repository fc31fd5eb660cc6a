import type { ClientConnection } from '../../engine/client-connection.js';
import { andThen, type MaybePromise } from '../../maybe-async.js';
import { condRefsValid, type ProgramCond, type ProgramStep, type RunProgramOptions } from '../../engine/program.js';
import { splitStatements } from '../../engine/sql-split.js';
import { NO_ARGS, type ExecResult } from '../../engine/values.js';
import type { Logger } from '../../engine/logger.js';
import { cursorLimits, streamCursor } from './cursor.js';
import { asStatementError, ProtocolError, transactionTimeout } from './errors.js';
import { MAX_COND_DEPTH } from './nesting.js';
import type { Batch, BatchResult, CursorEntry, DescribeResult, HranaErrorBody, HranaVersion, Stmt, StmtResult } from './protocol.js';
import type { SqlStore } from './sql-store.js';
import { decodeArgs, encodeValue } from './values.js';

/** Per-request facts a stream needs: protocol version, rights of the session, response limit. */
export interface StreamContext {
  version: HranaVersion;
  allowWrite: boolean;
  maxResponseBytes: number;
  /** For cursors' timers (their errors are logged, never thrown); cursors stream rows only with one. */
  logger?: Logger;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireVersion(ctx: StreamContext, min: HranaVersion, what: string): void {
  if (ctx.version < min) throw new ProtocolError(`${what} is only supported in protocol version hrana${min} and higher`);
}

/**
 * A Hrana stream: one SQLite connection plus the SQL store it resolves `sql_id`s against. Transport
 * neutral: HTTP pipelines and WebSocket sessions both drive it.
 */
export class HranaStream {
  constructor(
    private readonly conn: ClientConnection,
    readonly store: SqlStore,
  ) {}

  get isAutocommit(): boolean {
    return this.conn.isAutocommit;
  }

  get isClosed(): boolean {
    return this.conn.isClosed;
  }

  close(): void {
    this.conn.close();
  }

  async execute(stmt: unknown, ctx: StreamContext): Promise<StmtResult> {
    return this.executeNow(stmt, ctx);
  }

  /** `execute` without a turn of the promise queue where the connection runs the statement so. */
  executeNow(stmt: unknown, ctx: StreamContext): MaybePromise<StmtResult> {
    this.checkTimedOut();
    const { sql, args } = this.resolveStmt(stmt, ctx);
    const opts = { allowWrite: ctx.allowWrite, maxResponseBytes: ctx.maxResponseBytes };
    const result = this.conn.executeNow ? this.conn.executeNow(sql, args, opts) : this.conn.execute(sql, args, opts);
    return andThen(result, (r) => this.stmtResult(r, this.replicationIndex()));
  }

  async batch(batch: unknown, ctx: StreamContext): Promise<BatchResult> {
    const steps = this.programOf(batch, ctx);
    this.checkTimedOut();
    const outcomes = await this.conn.runProgram(steps, this.runOptions(ctx));
    const results: (StmtResult | null)[] = [];
    const errors: (HranaErrorBody | null)[] = [];
    for (const o of outcomes) {
      results.push(o.type === 'ok' ? this.stmtResult(o.result, null) : null);
      errors.push(o.type === 'error' ? stepError(o.error) : null);
    }
    return { step_results: results, step_errors: errors, replication_index: this.replicationIndex() };
  }

  async sequence(req: Record<string, unknown>, ctx: StreamContext): Promise<void> {
    const sql = this.store.resolve(req);
    this.checkTimedOut();
    for (const s of splitStatements(sql)) {
      await this.conn.execute(s.sql, NO_ARGS, { allowWrite: ctx.allowWrite, maxResponseBytes: ctx.maxResponseBytes });
    }
  }

  describe(req: Record<string, unknown>): DescribeResult {
    const sql = this.store.resolve(req);
    const d = this.conn.describe(sql);
    return {
      params: d.params.map((name) => ({ name })),
      cols: d.columns.map((c) => ({ name: c.name, decltype: c.decltype })),
      is_explain: d.isExplain,
      is_readonly: d.isReadonly,
    };
  }

  /**
   * Runs a batch as a cursor, producing entries step by step (Hrana 3 cursors). sqld ends a cursor
   * with its own `replication_index` entry; `trailingReplicationIndex: false` leaves it out for
   * transports whose clients reject entries they do not know (see docs/ARCHITECTURE.md).
   */
  async *cursor(batch: unknown, ctx: StreamContext, opts: { trailingReplicationIndex?: boolean } = {}): AsyncGenerator<CursorEntry> {
    const steps = this.programOf(batch, ctx);
    try {
      this.checkTimedOut();
    } catch (err) {
      const body = asStatementError(err);
      if (!body) throw err;
      yield { type: 'error', error: body };
      return;
    }
    const conn = this.conn;
    if (conn.openRows && ctx.logger) {
      const openRows = conn.openRows.bind(conn);
      yield* streamCursor({ conn, openRows, steps, options: this.runOptions(ctx), logger: ctx.logger, limits: cursorLimits(), fetchBytes: ctx.maxResponseBytes, stepError });
    } else {
      yield* this.wholeCursor(steps, ctx);
    }
    if (opts.trailingReplicationIndex === false) return;
    const index = this.conn.replicationIndex();
    yield { type: 'replication_index', replication_index: index === null ? null : Number(index) };
  }

  /** A cursor over a connection that cannot stream rows (a replica's): the program runs whole, then its entries follow. */
  private async *wholeCursor(steps: ProgramStep[], ctx: StreamContext): AsyncGenerator<CursorEntry> {
    const outcomes = await this.conn.runProgram(steps, this.runOptions(ctx));
    for (const [i, o] of outcomes.entries()) {
      if (o.type === 'skipped') continue;
      if (o.type === 'error') {
        yield { type: 'step_error', step: i, error: stepError(o.error) };
        continue;
      }
      const res = this.stmtResult(o.result, null);
      yield { type: 'step_begin', step: i, cols: res.cols };
      for (const row of res.rows) yield { type: 'row', row };
      yield { type: 'step_end', affected_row_count: res.affected_row_count, last_insert_rowid: o.result.lastInsertRowid === null ? null : Number(o.result.lastInsertRowid) };
    }
  }

  private checkTimedOut(): void {
    if (this.conn.takeTimedOut()) throw transactionTimeout();
  }

  private replicationIndex(): string | null {
    const index = this.conn.replicationIndex();
    return index === null ? null : index.toString();
  }

  private resolveStmt(stmt: unknown, ctx: StreamContext): { sql: string; args: ReturnType<typeof decodeArgs> } {
    if (!isObject(stmt)) throw new ProtocolError('Cannot deserialize client message: stmt must be an object');
    const s = stmt as Stmt;
    if (ctx.version < 2 && s.sql_id !== undefined && s.sql_id !== null) requireVersion(ctx, 2, 'sql_id');
    return { sql: this.store.resolve(s), args: decodeArgs(s) };
  }

  private runOptions(ctx: StreamContext): RunProgramOptions {
    return { allowWrite: ctx.allowWrite, maxResponseBytes: ctx.maxResponseBytes, isStepError: (err): err is Error => asStatementError(err) !== null };
  }

  private stmtResult(r: ExecResult, replicationIndex: string | null): StmtResult {
    return {
      cols: r.columns.map((c) => ({ name: c.name, decltype: c.decltype })),
      rows: r.rows.map((row) => row.map(encodeValue)),
      affected_row_count: r.changes,
      last_insert_rowid: r.lastInsertRowid === null ? null : r.lastInsertRowid.toString(),
      replication_index: replicationIndex,
      rows_read: r.rowsRead,
      rows_written: r.rowsWritten,
      query_duration_ms: Math.round(r.durationMs * 1000) / 1000,
    };
  }

  /**
   * Builds a batch's program up front: shape, condition step references and version-gated
   * conditions fail the whole request; a step whose SQL or arguments cannot be resolved fails
   * alone, when it runs.
   */
  private programOf(batch: unknown, ctx: StreamContext): ProgramStep[] {
    if (!isObject(batch) || !Array.isArray(batch.steps)) throw new ProtocolError('Cannot deserialize client message: batch must have steps');
    return (batch as unknown as Batch).steps.map((step: unknown, i: number): ProgramStep => {
      if (!isObject(step)) throw new ProtocolError('Cannot deserialize client message: batch step must be an object');
      const condition = step.condition === undefined || step.condition === null ? null : toCond(step.condition, i, ctx);
      try {
        return { cond: condition, ...this.resolveStmt(step.stmt, ctx) };
      } catch (err) {
        if (asStatementError(err) === null || !(err instanceof Error)) throw err;
        return { cond: condition, failed: err };
      }
    });
  }
}

function stepError(err: Error): HranaErrorBody {
  return asStatementError(err) ?? { message: err.message, code: 'SQLITE_UNKNOWN' };
}

/** A Hrana batch condition as an engine condition (validated: steps must be earlier ones). */
function toCond(cond: unknown, index: number, ctx: StreamContext): ProgramCond {
  const c = convertCond(cond, ctx, 1);
  if (!condRefsValid(c, index)) throw new ProtocolError('Invalid reference to step in a batch condition');
  return c;
}

/** `depth` is the level of `cond` (1 for a step's own condition), bounded by MAX_COND_DEPTH. */
function convertCond(cond: unknown, ctx: StreamContext, depth: number): ProgramCond {
  if (!isObject(cond)) throw new ProtocolError('Cannot deserialize client message: invalid batch condition');
  if (depth > MAX_COND_DEPTH) throw new ProtocolError(`Cannot deserialize client message: batch condition nested deeper than ${MAX_COND_DEPTH} levels`);
  switch (cond.type) {
    case 'ok':
    case 'error':
      if (typeof cond.step !== 'number' || !Number.isInteger(cond.step)) throw new ProtocolError('Invalid reference to step in a batch condition');
      return { type: cond.type, step: cond.step };
    case 'not':
      return { type: 'not', cond: convertCond(cond.cond, ctx, depth + 1) };
    case 'and':
    case 'or':
      if (!Array.isArray(cond.conds)) throw new ProtocolError('Cannot deserialize client message: conds must be an array');
      return { type: cond.type, conds: cond.conds.map((c) => convertCond(c, ctx, depth + 1)) };
    case 'is_autocommit':
      requireVersion(ctx, 3, 'The `is_autocommit` condition');
      return { type: 'is_autocommit' };
    default:
      throw new ProtocolError('Cannot deserialize client message: unknown batch condition type');
  }
}
