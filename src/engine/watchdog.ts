import path from 'node:path';
import type Database from 'better-sqlite3';
import { errorMessage, type Logger } from './logger.js';
import { loadNativeAddon, nativeLibrary } from './native-addon.js';
import type { FetchGuard } from './row-stream.js';
import { SqlError } from './sql-error.js';

/**
 * The statement watchdog (`--max-statement-duration-s`, docs/LIMITS.md "Runaway statements").
 * better-sqlite3 runs SQL on the server's only JavaScript thread and has no way to stop it, so a
 * C library built at install time (native/watchdog.c) does it from a thread of its own: loaded
 * into every client connection as a SQLite extension, it gives the connection a slot; loaded into
 * the process as a Node-API addon (the same file, so the same memory), it shares the slots' cells
 * as an Int32Array and interrupts (sqlite3_interrupt) a connection whose statement has been
 * running longer than its limit. Arming and disarming a statement are typed-array operations.
 */

/** How often the watchdog's thread looks at the slots: a statement stops at most this long after its limit. */
export const WATCHDOG_POLL_MS = 50;

export const WATCHDOG_LIBRARY = nativeLibrary('watchdog', import.meta.url);

const LIMIT_FLAG = '--max-statement-duration-s';

interface WatchdogAddon {
  cells: ArrayBuffer;
  capacity: number;
  /** The state of a slot whose statement the thread interrupted. */
  fired: number;
  start(pollMs: number): void;
  stop(): void;
  /** Returns once an interrupt the thread has decided on is delivered. */
  sync(): void;
  stats(): WatchdogStats;
}

export interface WatchdogStats {
  /** Connections that hold a slot (across the process). */
  slotsInUse: number;
  /** Statements interrupted since the process started. */
  interrupts: number;
  running: boolean;
}

interface Loaded {
  /** The library's path: the extension is loaded from the same file, so it shares the addon's memory. */
  file: string;
  addon: WatchdogAddon;
  cells: Int32Array;
}

const loaded = new Map<string, Loaded | Error>();

/** Loads the addon once per process (every server of the process shares it); an Error when it cannot. */
export function loadWatchdogAddon(file = WATCHDOG_LIBRARY): Loaded | Error {
  let lib = loaded.get(file);
  if (lib !== undefined) return lib;
  try {
    const addon = loadNativeAddon<WatchdogAddon>(file, (a) => a.cells instanceof ArrayBuffer && typeof a.start === 'function');
    lib = { file, addon, cells: new Int32Array(addon.cells) };
  } catch (err) {
    lib = new Error(`cannot load ${path.basename(file)}: ${errorMessage(err)}`, { cause: err });
  }
  loaded.set(file, lib);
  return lib;
}

/** Statement tokens: positive, and different from the previous statement's on any slot. */
let lastToken = 0;

/** The watchdog's hold on one client connection (SqliteHandle). */
export class StatementGuard {
  private token = 0;

  constructor(
    private readonly watchdog: StatementWatchdog,
    private readonly cells: Int32Array,
    private readonly cell: number,
  ) {}

  get limitMs(): number {
    return this.watchdog.limitMs;
  }

  /** Before SQLite steps a client's statement. */
  arm(): void {
    lastToken = lastToken >= 0x3fffffff ? 1 : lastToken + 1;
    this.token = lastToken;
    this.cells[this.cell] = lastToken;
  }

  /**
   * After it (finally): true when the watchdog interrupted it. Then the interrupt has landed when
   * this returns, so it cannot fall on the connection's next statement instead.
   */
  disarm(): boolean {
    if (Atomics.compareExchange(this.cells, this.cell, this.token, 0) === this.token) return false;
    this.watchdog.sync();
    Atomics.store(this.cells, this.cell, 0);
    return true;
  }

  /**
   * What a statement's error becomes. SQLITE_INTERRUPT (only the watchdog interrupts a client
   * connection) ends the transaction the statement ran in: it is rolled back (SQLite already did
   * when the statement wrote; not when it only read), before the caller settles the connection and
   * its write lock. The client hears why, the operator gets one warning. Other errors pass through.
   * @param inTransaction whether a transaction was open when the statement started
   */
  failed(err: unknown, db: Database.Database, namespace: string, sql: string, inTransaction: boolean, durationMs: number): unknown {
    if (!(err instanceof SqlError) || err.code !== 'SQLITE_INTERRUPT') return err;
    if (db.inTransaction) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // the connection's next statement reports it
      }
    }
    const rolledBack = inTransaction ? '; its transaction was rolled back' : '';
    this.watchdog.report(namespace, durationMs, sql, rolledBack);
    return new SqlError(
      'SQLITE_INTERRUPT',
      `SQLite error: interrupted: the statement ran longer than the server's limit of ${this.limitMs / 1000} s (${LIMIT_FLAG})${rolledBack}`,
      { cause: err, extendedCode: 'SQLITE_INTERRUPT' },
    );
  }

  /** The same for a cursor's statement, watched one fetch at a time (RowStream). */
  forFetches(db: Database.Database, namespace: string, sql: string): FetchGuard {
    let armedAt = 0;
    return {
      arm: () => {
        armedAt = performance.now();
        this.arm();
      },
      disarm: () => this.disarm(),
      failed: (err) => this.failed(err, db, namespace, sql, db.inTransaction, performance.now() - armedAt),
    };
  }
}

/**
 * One server's watchdog: its limit, and its share of the process's watchdog thread (started while
 * any server of the process has one open).
 */
export class StatementWatchdog {
  private closed = false;
  private fullWarned = false;

  private constructor(
    private readonly lib: Loaded,
    readonly limitMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * The watchdog for statements limited to `limitMs`, or null when the library cannot be loaded
   * (the server then runs without it, after one warning).
   */
  static open(limitMs: number, logger: Logger, file?: string): StatementWatchdog | null {
    if (!Number.isInteger(limitMs) || limitMs < 1 || limitMs > 0x7fffffff) throw new RangeError(`statement limit out of range: ${limitMs} ms`);
    const lib = loadWatchdogAddon(file);
    if (lib instanceof Error) {
      logger.warn(
        { reason: lib.message },
        `${LIMIT_FLAG}: the statement watchdog is not available (${lib.message}); statements run without a time limit. Rebuild it with \`npm rebuild libsqlctl\` or \`npx node-gyp rebuild\` in the installation.`,
      );
      return null;
    }
    lib.addon.start(WATCHDOG_POLL_MS);
    return new StatementWatchdog(lib, limitMs, logger);
  }

  /**
   * Gives a new client connection its slot (loads the extension into it: C API only, SQL's
   * `load_extension()` stays off). Null, after a warning, when it cannot: that connection's
   * statements then run without a limit.
   */
  attach(db: Database.Database): StatementGuard | null {
    let slot: number;
    try {
      db.loadExtension(this.lib.file); // entry point: sqlite3_extension_init
      slot = Number(db.prepare('SELECT libsqlctl_watchdog_slot()').pluck().safeIntegers(false).get());
    } catch (err) {
      if (!this.fullWarned) {
        this.fullWarned = true;
        this.logger.warn({ reason: errorMessage(err) }, `${LIMIT_FLAG}: a connection runs without the statement watchdog: ${errorMessage(err)}`);
      }
      return null;
    }
    const cells = this.lib.cells;
    cells[2 * slot + 1] = this.limitMs;
    return new StatementGuard(this, cells, 2 * slot);
  }

  sync(): void {
    this.lib.addon.sync();
  }

  /** The operator's line: namespace and duration; the SQL text only at debug level. */
  report(namespace: string, durationMs: number, sql: string, rolledBack: string): void {
    const ms = Math.round(durationMs);
    this.logger.warn(
      { namespace, durationMs: ms, limitMs: this.limitMs, rolledBack: rolledBack !== '' },
      `namespace ${namespace}: a statement ran longer than ${this.limitMs / 1000} s (${LIMIT_FLAG}) and was interrupted after ${ms} ms${rolledBack}`,
    );
    this.logger.debug({ namespace, sql }, `namespace ${namespace}: the interrupted statement`);
  }

  stats(): WatchdogStats {
    return this.lib.addon.stats();
  }

  /** This server's share of the thread ends (the thread stops with the process's last one). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.addon.stop();
  }
}
