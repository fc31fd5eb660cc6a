/**
 * Hrana 3 cursors in bounded fetches (docs/LIMITS.md "Cursors"): a batch runs step by step, and a
 * read-only step's rows are read from SQLite a fetch at a time, only as fast as the transport
 * takes them (an HTTP body, a WebSocket message stream), so a cursor may return more than
 * `--max-response-size` in all while no fetch holds more than it. An open cursor holds a read
 * snapshot: it closes when its consumer has not asked for rows for `idleMs`, or after `lifetimeMs`.
 */
import type { ClientConnection } from '../../engine/client-connection.js';
import { guardedTimeout, type Logger } from '../../engine/logger.js';
import { evalCond, type ProgramStep, type RunProgramOptions, type StepOutcome } from '../../engine/program.js';
import type { RowStream } from '../../engine/row-stream.js';
import { SqlError } from '../../engine/sql-error.js';
import type { ExecResult } from '../../engine/values.js';
import type { CursorEntry, HranaErrorBody } from './protocol.js';
import { encodeValue } from './values.js';

export interface CursorLimits {
  /** Rows per fetch. */
  fetchRows: number;
  /** A cursor not read from for this long closes (its read snapshot delays checkpoints). */
  idleMs: number;
  /** No cursor stays open longer than this. */
  lifetimeMs: number;
}

const DEFAULTS: CursorLimits = { fetchRows: 512, idleMs: 30_000, lifetimeMs: 600_000 };
let current: CursorLimits = { ...DEFAULTS };

/** The limits cursors opened now get. */
export function cursorLimits(): CursorLimits {
  return current;
}

/** Test seam: replaces some limits until the returned function is called. */
export function overrideCursorLimits(changes: Partial<CursorLimits>): () => void {
  const before = current;
  current = { ...current, ...changes };
  return () => {
    current = before;
  };
}

export interface CursorRun {
  conn: ClientConnection;
  openRows: NonNullable<ClientConnection['openRows']>;
  steps: readonly ProgramStep[];
  options: RunProgramOptions;
  logger: Logger;
  limits: CursorLimits;
  /** Per-fetch byte bound (`--max-response-size`). */
  fetchBytes: number;
  stepError(err: Error): HranaErrorBody;
}

function expired(what: string): SqlError {
  return new SqlError('CURSOR_EXPIRED', `The cursor was closed: ${what}`);
}

/** The step's rows as entries, a fetch at a time; the stream is closed however the consumer leaves. */
function* rowEntries(rows: RowStream, run: CursorRun, startedAt: number): Generator<CursorEntry> {
  // Refreshed whenever the consumer takes an entry: it fires only while nobody reads.
  const idle = guardedTimeout(run.logger, 'cursor idle timeout', run.limits.idleMs, () => rows.close(expired(`not read for ${run.limits.idleMs / 1000} s`)));
  try {
    for (;;) {
      if (Date.now() - startedAt > run.limits.lifetimeMs) rows.close(expired(`open longer than ${run.limits.lifetimeMs / 1000} s`));
      const fetched = rows.fetch(run.limits.fetchRows, run.fetchBytes);
      if (fetched.length === 0) return;
      for (const row of fetched) {
        yield { type: 'row', row: row.map(encodeValue) };
        idle.refresh();
      }
    }
  } finally {
    clearTimeout(idle);
    rows.close();
  }
}

/** Runs the batch's steps in order, each only if its condition holds, streaming read-only rows. */
export async function* streamCursor(run: CursorRun): AsyncGenerator<CursorEntry> {
  const outcomes: StepOutcome[] = [];
  const startedAt = Date.now();
  const { isStepError, onStep: _onStep, ...exec } = run.options;
  for (const [i, step] of run.steps.entries()) {
    if (step.cond !== null && !evalCond(step.cond, outcomes, () => run.conn.isAutocommit)) {
      outcomes.push({ type: 'skipped' });
      continue;
    }
    if ('failed' in step) {
      outcomes.push({ type: 'error', error: step.failed });
      yield { type: 'step_error', step: i, error: run.stepError(step.failed) };
      continue;
    }
    let opened: { result: ExecResult } | { rows: RowStream };
    try {
      opened = await run.openRows(step.sql, step.args, exec);
    } catch (err) {
      if (!isStepError(err)) throw err;
      outcomes.push({ type: 'error', error: err });
      yield { type: 'step_error', step: i, error: run.stepError(err) };
      continue;
    }
    if ('result' in opened) {
      const r = opened.result;
      outcomes.push({ type: 'ok', result: r });
      yield { type: 'step_begin', step: i, cols: r.columns.map((c) => ({ name: c.name, decltype: c.decltype })) };
      for (const row of r.rows) yield { type: 'row', row: row.map(encodeValue) };
      yield { type: 'step_end', affected_row_count: r.changes, last_insert_rowid: r.lastInsertRowid === null ? null : Number(r.lastInsertRowid) };
      continue;
    }
    const rows = opened.rows;
    yield { type: 'step_begin', step: i, cols: rows.columns.map((c) => ({ name: c.name, decltype: c.decltype })) };
    try {
      yield* rowEntries(rows, run, startedAt);
    } catch (err) {
      if (!isStepError(err)) throw err;
      outcomes.push({ type: 'error', error: err });
      yield { type: 'step_error', step: i, error: run.stepError(err) };
      continue;
    }
    outcomes.push({ type: 'ok', result: { columns: rows.columns, rows: [], changes: 0, lastInsertRowid: null, rowsRead: rows.rowsRead, rowsWritten: 0, durationMs: 0 } });
    yield { type: 'step_end', affected_row_count: 0, last_insert_rowid: null };
  }
}
