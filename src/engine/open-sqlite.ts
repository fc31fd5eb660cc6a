/**
 * Opening a server-side SQLite connection: the settings every one must have, and the trusted
 * extensions loaded into it.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { SqlError } from './sql-error.js';

export interface OpenSqliteOptions {
  journalMode: 'wal' | 'rollback' | null;
  wal: boolean;
  /**
   * Absolute paths of trusted extensions (`--extensions-path`, checked by the config) to load into
   * this connection. They are loaded through the C API only: SQL's `load_extension()` stays disabled
   * (better-sqlite3 enables SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, which leaves the SQL function off).
   */
  extensions?: readonly string[];
}

/** A trusted extension failed to load into a new connection (the connection is not opened). */
export class ExtensionLoadError extends SqlError {
  constructor(
    readonly extension: string,
    readonly reason: string,
    cause: unknown,
  ) {
    // Clients learn which extension, not where it lives on the server.
    super('EXTENSION_LOAD_FAILED', `The trusted extension ${path.basename(extension)} could not be loaded into a new connection`, { cause });
  }
}

/**
 * Opens a server-side SQLite connection with the settings every connection must have
 * (`timeout: 0` is busy_timeout = 0: the engine's write lock does the waiting, never SQLite).
 */
export function openSqlite(file: string, opts: OpenSqliteOptions = { journalMode: 'wal', wal: true }): Database.Database {
  const db = new Database(file, { timeout: 0 });
  // journal_mode is stored in the file: the maintenance connection sets it once per namespace. A
  // replica's file stays in rollback mode (its pages are written by the frame applier).
  if (opts.journalMode === 'wal') db.pragma('journal_mode = WAL');
  if (opts.wal) db.pragma('wal_autocheckpoint = 0');
  db.pragma('synchronous = NORMAL');
  db.defaultSafeIntegers(true);
  for (const extension of opts.extensions ?? []) {
    try {
      db.loadExtension(extension);
    } catch (err) {
      db.close();
      throw new ExtensionLoadError(extension, err instanceof Error ? err.message : String(err), err);
    }
  }
  return db;
}
