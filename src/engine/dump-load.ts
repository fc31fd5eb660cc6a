/**
 * Loads a SQL text dump (as `GET /dump` or the sqlite3 shell's `.dump` write it) into a new
 * namespace's database, through a client connection: the statement policy applies (no ATTACH, no
 * VACUUM, no pragmas beyond sqld's), and the frame capture logs the transaction like any other.
 *
 * The dump must be one transaction: optional PRAGMAs, `BEGIN`, statements, `COMMIT`, nothing after
 * (sqld's texts for the refusals, spec §9). sqld lets the first two statements of any kind run
 * outside a transaction; we allow only PRAGMAs there (a deviation, docs/ADMIN.md).
 */
import { LibsqlctlError } from '../errors.js';
import type { NamespaceDb } from './namespace-db.js';
import { SqlError } from './sql-error.js';
import { splitStatements } from './sql-split.js';
import type { SqlArgs } from './values.js';

/** A dump that cannot be loaded (HTTP 400). */
export class DumpLoadError extends LibsqlctlError {}

const NO_ARGS: SqlArgs = { positional: [], named: new Map() };

function noTransaction(): DumpLoadError {
  return new DumpLoadError('DUMP_NO_TXN', 'A dump should execute within a transaction.');
}

/** Runs the dump's statements; on any failure the transaction is rolled back and nothing is left. */
export async function loadDump(db: NamespaceDb, text: string): Promise<void> {
  const statements = splitStatements(text.startsWith('\uFEFF') ? text.slice(1) : text);
  const conn = db.connect();
  try {
    let begun = false;
    for (const stmt of statements) {
      if (stmt.kind === 'attach') throw new DumpLoadError('DUMP_ATTACH', 'Error while loading dump: ATTACH is not permitted in a dump');
      if (conn.isAutocommit) {
        // Before the transaction only PRAGMAs (sqld's own dumps start with `PRAGMA foreign_keys=OFF;`); after it, nothing.
        if (begun || (stmt.kind !== 'pragma' && stmt.kind !== 'begin')) throw noTransaction();
        if (stmt.kind === 'begin') begun = true;
      }
      try {
        await conn.execute(stmt.sql, NO_ARGS, { allowWrite: true, maxResponseBytes: Number.MAX_SAFE_INTEGER });
      } catch (err) {
        if (err instanceof SqlError) throw new DumpLoadError('DUMP_STATEMENT', `Error while loading dump: ${err.message}`, { cause: err });
        throw err;
      }
    }
    if (!conn.isAutocommit) throw new DumpLoadError('DUMP_NO_COMMIT', 'The dump should commit the transaction.');
  } finally {
    // Rolls back a transaction the dump left open.
    conn.close();
  }
}
