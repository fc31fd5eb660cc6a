import type { SqlConnection } from '../../engine/connection.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { splitStatements } from '../../engine/sql-split.js';
import { NO_ARGS, type ExecResult } from '../../engine/values.js';
import { asStatementError, ProtocolError, transactionTimeout } from './errors.js';
import type { Batch, BatchCond, BatchResult, CursorEntry, DescribeResult, HranaErrorBody, HranaVersion, Stmt, StmtResult } from './protocol.js';
import type { SqlStore } from './sql-store.js';
import { decodeArgs, encodeValue } from './values.js';

/** Per-request facts a stream needs: protocol version, rights of the session, response limit. */
export interface StreamContext {
  version: HranaVersion;
  allowWrite: boolean;
  maxResponseBytes: number;
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
  private readonly conn: SqlConnection;

  constructor(
    private readonly db: NamespaceDb,
    readonly store: SqlStore,
  ) {
    this.conn = db.connect();
  }

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
    this.checkTimedOut();
    const result = await this.runStmt(stmt, ctx);
    return this.stmtResult(result, this.replicationIndex());
  }

  async batch(batch: unknown, ctx: StreamContext): Promise<BatchResult> {
    const steps = this.checkBatch(batch, ctx);
    this.checkTimedOut();
    const results: (StmtResult | null)[] = [];
    const errors: (HranaErrorBody | null)[] = [];
    for (const step of steps) {
      if (step.condition && !this.evalCond(step.condition, results, errors)) {
        results.push(null);
        errors.push(null);
        continue;
      }
      try {
        results.push(this.stmtResult(await this.runStmt(step.stmt, ctx), null));
        errors.push(null);
      } catch (err) {
        const body = asStatementError(err);
        if (!body) throw err;
        results.push(null);
        errors.push(body);
      }
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
    const steps = this.checkBatch(batch, ctx);
    try {
      this.checkTimedOut();
    } catch (err) {
      const body = asStatementError(err);
      if (!body) throw err;
      yield { type: 'error', error: body };
      return;
    }
    const results: (StmtResult | null)[] = [];
    const errors: (HranaErrorBody | null)[] = [];
    for (const [i, step] of steps.entries()) {
      if (step.condition && !this.evalCond(step.condition, results, errors)) {
        results.push(null);
        errors.push(null);
        continue;
      }
      let r: ExecResult;
      try {
        r = await this.runStmt(step.stmt, ctx);
      } catch (err) {
        const body = asStatementError(err);
        if (!body) throw err;
        results.push(null);
        errors.push(body);
        yield { type: 'step_error', step: i, error: body };
        continue;
      }
      const res = this.stmtResult(r, null);
      results.push(res);
      errors.push(null);
      yield { type: 'step_begin', step: i, cols: res.cols };
      for (const row of res.rows) yield { type: 'row', row };
      yield { type: 'step_end', affected_row_count: res.affected_row_count, last_insert_rowid: r.lastInsertRowid === null ? null : Number(r.lastInsertRowid) };
    }
    if (opts.trailingReplicationIndex === false) return;
    const index = this.db.replicationIndex();
    yield { type: 'replication_index', replication_index: index === null ? null : Number(index) };
  }

  private checkTimedOut(): void {
    if (this.conn.takeTimedOut()) throw transactionTimeout();
  }

  private replicationIndex(): string | null {
    const index = this.db.replicationIndex();
    return index === null ? null : index.toString();
  }

  private async runStmt(stmt: unknown, ctx: StreamContext): Promise<ExecResult> {
    if (!isObject(stmt)) throw new ProtocolError('Cannot deserialize client message: stmt must be an object');
    const s = stmt as Stmt;
    if (ctx.version < 2 && s.sql_id !== undefined && s.sql_id !== null) requireVersion(ctx, 2, 'sql_id');
    const sql = this.store.resolve(s);
    const args = decodeArgs(s);
    return this.conn.execute(sql, args, { allowWrite: ctx.allowWrite, maxResponseBytes: ctx.maxResponseBytes });
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

  /** Validates a batch up front: shape, condition step references, version-gated conditions. */
  private checkBatch(batch: unknown, ctx: StreamContext): { condition: BatchCond | null; stmt: unknown }[] {
    if (!isObject(batch) || !Array.isArray(batch.steps)) throw new ProtocolError('Cannot deserialize client message: batch must have steps');
    return (batch as unknown as Batch).steps.map((step: unknown, i: number) => {
      if (!isObject(step)) throw new ProtocolError('Cannot deserialize client message: batch step must be an object');
      const condition = step.condition === undefined || step.condition === null ? null : (step.condition as BatchCond);
      if (condition) this.checkCond(condition, i, ctx);
      return { condition, stmt: step.stmt };
    });
  }

  private checkCond(cond: unknown, index: number, ctx: StreamContext): void {
    if (!isObject(cond)) throw new ProtocolError('Cannot deserialize client message: invalid batch condition');
    switch (cond.type) {
      case 'ok':
      case 'error':
        if (typeof cond.step !== 'number' || !Number.isInteger(cond.step) || cond.step < 0 || cond.step >= index) {
          throw new ProtocolError('Invalid reference to step in a batch condition');
        }
        return;
      case 'not':
        this.checkCond(cond.cond, index, ctx);
        return;
      case 'and':
      case 'or':
        if (!Array.isArray(cond.conds)) throw new ProtocolError('Cannot deserialize client message: conds must be an array');
        for (const c of cond.conds) this.checkCond(c, index, ctx);
        return;
      case 'is_autocommit':
        requireVersion(ctx, 3, 'The `is_autocommit` condition');
        return;
      default:
        throw new ProtocolError('Cannot deserialize client message: unknown batch condition type');
    }
  }

  private evalCond(cond: BatchCond, results: (StmtResult | null)[], errors: (HranaErrorBody | null)[]): boolean {
    switch (cond.type) {
      case 'ok':
        return results[cond.step] != null;
      case 'error':
        // sqld evaluates `error` as "not ok", so a skipped step counts as failed (spec §14.2)
        return results[cond.step] == null;
      case 'not':
        return !this.evalCond(cond.cond, results, errors);
      case 'and':
        return cond.conds.every((c) => this.evalCond(c, results, errors));
      case 'or':
        return cond.conds.some((c) => this.evalCond(c, results, errors));
      case 'is_autocommit':
        return this.conn.isAutocommit;
    }
  }
}
