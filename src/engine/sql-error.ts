import { LibsqlctlError } from '../errors.js';

/**
 * An error while preparing or running SQL. `code` is the Hrana error code sqld would send
 * (`SQL_PARSE_ERROR`, `ARGS_INVALID`, `TRANSACTION_TIMEOUT`, `SQLITE_CONSTRAINT`, ...) and `message`
 * its text, so the Hrana layer can forward both unchanged.
 */
export class SqlError extends LibsqlctlError {
  /** SQLite's extended result code name (e.g. `SQLITE_CONSTRAINT_UNIQUE`) when SQLite raised it. */
  readonly extendedCode: string | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; extendedCode?: string }) {
    super(code, message, options);
    this.extendedCode = options?.extendedCode;
  }
}

/** The statement needs a permission the session does not have (HTTP 403, kills a WebSocket). */
export class ForbiddenError extends LibsqlctlError {}

/** Primary result-class names sqld reports (rusqlite's ErrorCode; plain SQLITE_ERROR reads as UNKNOWN). */
const RESULT_CLASSES = new Set([
  'INTERNAL', 'PERM', 'ABORT', 'BUSY', 'LOCKED', 'NOMEM', 'READONLY', 'INTERRUPT', 'IOERR', 'CORRUPT',
  'NOTFOUND', 'FULL', 'CANTOPEN', 'PROTOCOL', 'SCHEMA', 'TOOBIG', 'CONSTRAINT', 'MISMATCH', 'MISUSE',
  'NOLFS', 'AUTH', 'RANGE', 'NOTADB',
]);

interface SqliteLikeError {
  code?: unknown;
  message: string;
}

function isSqliteError(err: unknown): err is SqliteLikeError & Error {
  return err instanceof Error && typeof (err as SqliteLikeError).code === 'string' && String((err as SqliteLikeError).code).startsWith('SQLITE_');
}

/**
 * The single translation point from better-sqlite3 failures to SqlError. `phase` tells whether the
 * error came from preparing (syntax errors become SQL_PARSE_ERROR as sqld's own parser reports them).
 */
export function toSqlError(err: unknown, phase: 'prepare' | 'bind' | 'run'): SqlError {
  if (err instanceof SqlError) return err;
  if (isSqliteError(err)) {
    const extended = String(err.code);
    const base = extended.slice('SQLITE_'.length).split('_')[0] ?? 'UNKNOWN';
    if (phase === 'prepare' && base === 'ERROR' && /syntax error|incomplete input|unrecognized token/.test(err.message)) {
      return new SqlError('SQL_PARSE_ERROR', `SQL string could not be parsed: ${err.message}`, { cause: err, extendedCode: extended });
    }
    const cls = RESULT_CLASSES.has(base) ? base : 'UNKNOWN';
    return new SqlError(`SQLITE_${cls}`, `SQLite error: ${err.message}`, { cause: err, extendedCode: extended });
  }
  if (err instanceof RangeError || err instanceof TypeError) {
    if (/more than one statement/.test(err.message)) {
      return new SqlError('SQL_MANY_STATEMENTS', 'SQL string contains more than one statement', { cause: err });
    }
    if (/no statements/.test(err.message)) {
      return new SqlError('SQL_NO_STATEMENT', 'SQL string does not contain any statement', { cause: err });
    }
    if (phase === 'bind') return new SqlError('ARGS_INVALID', `Invalid arguments: ${err.message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new SqlError('SQLITE_UNKNOWN', `SQLite error: ${message}`, { cause: err });
}

/**
 * A statement refused by the namespace's `block_reads` / `block_writes` (spec §4.7): Hrana code
 * `BLOCKED`, sqld's text; the HTTP v1 API answers it with 400, the generic path with 500 (§4.10).
 */
export function blockedError(reason: string | null): SqlError {
  return new SqlError('BLOCKED', reason === null ? 'Operation was blocked' : `Operation was blocked: ${reason}`);
}
