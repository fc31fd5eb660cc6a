/**
 * `serve --enable-bottomless-replication`: the one store, a restore before a namespace with no
 * database opens, and a `NamespaceBackup` for every primary namespace once it is open
 * (docs/BOTTOMLESS.md). The composition root calls `prepare` and `attach` through the namespace
 * registry's hooks and `close` after the namespaces closed (their final checkpoints hand over).
 */
import fs from 'node:fs';
import type { BottomlessConfig } from '../config/bottomless-config.js';
import type { BackupPolicy } from '../config/serve-config.js';
import { sqldDbName } from '../backup/format/layout.js';
import { newestGeneration } from '../backup/restore/catalog.js';
import { restoreDatabase } from '../backup/restore/restore.js';
import { removeOlderThan } from '../backup/restore/remove.js';
import { generationSeconds } from '../backup/format/generation-id.js';
import { openStorage } from '../backup/storage/open-storage.js';
import type { BackupStorage } from '../backup/storage/storage.js';
import { NamespaceBackup, type BackupStatus } from '../backup/uploader/namespace-backup.js';
import type { NamespacePaths } from '../engine/data-dir.js';
import { errorMessage, type Logger } from '../engine/logger.js';
import type { NamespaceDb } from '../engine/namespace-db.js';
import { LibsqlctlError } from '../errors.js';

/** The longest a graceful shutdown waits for a namespace's uploads. */
const SHUTDOWN_UPLOAD_TIMEOUT_MS = 30_000;

export class ServerBackups {
  private readonly backups = new Map<string, NamespaceBackup>();

  private constructor(
    private readonly config: BottomlessConfig & { policy: BackupPolicy },
    private readonly storage: BackupStorage,
    private readonly logger: Logger,
  ) {}

  /** Opens the store and creates the bucket when missing; a store that cannot be reached stops the start. */
  static async open(config: BottomlessConfig & { policy: BackupPolicy }, logger: Logger): Promise<ServerBackups> {
    const storage = await openStorage(config.target);
    try {
      await storage.ensureBucket();
    } catch (err) {
      await storage.close();
      throw new LibsqlctlError('BACKUP_STORAGE_UNREACHABLE', `backups: ${storage.description} cannot be used: ${errorMessage(err)}`, {
        cause: err,
        hint: 'check LIBSQL_BOTTOMLESS_ENDPOINT, the bucket and the credentials (or start without --enable-bottomless-replication)',
      });
    }
    logger.info({ storage: storage.description, databaseId: config.databaseId }, 'backups on');
    return new ServerBackups(config, storage, logger);
  }

  dbName(namespace: string): string {
    return sqldDbName(this.config.databaseId, namespace);
  }

  /**
   * Before a namespace opens: with no database file yet (an empty data directory, a new machine),
   * the newest backup is restored first, so the server never starts a new history over an old one.
   */
  async prepare(name: string, paths: NamespacePaths): Promise<void> {
    if (fs.existsSync(paths.db)) return;
    const db = this.dbName(name);
    const newest = await newestGeneration(this.storage, db);
    if (newest === null) return;
    this.logger.info({ namespace: name, generation: newest }, `restoring ${db} from ${this.storage.description} before serving`);
    fs.mkdirSync(paths.dir, { recursive: true });
    const report = await restoreDatabase({ storage: this.storage, db, out: paths.db, verifyCrc: this.config.verifyCrc, parallel: this.config.parallelMax });
    this.logger.info({ namespace: name, generation: report.generation, frames: report.frames, transactions: report.transactions }, `restored ${db}`);
  }

  /** After a namespace opened: primaries get their uploader (replicas have nothing of their own). */
  async attach(db: NamespaceDb): Promise<void> {
    const role = db.frames;
    if (role === null) return;
    const backup = await NamespaceBackup.attach({ role, paths: db.paths, storage: this.storage, config: this.config, dbName: this.dbName(db.name), logger: db.logger, options: this.config.policy });
    this.backups.set(db.name, backup);
  }

  status(namespace: string): BackupStatus | null {
    return this.backups.get(namespace)?.status() ?? null;
  }

  /**
   * After a namespace closed while the server runs: unloaded while idle, its uploader flushes what
   * the final checkpoint handed over (bounded) and stops, and the next open attaches anew; deleted,
   * it uploads what is left only when its backup is kept (after the savepoint the delete waited for).
   */
  async detach(namespace: string, opts: { upload: boolean }): Promise<void> {
    const backup = this.backups.get(namespace);
    if (backup === undefined) return;
    this.backups.delete(namespace);
    await backup.close({ upload: opts.upload, timeoutMs: SHUTDOWN_UPLOAD_TIMEOUT_MS });
  }

  /** Whether the namespace has frames not yet durable in the store (it then stays open). */
  busy(namespace: string): boolean {
    const status = this.status(namespace);
    return status !== null && status.uploadLagFrames > 0;
  }

  /** Every uploader flushes (unless `_SKIP_SHUTDOWN_UPLOAD`), bounded; then the store closes. */
  async close(): Promise<void> {
    const upload = !this.config.skipShutdownUpload;
    const results = await Promise.allSettled([...this.backups.values()].map((b) => b.close({ upload, timeoutMs: SHUTDOWN_UPLOAD_TIMEOUT_MS })));
    this.backups.clear();
    await this.storage.close();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * A point-in-time fork (admin API): the backup of namespace `source` as of `time` is restored
   * into `paths.db`, the new namespace's empty folder; it opens like any restored database.
   */
  async restoreAt(source: string, time: Date, paths: NamespacePaths): Promise<void> {
    const db = this.dbName(source);
    const report = await restoreDatabase({ storage: this.storage, db, time, out: paths.db, verifyCrc: this.config.verifyCrc, parallel: this.config.parallelMax });
    this.logger.info({ source, time: time.toISOString(), generation: report.generation, frames: report.frames, transactions: report.transactions }, `restored ${db} as of ${time.toISOString()} for a fork`);
  }

  /**
   * sqld's savepoint before a delete that keeps the backup: resolves once everything the namespace
   * committed so far is in the store (at once for a namespace that is not open: its uploader
   * flushed when it closed); rejects when that takes longer than a shutdown's upload may.
   */
  async savepoint(namespace: string): Promise<void> {
    const backup = this.backups.get(namespace);
    if (backup === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), SHUTDOWN_UPLOAD_TIMEOUT_MS)));
    try {
      const outcome = await Promise.race([backup.flush().then(() => 'done' as const), timeout]);
      if (outcome === 'timeout') {
        const lastError = backup.status().lastError;
        throw new LibsqlctlError('BACKUP_SAVEPOINT_TIMEOUT', `the backup of ${this.dbName(namespace)} did not reach ${this.storage.description} within ${SHUTDOWN_UPLOAD_TIMEOUT_MS / 1000} s${lastError ? ` (${lastError})` : ''}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * After a namespace was deleted (its uploader closed: `detach`): every object under its database
   * name goes, all generations, fenced by a tombstone as `bottomless rm --older-than` does (removed
   * after the last delete; an interrupted prune leaves it, and the next prune of the name finishes).
   */
  async prune(namespace: string): Promise<void> {
    const db = this.dbName(namespace);
    // Past every generation there is: generation ids run ahead of the clock when it stepped back.
    const newest = await newestGeneration(this.storage, db);
    const newestMs = newest === null ? 0 : generationSeconds(newest) * 1000;
    const before = new Date(Math.max(Date.now(), newestMs) + 1000);
    const removed = await removeOlderThan(this.storage, db, before);
    this.logger.info({ namespace, generations: removed.generations.length, objects: removed.keys.length }, `pruned the backups of ${db} from ${this.storage.description}`);
  }
}
