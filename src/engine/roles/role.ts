/**
 * A namespace database is a primary (frame capture + checkpoints) or a replica (frame applier). The
 * role sits behind NamespaceDb's connection hooks, so the server never asks which one it has.
 */
import type Database from 'better-sqlite3';
import type { NamespacePaths } from '../data-dir.js';
import type { FaultInjector } from '../faults.js';
import type { SqliteFiles } from '../files/sqlite-files.js';
import type { Logger } from '../logger.js';
import type { SqlError } from '../sql-error.js';
import type { LockHolder } from '../write-lock.js';

/** A client connection that is inside a transaction (what a replica must wait out or roll back). */
export interface OpenTransaction {
  /** Rolls the transaction back; the connection's next statement fails with `reason`. */
  abortTransaction(reason: SqlError): void;
}

/** What a role gets from its namespace database. */
export interface RoleHost {
  readonly name: string;
  readonly paths: NamespacePaths;
  /** The engine's one descriptor per SQLite file (files/sqlite-files.ts). */
  readonly files: SqliteFiles;
  readonly logger: Logger;
  readonly faults: FaultInjector;
  /** The maintenance connection: open for the namespace's whole life, never handed to clients. */
  readonly maintenance: Database.Database;
  /** Opens another engine-internal connection with this role's settings (closed by its user). */
  openInternalConnection(): Database.Database;
  acquireWriteLock(holder: LockHolder, signal?: AbortSignal): Promise<void>;
  tryAcquireWriteLock(holder: LockHolder): boolean;
  releaseWriteLock(holder: LockHolder): void;
  /** Client connections currently inside a transaction. */
  openTransactions(): Iterable<OpenTransaction>;
}

export type JournalMode = 'wal' | 'rollback';

export interface DbRole {
  readonly kind: 'primary' | 'replica';
  /** How the role's database file is kept: WAL (primary) or rollback journal (replica, design.md §5). */
  readonly journalMode: JournalMode;
  /** Runs before the namespace serves (recovery); the host's maintenance connection is open. */
  open(host: RoleHost): Promise<void>;
  /** A write transaction is about to start (write lock held): throws (or rejects) to refuse it. */
  beforeWrite(): void | Promise<void>;
  /** A write transaction committed (write lock still held). */
  afterCommit(): void;
  /** The namespace's replication index (primary: last logged commit; replica: last applied). */
  replicationIndex(): bigint | null;
  /** Called after client connections are closed and before the maintenance connection closes. */
  close(): Promise<void>;
}
