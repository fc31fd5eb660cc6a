/**
 * Hrana JSON shapes (versions 1-3) as sqld speaks them, shared by the HTTP and WebSocket transports.
 * Integers that may exceed 2^53 travel as decimal strings.
 */

export type Value =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string };

export interface NamedArg {
  name: string;
  value: Value;
}

export interface Stmt {
  sql?: string | null;
  sql_id?: number | null;
  args?: Value[];
  named_args?: NamedArg[];
  want_rows?: boolean | null;
  replication_index?: number | string | null;
}

export interface Col {
  name: string | null;
  decltype: string | null;
}

export interface StmtResult {
  cols: Col[];
  rows: Value[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
  replication_index: string | null;
  rows_read: number;
  rows_written: number;
  query_duration_ms: number;
}

export type BatchCond =
  | { type: 'ok'; step: number }
  | { type: 'error'; step: number }
  | { type: 'not'; cond: BatchCond }
  | { type: 'and'; conds: BatchCond[] }
  | { type: 'or'; conds: BatchCond[] }
  | { type: 'is_autocommit' };

export interface BatchStep {
  condition?: BatchCond | null;
  stmt: Stmt;
}

export interface Batch {
  steps: BatchStep[];
  replication_index?: number | string | null;
}

export interface HranaErrorBody {
  message: string;
  code: string;
}

export interface BatchResult {
  step_results: (StmtResult | null)[];
  step_errors: (HranaErrorBody | null)[];
  replication_index: string | null;
}

export interface DescribeResult {
  params: { name: string | null }[];
  cols: { name: string; decltype: string | null }[];
  is_explain: boolean;
  is_readonly: boolean;
}

export type CursorEntry =
  | { type: 'step_begin'; step: number; cols: Col[] }
  | { type: 'step_end'; affected_row_count: number; last_insert_rowid: number | null }
  | { type: 'step_error'; step: number; error: HranaErrorBody }
  | { type: 'row'; row: Value[] }
  | { type: 'error'; error: HranaErrorBody }
  | { type: 'replication_index'; replication_index: number | null };

/** Hrana protocol version of the current connection or HTTP endpoint. */
export type HranaVersion = 1 | 2 | 3;
