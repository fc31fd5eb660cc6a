import { LibsqlctlError } from '../../errors.js';
import { SqlError } from '../../engine/sql-error.js';
import type { HranaErrorBody } from './protocol.js';

/**
 * A violation of the Hrana protocol by the client (bad baton, unknown request type, value without a
 * type, ...). It aborts the whole HTTP request with 400 text/plain and closes a WebSocket.
 */
export class ProtocolError extends LibsqlctlError {
  constructor(message: string) {
    super('PROTOCOL_ERROR', message);
  }
}

/** A Hrana error with its own code that is answered in a Hrana `Error` body (e.g. STREAM_EXPIRED). */
export class HranaError extends LibsqlctlError {}

/** Statement- or batch-level errors become Hrana error results; everything else propagates. */
export function asStatementError(err: unknown): HranaErrorBody | null {
  if (err instanceof SqlError || err instanceof HranaError) return { message: err.message, code: err.code };
  return null;
}

export function transactionTimeout(): SqlError {
  return new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out');
}
