import { toSqlError, type SqlError } from './sql-error.js';
import { estimateValueSize, type SqlColumn, type SqlValue } from './values.js';

/** Brackets each fetch's stepping (the statement watchdog) and turns its error into the client's. */
export interface FetchGuard {
  arm(): void;
  disarm(): unknown;
  /** Called before the stream ends (its end settles the connection). */
  failed(err: SqlError): unknown;
}

/**
 * The rows of one read-only statement, fetched a bounded piece at a time (Hrana cursors). While it
 * is open, its connection holds a read snapshot: a checkpoint cannot restart the WAL past it and a
 * replica's applier waits for it, so the connection counts as in a transaction (the applier may
 * take it away like one, `abort`), and the cursor's owner closes it when its client goes idle.
 */
export class RowStream {
  private iter: IterableIterator<SqlValue[]> | null;
  private error: Error | null = null;
  /** Rows handed out so far. */
  rowsRead = 0;

  constructor(
    iter: IterableIterator<SqlValue[]>,
    readonly columns: SqlColumn[],
    private readonly onEnd: () => void,
    private readonly guard: FetchGuard | null = null,
  ) {
    this.iter = iter;
  }

  get isOpen(): boolean {
    return this.iter !== null;
  }

  /**
   * Up to `maxRows` rows, stopping early once they estimate past `maxBytes` (at least one row per
   * call); an empty array once the statement is done. Throws the statement's error, or the reason
   * the stream was aborted.
   */
  fetch(maxRows: number, maxBytes: number): SqlValue[][] {
    if (this.error) throw this.error;
    const iter = this.iter;
    if (!iter) return [];
    const rows: SqlValue[][] = [];
    let size = 0;
    let done = false;
    this.guard?.arm();
    try {
      while (rows.length < maxRows && (rows.length === 0 || size < maxBytes)) {
        const next = iter.next();
        if (next.done) {
          done = true;
          break;
        }
        for (const v of next.value) size += estimateValueSize(v);
        rows.push(next.value);
      }
    } catch (err) {
      this.guard?.disarm();
      const failure = toSqlError(err, 'run');
      const reported = this.guard ? this.guard.failed(failure) : failure;
      this.finish();
      throw reported;
    }
    // A fetch that finished just as the watchdog fired leaves the interrupt for the next one.
    this.guard?.disarm();
    this.rowsRead += rows.length;
    if (done) this.finish();
    return rows;
  }

  /** Ends the statement; the next fetch throws `reason` (or returns nothing when there is none). */
  close(reason?: Error): void {
    if (reason && this.iter) this.error = reason;
    this.finish();
  }

  private finish(): void {
    const iter = this.iter;
    if (!iter) return;
    this.iter = null;
    try {
      iter.return?.();
    } finally {
      this.onEnd();
    }
  }
}
