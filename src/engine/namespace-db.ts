import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite, SqlConnection, type ConnectionHost } from './connection.js';
import { WriteLock, type LockHolder } from './write-lock.js';

export interface NamespaceDbOptions {
  /** `<db-path>/dbs/<namespace>` */
  dir: string;
  name: string;
  txnTimeoutMs: number;
}

/**
 * Extension points for frame capture and backup (engine issue): called with the write lock held right
 * after a transaction committed, and asked for the replication index reported to clients.
 */
export interface CommitObserver {
  afterCommit(): void;
  replicationIndex(): bigint | null;
  close(): void;
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
  private main: Database.Database | null = null;
  private observer: CommitObserver | null = null;
  private closed = false;

  constructor(opts: NamespaceDbOptions) {
    this.name = opts.name;
    this.dir = opts.dir;
    this.dbFile = path.join(opts.dir, 'data');
    this.lock = new WriteLock(opts.txnTimeoutMs);
  }

  open(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    this.main = openSqlite(this.dbFile);
  }

  /** The maintenance connection (checkpoints, capture); never handed to clients. */
  get maintenance(): Database.Database {
    if (!this.main) throw new Error(`namespace ${this.name} is not open`);
    return this.main;
  }

  setObserver(observer: CommitObserver): void {
    this.observer = observer;
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
    return this.observer?.replicationIndex() ?? null;
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

  afterCommit(): void {
    this.observer?.afterCommit();
  }

  onConnectionClosed(conn: SqlConnection): void {
    this.connections.delete(conn);
  }

  /** Closes client connections (rolling back open transactions), then the observer and the database. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lock.close(new Error(`namespace ${this.name} is closing`));
    for (const conn of [...this.connections]) conn.close();
    try {
      this.observer?.close();
    } finally {
      this.main?.close();
      this.main = null;
    }
  }
}
