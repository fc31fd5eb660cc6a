import { toSqlError } from './sql-error.js';
import { estimateValueSize, type SqlColumn, type SqlValue } from './values.js';

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
    try {
      while (rows.length < maxRows && (rows.length === 0 || size < maxBytes)) {
        const next = iter.next();
        if (next.done) {
          this.finish();
          break;
        }
        for (const v of next.value) size += estimateValueSize(v);
        rows.push(next.value);
      }
    } catch (err) {
      this.finish();
      throw toSqlError(err, 'run');
    }
    this.rowsRead += rows.length;
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
