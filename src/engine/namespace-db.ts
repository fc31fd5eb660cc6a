import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { SqlConnection, SqliteHandle, type ConnectionHost } from './connection.js';
import { ExtensionLoadError, openSqlite } from './open-sqlite.js';
import type { NamespacePaths } from './data-dir.js';
import { noFaults, type FaultInjector } from './faults.js';
import { SqliteFiles } from './files/sqlite-files.js';
import { silentLogger, type Logger } from './logger.js';
import { DEFAULT_NAMESPACE_CONFIG, type NamespaceConfig } from './namespace-config.js';
import { NamespaceStats } from './namespace-stats.js';
import { PrimaryRole } from './roles/primary-role.js';
import type { DbRole, OpenTransaction, RoleHost } from './roles/role.js';
import { PAGE_SIZE } from './wal/frame.js';
import { WriteLock, type LockHolder } from './write-lock.js';
import type { StatementWatchdog } from './watchdog.js';

/** Idle SQLite connections kept per namespace for reuse. */
const MAX_IDLE_HANDLES = 32;

export interface NamespaceDbOptions {
  paths: NamespacePaths;
  name: string;
  /** The server's write-lock steal timeout; a namespace's `txn_timeout_s` overrides it. */
  txnTimeoutMs: number;
  /** The namespace's settings (default: none set); changed later with applyConfig(). */
  config?: NamespaceConfig;
  /** Where its client statements are counted (kept by Namespaces across closes); default: its own. */
  stats?: NamespaceStats;
  /** Primary (capture, checkpoints) or replica (applier); null leaves the WAL alone (engine-core tests). */
  role: DbRole | null;
  logger?: Logger;
  faults?: FaultInjector;
  /** Absolute paths of the trusted extensions loaded into every client connection (`--extensions-path`). */
  extensions?: readonly string[];
  /** Interrupts client statements that run too long; the engine's own connections are never watched. */
  watchdog?: StatementWatchdog | null;
}

/**
 * One namespace's database: the SQLite file, the engine's descriptors of it, its write lock, the
 * connections open on it, a maintenance connection that stays open so SQLite never checkpoints
 * behind the engine's back, and its role. Teardown order: client connections, role, maintenance
 * connection, descriptors (docs/ARCHITECTURE.md, "Who may touch which file").
 */
export class NamespaceDb implements ConnectionHost, RoleHost {
  readonly name: string;
  readonly paths: NamespacePaths;
  readonly logger: Logger;
  readonly faults: FaultInjector;
  readonly role: DbRole | null;
  private readonly lock: WriteLock;
  private readonly serverTxnTimeoutMs: number;
  private currentConfig: NamespaceConfig;
  readonly stats: NamespaceStats;
  private readonly extensions: readonly string[];
  private readonly watchdog: StatementWatchdog | null;
  private readonly connections = new Set<SqlConnection>();
  /** Users that keep the namespace open without a connection (a WebSocket session, a replica's log stream). */
  private holds = 0;
  private readonly idle: SqliteHandle[] = [];
  private main: Database.Database | null = null;
  private sqliteFiles: SqliteFiles | null = null;
  private closing: Promise<void> | null = null;

  constructor(opts: NamespaceDbOptions) {
    this.name = opts.name;
    this.paths = opts.paths;
    this.role = opts.role;
    this.logger = opts.logger ?? silentLogger();
    this.faults = opts.faults ?? noFaults;
    this.serverTxnTimeoutMs = opts.txnTimeoutMs;
    this.currentConfig = opts.config ?? DEFAULT_NAMESPACE_CONFIG;
    this.stats = opts.stats ?? new NamespaceStats();
    this.lock = new WriteLock(this.txnTimeoutMsFor(this.currentConfig));
    this.extensions = opts.extensions ?? [];
    this.watchdog = opts.watchdog ?? null;
  }

  get dir(): string {
    return this.paths.dir;
  }

  get config(): NamespaceConfig {
    return this.currentConfig;
  }

  /** Takes a changed config: the lock's timeout at once, per-connection settings at each connection's next statement. */
  applyConfig(config: NamespaceConfig): void {
    this.currentConfig = config;
    this.lock.setTimeoutMs(this.txnTimeoutMsFor(config));
  }

  recordQuery(sql: string, rowsRead: number, rowsWritten: number, elapsedMs: number): void {
    this.stats.record(sql, rowsRead, rowsWritten, elapsedMs);
  }

  /** Bytes the database takes: its page count (WAL included) × page size. */
  storageBytes(): number {
    return Number(this.maintenance.pragma('page_count', { simple: true })) * PAGE_SIZE;
  }

  /**
   * A checkpoint on request (admin API): on a primary through its checkpointer, the only one that
   * checkpoints (so the frame capture and backups take part); a replica's file has no WAL.
   */
  async checkpoint(): Promise<void> {
    await this.frames?.checkpoint();
  }

  private txnTimeoutMsFor(config: NamespaceConfig): number {
    return config.txnTimeoutS === null ? this.serverTxnTimeoutMs : config.txnTimeoutS * 1000;
  }

  get dbFile(): string {
    return this.paths.db;
  }

  /** Opens the database and runs its role's recovery before serving. */
  async open(): Promise<void> {
    fs.mkdirSync(this.paths.dir, { recursive: true });
    this.sqliteFiles = SqliteFiles.open(this.paths);
    try {
      this.main = this.openConnection(true);
      const pageSize = Number(this.main.pragma('page_size', { simple: true }));
      if (pageSize !== PAGE_SIZE) throw new Error(`namespace ${this.name}: page size ${pageSize} is not supported (only ${PAGE_SIZE}, as sqld)`);
      await this.role?.open(this);
    } catch (err) {
      this.main?.close();
      this.main = null;
      this.sqliteFiles.close();
      this.sqliteFiles = null;
      throw err;
    }
  }

  /** The maintenance connection (checkpoints, capture); never handed to clients. */
  get maintenance(): Database.Database {
    if (!this.main) throw new Error(`namespace ${this.name} is not open`);
    return this.main;
  }

  get files(): SqliteFiles {
    if (!this.sqliteFiles) throw new Error(`namespace ${this.name} is not open`);
    return this.sqliteFiles;
  }

  /** The primary role (frame capture, checkpoints, frame sources), or null on a replica. */
  get frames(): PrimaryRole | null {
    return this.role instanceof PrimaryRole ? this.role : null;
  }

  openInternalConnection(): Database.Database {
    return this.openConnection(false);
  }

  /**
   * A connection for clients: from the idle pool, or a new one with the trusted extensions loaded.
   * An extension that fails to load is logged and refuses this connection (the request gets the error).
   */
  takeHandle(): SqliteHandle {
    const idle = this.idle.pop();
    if (idle) return idle;
    try {
      const sqlite = this.openConnection(false, this.extensions);
      return new SqliteHandle(sqlite, this.watchdog?.attach(sqlite) ?? null);
    } catch (err) {
      if (err instanceof ExtensionLoadError) this.logger.error({ extension: err.extension, reason: err.reason }, `cannot load the trusted extension ${err.extension}: ${err.reason}`);
      throw err;
    }
  }

  returnHandle(handle: SqliteHandle): void {
    if (this.closing || handle.dirty || this.idle.length >= MAX_IDLE_HANDLES || handle.sqlite.inTransaction) handle.close();
    else this.idle.push(handle);
  }

  connect(): SqlConnection {
    if (this.closing) throw new Error(`namespace ${this.name} is closed`);
    const conn = new SqlConnection(this);
    this.connections.add(conn);
    return conn;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /**
   * Keeps the namespace from being unloaded while idle (`--max-active-namespaces`) until the
   * returned function runs (once; later calls do nothing).
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
    };
  }

  /** Nothing uses the namespace: no client connection (stream, transaction) and no hold. */
  get unused(): boolean {
    return this.connections.size === 0 && this.holds === 0;
  }

  *openTransactions(): Iterable<OpenTransaction> {
    for (const conn of this.connections) if (!conn.isAutocommit) yield conn;
  }

  replicationIndex(): bigint | null {
    return this.role?.replicationIndex() ?? null;
  }

  acquireWriteLock(holder: LockHolder, signal?: AbortSignal): Promise<void> {
    return this.lock.acquire(holder, signal);
  }

  tryAcquireWriteLock(holder: LockHolder): boolean {
    return this.lock.tryAcquire(holder);
  }

  releaseWriteLock(holder: LockHolder): void {
    this.lock.release(holder);
  }

  holdsWriteLock(holder: LockHolder): boolean {
    return this.lock.isHeldBy(holder);
  }

  beforeWrite(): void | Promise<void> {
    return this.role?.beforeWrite();
  }

  afterCommit(): void {
    this.role?.afterCommit();
  }

  onConnectionClosed(conn: SqlConnection): void {
    this.connections.delete(conn);
  }

  /**
   * Closes client connections (rolling back open transactions), then the role (final capture and
   * checkpoint), then the maintenance connection, and only then the engine's file descriptors.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.lock.close(new Error(`namespace ${this.name} is closing`));
    for (const conn of [...this.connections]) conn.close();
    for (const handle of this.idle.splice(0)) handle.close();
    try {
      await this.role?.close();
    } finally {
      this.main?.close();
      this.main = null;
      this.sqliteFiles?.close();
      this.sqliteFiles = null;
    }
  }

  /**
   * Extensions go only into client connections: the maintenance and internal connections run the
   * engine's own SQL (capture, checkpoints, read guard), never SQL a user gave.
   */
  private openConnection(maintenance: boolean, extensions: readonly string[] = []): Database.Database {
    const mode = this.role?.journalMode ?? 'wal';
    return openSqlite(this.paths.db, { journalMode: maintenance ? mode : null, wal: mode === 'wal', extensions });
  }
}
