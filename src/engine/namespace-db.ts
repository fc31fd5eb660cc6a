import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite, SqlConnection, SqliteHandle, type ConnectionHost } from './connection.js';
import { FrameCapture, type CaptureOptions } from './log/frame-capture.js';
import { PAGE_SIZE } from './wal/frame.js';
import { WriteLock, type LockHolder } from './write-lock.js';

/** Idle SQLite connections kept per namespace for reuse. */
const MAX_IDLE_HANDLES = 32;

export interface NamespaceDbOptions {
  /** `<db-path>/dbs/<namespace>` */
  dir: string;
  name: string;
  txnTimeoutMs: number;
  /** Frame capture into the replication log (primary); null leaves the WAL alone (tests of the engine core). */
  capture: CaptureOptions | null;
}

/**
 * One namespace's database: the SQLite file, its write lock, the connections open on it and a
 * maintenance connection that stays open so SQLite never checkpoints behind the engine's back.
 */
export class NamespaceDb implements ConnectionHost {
  readonly name: string;
  readonly dir: string;
  readonly dbFile: string;
  private readonly lock: WriteLock;
  private readonly connections = new Set<SqlConnection>();
  private readonly idle: SqliteHandle[] = [];
  private main: Database.Database | null = null;
  private capture: FrameCapture | null = null;
  private closed = false;

  constructor(private readonly opts: NamespaceDbOptions) {
    this.name = opts.name;
    this.dir = opts.dir;
    this.dbFile = path.join(opts.dir, 'data');
    this.lock = new WriteLock(opts.txnTimeoutMs);
  }

  /** Opens the database and, on a primary, recovers and continues its replication log before serving. */
  open(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    this.main = openSqlite(this.dbFile);
    const pageSize = Number(this.main.pragma('page_size', { simple: true }));
    if (pageSize !== PAGE_SIZE) {
      this.main.close();
      this.main = null;
      throw new Error(`namespace ${this.name}: page size ${pageSize} is not supported (only ${PAGE_SIZE}, as sqld)`);
    }
    const capture = this.opts.capture;
    if (capture) {
      try {
        this.capture = FrameCapture.open(this, capture);
      } catch (err) {
        this.main.close();
        this.main = null;
        throw err;
      }
    }
  }

  /** The maintenance connection (checkpoints, capture); never handed to clients. */
  get maintenance(): Database.Database {
    if (!this.main) throw new Error(`namespace ${this.name} is not open`);
    return this.main;
  }

  /** The frame capture (replication log, checkpoints) of a primary namespace. */
  get frames(): FrameCapture | null {
    return this.capture;
  }

  takeHandle(): SqliteHandle {
    return this.idle.pop() ?? new SqliteHandle(openSqlite(this.dbFile, { setJournalMode: false }));
  }

  returnHandle(handle: SqliteHandle): void {
    if (this.closed || handle.dirty || this.idle.length >= MAX_IDLE_HANDLES || handle.sqlite.inTransaction) handle.close();
    else this.idle.push(handle);
  }

  connect(): SqlConnection {
    if (this.closed) throw new Error(`namespace ${this.name} is closed`);
    const conn = new SqlConnection(this);
    this.connections.add(conn);
    return conn;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  replicationIndex(): bigint | null {
    return this.capture?.replicationIndex() ?? null;
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

  beforeWrite(): void {
    this.capture?.beforeWrite();
  }

  afterCommit(): void {
    this.capture?.afterCommit();
  }

  onConnectionClosed(conn: SqlConnection): void {
    this.connections.delete(conn);
  }

  /** Closes client connections (rolling back open transactions), then capture (final checkpoint) and the database. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lock.close(new Error(`namespace ${this.name} is closing`));
    for (const conn of [...this.connections]) conn.close();
    for (const handle of this.idle.splice(0)) handle.close();
    try {
      this.capture?.close();
    } finally {
      this.main?.close();
      this.main = null;
    }
  }
}
