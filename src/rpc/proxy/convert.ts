/**
 * Conversions between sqld's `proxy` messages (src/rpc/messages.ts) and the engine's programs and
 * results (src/engine/program.ts), in both directions: the primary's Proxy service decodes what a
 * replica sends and encodes the answer as `RespStep` events; a replica encodes its programs and
 * reads the events back with the same module (spec sqld-wire.md §6.6, §6.7).
 */
import type { StatementDescription } from '../../engine/client-connection.js';
import type { ProgramCond, ProgramStep, StepOutcome } from '../../engine/program.js';
import { SqlError } from '../../engine/sql-error.js';
import { countStatements } from '../../engine/sql-split.js';
import type { ExecResult, SqlArgs, SqlColumn, SqlValue } from '../../engine/values.js';
import { LibsqlctlError } from '../../errors.js';
import { decodeSqlValue, encodeSqlValue } from '../bincode.js';
import {
  ErrorCode,
  State,
  type Column,
  type Cond,
  type DescribeResp,
  type DescribeResult,
  type ExecuteResults,
  type Program,
  type ProxyError,
  type Query,
  type QueryResult,
  type RespStep,
  type ResultRows,
  type RowValue,
  type Step,
} from '../messages.js';
import { GrpcError, GrpcStatus } from '../service.js';

// ---- programs ----

function invalidProgram(detail: string, cause?: unknown): GrpcError {
  return new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'invalid program', { cause: cause ?? new Error(detail) });
}

function decodeValues(values: readonly { data: Uint8Array }[], at: string): SqlValue[] {
  return values.map((v, i) => {
    try {
      return decodeSqlValue(v.data);
    } catch (err) {
      throw invalidProgram(`${at}: value ${i} is not a bincode SQL value`, err);
    }
  });
}

function argsFromQuery(q: Query, at: string): SqlArgs {
  const params = q.params;
  if (params === undefined) throw invalidProgram(`${at}: query without params`);
  if ('positional' in params) return { positional: decodeValues(params.positional.values, at), named: new Map() };
  const { names, values } = params.named;
  if (names.length !== values.length) throw invalidProgram(`${at}: ${names.length} names for ${values.length} values`);
  const decoded = decodeValues(values, at);
  return { positional: [], named: new Map(names.map((n, i) => [n, decoded[i]!])) };
}

function condFromProxy(c: Cond | undefined, index: number, at: string): ProgramCond {
  if (c === undefined) throw invalidProgram(`${at}: empty condition`);
  const stepRef = (step: bigint): number => {
    if (step < 0n || step >= BigInt(index)) throw invalidProgram(`${at}: condition refers to step ${step}`);
    return Number(step);
  };
  if ('ok' in c) return { type: 'ok', step: stepRef(c.ok.step) };
  if ('err' in c) return { type: 'error', step: stepRef(c.err.step) };
  if ('not' in c) return { type: 'not', cond: condFromProxy(c.not.cond, index, at) };
  if ('and' in c) return { type: 'and', conds: c.and.conds.map((x) => condFromProxy(x, index, at)) };
  if ('or' in c) return { type: 'or', conds: c.or.conds.map((x) => condFromProxy(x, index, at)) };
  if ('isAutocommit' in c) return { type: 'is_autocommit' };
  throw invalidProgram(`${at}: unknown condition`);
}

/** What sqld reports for a `Query.stmt` without any statement (§6.7); here a step error, not a bad program. */
export function emptyStatementError(): SqlError {
  return new SqlError('SQL_NO_STATEMENT', 'invalid empty statement');
}

/**
 * A proxied program as engine steps. A malformed program (no program, a step without query, a query
 * without params, a bad bincode value, names and values of different lengths, a condition that is
 * empty or refers to this or a later step) is `INVALID_ARGUMENT "invalid program"`, the detail in
 * `cause`. A query without any statement becomes a step that fails with `invalid empty statement`.
 */
export function programFromProxy(pgm: Program | undefined): ProgramStep[] {
  if (pgm === undefined) throw invalidProgram('request without program');
  return pgm.steps.map((step: Step, i): ProgramStep => {
    const at = `step ${i}`;
    if (step.query === undefined) throw invalidProgram(`${at}: step without query`);
    const cond = step.cond === undefined ? null : condFromProxy(step.cond, i, at);
    const args = argsFromQuery(step.query, at);
    if (countStatements(step.query.stmt) === 0) return { cond, failed: emptyStatementError() };
    return { cond, sql: step.query.stmt, args };
  });
}

function condToProxy(c: ProgramCond): Cond {
  switch (c.type) {
    case 'ok':
      return { ok: { step: BigInt(c.step) } };
    case 'error':
      return { err: { step: BigInt(c.step) } };
    case 'not':
      return { not: { cond: condToProxy(c.cond) } };
    case 'and':
      return { and: { conds: c.conds.map(condToProxy) } };
    case 'or':
      return { or: { conds: c.conds.map(condToProxy) } };
    case 'is_autocommit':
      return { isAutocommit: {} };
  }
}

const encodeValue = (v: SqlValue): { data: Uint8Array } => ({ data: encodeSqlValue(v) });

/**
 * Engine steps as a proxied program. `params` is always set: named when there are named arguments,
 * else positional. Both at once cannot be expressed (one oneof), and sqld refuses them before
 * anything is forwarded: SqlError ARGS_BOTH_POSITIONAL_AND_NAMED. Steps that `failed` to build are
 * never forwarded: a plain Error.
 */
export function programToProxy(steps: readonly ProgramStep[]): Program {
  return {
    steps: steps.map((step, i): Step => {
      if ('failed' in step) throw new Error(`step ${i} failed to build and cannot be forwarded`);
      const { positional, named } = step.args;
      if (positional.length > 0 && named.size > 0) {
        throw new SqlError('ARGS_BOTH_POSITIONAL_AND_NAMED', 'Arguments must not be both positional and named');
      }
      const params: Query['params'] =
        named.size > 0
          ? { named: { names: [...named.keys()], values: [...named.values()].map(encodeValue) } }
          : { positional: { values: positional.map(encodeValue) } };
      const out: Step = { query: { stmt: step.sql, params, skipRows: false } };
      if (step.cond !== null) out.cond = condToProxy(step.cond);
      return out;
    }),
  };
}

// ---- errors ----

/** SQLite's primary result codes (sqlite3.h). */
const PRIMARY_CODES: Record<string, number> = {
  OK: 0, ERROR: 1, INTERNAL: 2, PERM: 3, ABORT: 4, BUSY: 5, LOCKED: 6, NOMEM: 7, READONLY: 8, INTERRUPT: 9,
  IOERR: 10, CORRUPT: 11, NOTFOUND: 12, FULL: 13, CANTOPEN: 14, PROTOCOL: 15, EMPTY: 16, SCHEMA: 17,
  TOOBIG: 18, CONSTRAINT: 19, MISMATCH: 20, MISUSE: 21, NOLFS: 22, AUTH: 23, FORMAT: 24, RANGE: 25,
  NOTADB: 26, NOTICE: 27, WARNING: 28, ROW: 100, DONE: 101,
};

/** Extended codes are `primary | (n << 8)`; entry n-1 of each list is the name suffix of n ('' = unused). */
const EXTENDED_SUFFIXES: Record<string, readonly string[]> = {
  OK: ['LOAD_PERMANENTLY', 'SYMLINK'],
  ERROR: ['MISSING_COLLSEQ', 'RETRY', 'SNAPSHOT', 'RESERVESIZE', 'KEY', 'UNABLE'],
  ABORT: ['', 'ROLLBACK'],
  BUSY: ['RECOVERY', 'SNAPSHOT', 'TIMEOUT'],
  LOCKED: ['SHAREDCACHE', 'VTAB'],
  READONLY: ['RECOVERY', 'CANTLOCK', 'ROLLBACK', 'DBMOVED', 'CANTINIT', 'DIRECTORY'],
  IOERR: [
    'READ', 'SHORT_READ', 'WRITE', 'FSYNC', 'DIR_FSYNC', 'TRUNCATE', 'FSTAT', 'UNLOCK', 'RDLOCK', 'DELETE',
    'BLOCKED', 'NOMEM', 'ACCESS', 'CHECKRESERVEDLOCK', 'LOCK', 'CLOSE', 'DIR_CLOSE', 'SHMOPEN', 'SHMSIZE',
    'SHMLOCK', 'SHMMAP', 'SEEK', 'DELETE_NOENT', 'MMAP', 'GETTEMPPATH', 'CONVPATH', 'VNODE', 'AUTH',
    'BEGIN_ATOMIC', 'COMMIT_ATOMIC', 'ROLLBACK_ATOMIC', 'DATA', 'CORRUPTFS', 'IN_PAGE',
  ],
  CORRUPT: ['VTAB', 'SEQUENCE', 'INDEX'],
  CANTOPEN: ['NOTEMPDIR', 'ISDIR', 'FULLPATH', 'CONVPATH', 'DIRTYWAL', 'SYMLINK'],
  CONSTRAINT: [
    'CHECK', 'COMMITHOOK', 'FOREIGNKEY', 'FUNCTION', 'NOTNULL', 'PRIMARYKEY', 'TRIGGER', 'UNIQUE', 'VTAB',
    'ROWID', 'PINNED', 'DATATYPE',
  ],
  NOTICE: ['RECOVER_WAL', 'RECOVER_ROLLBACK', 'RBU'],
  WARNING: ['AUTOINDEX'],
  AUTH: ['USER'],
};

const CODE_BY_NAME = new Map<string, number>();
for (const [name, code] of Object.entries(PRIMARY_CODES)) CODE_BY_NAME.set(`SQLITE_${name}`, code);
for (const [primary, suffixes] of Object.entries(EXTENDED_SUFFIXES)) {
  suffixes.forEach((suffix, i) => {
    if (suffix !== '') CODE_BY_NAME.set(`SQLITE_${primary}_${suffix}`, PRIMARY_CODES[primary]! | ((i + 1) << 8));
  });
}
const NAME_BY_CODE = new Map([...CODE_BY_NAME].map(([name, code]) => [code, name]));

/** SQLite's numeric (extended) result code of a code name such as `SQLITE_CONSTRAINT_UNIQUE` (0 when unknown). */
export function sqliteCodeNumber(name: string | undefined): number {
  return (name !== undefined && CODE_BY_NAME.get(name)) || 0;
}

/** The name of a numeric SQLite result code (undefined for 0 and unknown codes). */
export function sqliteCodeName(code: number): string | undefined {
  return code === 0 ? undefined : NAME_BY_CODE.get(code);
}

const PROXY_CODES: Record<string, ErrorCode> = {
  TRANSACTION_TIMEOUT: ErrorCode.TX_TIMEOUT,
  TRANSACTION_BUSY: ErrorCode.TX_BUSY,
  ARGS_INVALID: ErrorCode.SQL_ERROR,
  ARGS_BOTH_POSITIONAL_AND_NAMED: ErrorCode.SQL_ERROR,
};

/**
 * An error as a proxy `Error` (§6.7): SQL_ERROR for parameter-binding errors, TX_TIMEOUT, TX_BUSY,
 * else INTERNAL (SQLite failures included); the text as is; SQLite's numeric extended code or 0.
 */
export function sqlErrorToProxyError(err: unknown): ProxyError {
  const code = err instanceof LibsqlctlError ? (PROXY_CODES[err.code] ?? ErrorCode.INTERNAL) : ErrorCode.INTERNAL;
  return {
    code,
    message: err instanceof Error ? err.message : String(err),
    extendedCode: err instanceof SqlError ? sqliteCodeNumber(err.extendedCode) : 0,
  };
}

/** A failure the primary reported, as a replica's clients see it: PROXY_ERROR (spec §4.8). */
export function proxyErrorToSqlError(e: ProxyError | undefined): SqlError {
  const message = e === undefined ? 'no error details' : e.message;
  const extendedCode = e === undefined ? undefined : sqliteCodeName(e.extendedCode);
  return new SqlError('PROXY_ERROR', `error executing a request on the primary: ${message}`, extendedCode === undefined ? {} : { extendedCode });
}

// ---- values, columns, results ----

export function toRowValue(v: SqlValue): RowValue {
  if (v === null) return { null: true };
  switch (typeof v) {
    case 'bigint':
      return { integer: v };
    case 'number':
      return { real: v };
    case 'string':
      return { text: v };
    default:
      return { blob: v };
  }
}

/** A row value back as an engine value; a missing or empty one is malformed (sqld: stream misuse). */
export function fromRowValue(v: RowValue | undefined): SqlValue {
  if (v !== undefined) {
    if ('null' in v) return null;
    if ('integer' in v) return v.integer;
    if ('real' in v) return v.real;
    if ('text' in v) return v.text;
    if ('blob' in v) return v.blob;
  }
  throw new ProgramStreamError('add_row_value without a value');
}

export function toProxyColumn(c: SqlColumn): Column {
  return c.decltype === null ? { name: c.name } : { name: c.name, decltype: c.decltype };
}

export function fromProxyColumn(c: Column): SqlColumn {
  return { name: c.name, decltype: c.decltype ?? null };
}

function resultRows(r: ExecResult): ResultRows {
  const out: ResultRows = {
    columnDescriptions: r.columns.map(toProxyColumn),
    rows: r.rows.map((row) => ({ values: row.map(encodeValue) })),
    affectedRowCount: BigInt(r.changes),
  };
  if (r.lastInsertRowid !== null) out.lastInsertRowid = r.lastInsertRowid;
  return out;
}

/** The unary Execute answer: one QueryResult per step (a skipped step is an empty ResultRows, §6.7). */
export function executeResultsFrom(outcomes: readonly StepOutcome[], isAutocommit: boolean, frameNo: bigint | null): ExecuteResults {
  const results = outcomes.map((o): QueryResult => {
    if (o.type === 'ok') return { row: resultRows(o.result) };
    if (o.type === 'error') return { error: sqlErrorToProxyError(o.error) };
    return { row: { columnDescriptions: [], rows: [], affectedRowCount: 0n } };
  });
  const out: ExecuteResults = { results, state: isAutocommit ? State.INIT : State.TXN };
  if (frameNo !== null) out.currentFrameNo = frameNo;
  return out;
}

/** A statement description for StreamExec's `describe_resp`. */
export function describeRespFrom(d: StatementDescription): DescribeResp {
  return {
    params: d.params.map((name) => (name === null ? {} : { name })),
    cols: d.columns.map(toProxyColumn),
    isExplain: d.isExplain,
    isReadonly: d.isReadonly,
  };
}

/** A `describe_resp` back as the engine's description (replica side). */
export function describeFromResp(r: DescribeResp): StatementDescription {
  return {
    params: r.params.map((p) => p.name ?? null),
    columns: r.cols.map(fromProxyColumn),
    isExplain: r.isExplain,
    isReadonly: r.isReadonly,
  };
}

/** A statement description for the unary Describe: `param_names` lists the parameters SQLite names (not bare `?`). */
export function describeResultFrom(d: StatementDescription): DescribeResult {
  return {
    description: {
      columnDescriptions: d.columns.map(toProxyColumn),
      paramNames: d.params.filter((n): n is string => n !== null),
      paramCount: BigInt(d.params.length),
    },
  };
}

/** A `programResp` event sequence that does not follow §6.7 (sqld's replica: "primary stream misuse"). */
export class ProgramStreamError extends Error {
  constructor(detail: string) {
    super(`malformed program response from the primary: ${detail}`);
    this.name = 'ProgramStreamError';
  }
}

// ---- StreamExec events ----

/**
 * A `ProgramResp` is flushed once its encoded size reaches this (§6.7; sqld sums the events' own
 * sizes, we count the ProgramResp bytes, field framing included).
 */
export const PROGRAM_RESP_FLUSH_BYTES = 100 * 1024;

const utf8Size = (s: string): number => Buffer.byteLength(s, 'utf8');

function varintSize(n: number | bigint): number {
  if (typeof n === 'number') return n < 0 ? 10 : n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : Math.ceil(Math.log2(n + 1) / 7);
  if (n < 0n) return 10;
  let size = 1;
  for (let v = n; v >= 0x80n; v >>= 7n) size++;
  return size;
}

/** A length-delimited field with a one-byte tag. */
const lenField = (payload: number): number => 1 + varintSize(payload) + payload;

function rowValueSize(v: RowValue): number {
  if ('text' in v) return lenField(utf8Size(v.text));
  if ('integer' in v) return 1 + varintSize(v.integer);
  if ('real' in v) return 9;
  if ('blob' in v) return lenField(v.blob.byteLength);
  return 2;
}

const columnSize = (c: Column): number => lenField(utf8Size(c.name)) + (c.decltype === undefined ? 0 : lenField(utf8Size(c.decltype)));

function errorSize(e: ProxyError): number {
  return (e.code === ErrorCode.SQL_ERROR ? 0 : 2) + lenField(utf8Size(e.message)) + (e.extendedCode === 0 ? 0 : 1 + varintSize(e.extendedCode));
}

/** The protobuf-encoded size of one event (exact for everything our writer produces). */
export function respStepSize(s: RespStep): number {
  let inner = 0;
  if ('addRowValue' in s) inner = s.addRowValue.val === undefined ? 0 : lenField(rowValueSize(s.addRowValue.val));
  else if ('colsDescription' in s) inner = s.colsDescription.columns.reduce((n, c) => n + lenField(columnSize(c)), 0);
  else if ('stepError' in s) inner = s.stepError.error === undefined ? 0 : lenField(errorSize(s.stepError.error));
  else if ('finishStep' in s) {
    const f = s.finishStep;
    inner = (f.affectedRowCount === 0n ? 0 : 1 + varintSize(f.affectedRowCount)) + (f.lastInsertRowid === undefined ? 0 : 1 + varintSize(f.lastInsertRowid));
  } else if ('finish' in s) {
    inner = (s.finish.lastFrameNo === undefined ? 0 : 1 + varintSize(s.finish.lastFrameNo)) + (s.finish.isAutocommit ? 2 : 0);
  }
  return lenField(inner);
}

const MARKER = {} as Record<string, never>;

/**
 * Turns one program's execution into sqld's event sequence (§6.7) and hands it out in batches of
 * about PROGRAM_RESP_FLUSH_BYTES (each batch is one `programResp`): `init()`, then `step()` per
 * step in order (`onStep` fits runProgram's callback), then `finish()`, which flushes.
 * An executed step always has `cols_description`, `begin_rows` and `finish_rows` (also without
 * columns), so the reader can tell it from a skipped one (`begin_step`, `finish_step` only).
 */
export class ProgramEventWriter {
  private pending: RespStep[] = [];
  private size = 0;
  private phase: 'new' | 'open' | 'finished' = 'new';

  constructor(
    private readonly emit: (steps: RespStep[]) => void,
    private readonly flushBytes = PROGRAM_RESP_FLUSH_BYTES,
  ) {}

  readonly onStep = (_index: number, outcome: StepOutcome): void => this.step(outcome);

  init(): void {
    if (this.phase !== 'new') throw new Error('ProgramEventWriter: init() twice');
    this.phase = 'open';
    this.push({ init: MARKER });
  }

  step(outcome: StepOutcome): void {
    if (this.phase !== 'open') throw new Error('ProgramEventWriter: step() outside init()..finish()');
    this.push({ beginStep: MARKER });
    if (outcome.type === 'error') {
      this.push({ stepError: { error: sqlErrorToProxyError(outcome.error) } });
      this.push({ finishStep: { affectedRowCount: 0n } });
      return;
    }
    if (outcome.type === 'skipped') {
      this.push({ finishStep: { affectedRowCount: 0n } });
      return;
    }
    const r = outcome.result;
    this.push({ colsDescription: { columns: r.columns.map(toProxyColumn) } });
    this.push({ beginRows: MARKER });
    for (const row of r.rows) {
      this.push({ beginRow: MARKER });
      for (const v of row) this.push({ addRowValue: { val: toRowValue(v) } });
      this.push({ finishRow: MARKER });
    }
    this.push({ finishRows: MARKER });
    const finish: { affectedRowCount: bigint; lastInsertRowid?: bigint } = { affectedRowCount: BigInt(r.changes) };
    if (r.lastInsertRowid !== null) finish.lastInsertRowid = r.lastInsertRowid;
    this.push({ finishStep: finish });
  }

  finish(lastFrameNo: bigint | null, isAutocommit: boolean): void {
    if (this.phase !== 'open') throw new Error('ProgramEventWriter: finish() outside init()..finish()');
    this.phase = 'finished';
    this.push(lastFrameNo === null ? { finish: { isAutocommit } } : { finish: { lastFrameNo, isAutocommit } });
    this.flush();
  }

  /** Drops what is not emitted yet and accepts nothing more (the program failed as a whole). */
  discard(): void {
    this.phase = 'finished';
    this.pending = [];
    this.size = 0;
  }

  private push(s: RespStep): void {
    this.pending.push(s);
    // as a repeated field of ProgramResp: what the batch really weighs on the wire
    this.size += lenField(respStepSize(s));
    if (this.size >= this.flushBytes) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.size = 0;
    this.emit(batch);
  }
}

export interface ProgramReadResult {
  outcomes: StepOutcome[];
  lastFrameNo: bigint | null;
  isAutocommit: boolean;
}

type ReadPhase = 'init' | 'idle' | 'step' | 'cols' | 'rows' | 'row' | 'rowsDone' | 'failed' | 'done';

/**
 * Reads the events of one program (from one or more `programResp`s) back into step outcomes. A step
 * with `begin_step`, `finish_step` and nothing between was skipped by its condition (sqld's replica
 * reads it so too: executed steps always carry `cols_description`). Anything out of order throws
 * ProgramStreamError.
 */
export class ProgramEventReader {
  private phase: ReadPhase = 'init';
  private readonly outcomes: StepOutcome[] = [];
  private columns: SqlColumn[] = [];
  private rows: SqlValue[][] = [];
  private row: SqlValue[] = [];
  private error: SqlError | null = null;
  private done: ProgramReadResult | null = null;

  constructor(private readonly onStep?: (index: number, outcome: StepOutcome) => void) {}

  /** The result once `finish` was read, else null. */
  get result(): ProgramReadResult | null {
    return this.done;
  }

  /** Feeds the events of one `programResp`; returns the result when they end with `finish`. */
  push(events: readonly RespStep[]): ProgramReadResult | null {
    for (const ev of events) this.read(ev);
    return this.done;
  }

  private read(ev: RespStep): void {
    const p = this.phase;
    const inStep = p === 'step' || p === 'cols' || p === 'rows' || p === 'row' || p === 'rowsDone';
    if ('init' in ev && p === 'init') this.phase = 'idle';
    else if ('beginStep' in ev && p === 'idle') this.phase = 'step';
    else if ('colsDescription' in ev && p === 'step') {
      this.columns = ev.colsDescription.columns.map(fromProxyColumn);
      this.phase = 'cols';
    } else if ('beginRows' in ev && p === 'cols') this.phase = 'rows';
    else if ('beginRow' in ev && p === 'rows') this.phase = 'row';
    else if ('addRowValue' in ev && p === 'row') this.row.push(fromRowValue(ev.addRowValue.val));
    else if ('finishRow' in ev && p === 'row') {
      if (this.row.length !== this.columns.length) throw new ProgramStreamError(`row of ${this.row.length} values for ${this.columns.length} columns`);
      this.rows.push(this.row);
      this.row = [];
      this.phase = 'rows';
    } else if ('finishRows' in ev && p === 'rows') this.phase = 'rowsDone';
    else if ('stepError' in ev && inStep) {
      if (ev.stepError.error === undefined) throw new ProgramStreamError('step_error without error');
      this.error = proxyErrorToSqlError(ev.stepError.error);
      this.phase = 'failed';
    } else if ('finishStep' in ev && (p === 'step' || p === 'rowsDone' || p === 'failed')) {
      this.endStep(p, ev.finishStep);
    } else if ('finish' in ev && p === 'idle') {
      const f = ev.finish;
      this.done = { outcomes: this.outcomes, lastFrameNo: f.lastFrameNo ?? null, isAutocommit: f.isAutocommit };
      this.phase = 'done';
    } else {
      throw new ProgramStreamError(`unexpected ${Object.keys(ev)[0] ?? 'empty event'} ${p === 'done' ? 'after finish' : `in phase ${p}`}`);
    }
  }

  private endStep(p: ReadPhase, f: { affectedRowCount: bigint; lastInsertRowid?: bigint }): void {
    let outcome: StepOutcome;
    if (p === 'failed' && this.error) outcome = { type: 'error', error: this.error };
    else if (p === 'step') outcome = { type: 'skipped' };
    else {
      const changes = Number(f.affectedRowCount);
      const result: ExecResult = {
        columns: this.columns,
        rows: this.rows,
        changes,
        lastInsertRowid: f.lastInsertRowid ?? null,
        rowsRead: this.rows.length,
        rowsWritten: changes,
        durationMs: 0,
      };
      outcome = { type: 'ok', result };
    }
    this.columns = [];
    this.rows = [];
    this.row = [];
    this.error = null;
    this.phase = 'idle';
    this.outcomes.push(outcome);
    this.onStep?.(this.outcomes.length - 1, outcome);
  }
}
