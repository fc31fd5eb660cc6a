import fs from 'node:fs';
import { FrameCapture } from '../log/frame-capture.js';
import type { CompactionPolicy, ReplicationLog } from '../log/replication-log.js';
import { errorMessage, guardedInterval } from '../logger.js';
import { Checkpointer, type CheckpointParticipant, type CheckpointPolicy } from '../pipeline/checkpointer.js';
import type { FrameSource } from '../pipeline/frame-source.js';
import { LogFrameSource } from '../pipeline/log-frame-source.js';
import { FramePublisher } from '../pipeline/publisher.js';
import type { CheckpointedEvent, TransactionSubscriber } from '../pipeline/transactions.js';
import { SqlError } from '../sql-error.js';
import type { LockHolder } from '../write-lock.js';
import type { DbRole, RoleHost } from './role.js';

export interface PrimaryOptions {
  compaction: CompactionPolicy;
  checkpoint: CheckpointPolicy;
  /** How often to look for frames other processes committed (ms); null = only at our commits. */
  outsidePollMs: number | null;
  /**
   * `--snapshot-at-shutdown`: at close, after the final checkpoint, the whole log is compacted into
   * a snapshot (waited for, `--snapshot-exec` included) and the WAL is truncated.
   */
  snapshotAtShutdown?: boolean;
}

/** Errors of the machine rather than the data (disk full, I/O, a lock held elsewhere): the namespace serves reads and retries. */
function isResourceError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EMFILE', 'ENFILE'].includes(code)) return true;
  // SQLITE_BUSY: another process holds the database while a new log must be seeded.
  return code.startsWith('SQLITE_FULL') || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_BUSY');
}

/**
 * The primary: captures committed frames into the replication log, publishes them, owns the
 * checkpoints, and serves the log read-only through frame sources. When the log cannot be opened or
 * written (a full disk, also at start-up), the namespace keeps serving reads and refuses writes until
 * a retry — at the next write attempt — succeeds.
 */
export class PrimaryRole implements DbRole, LockHolder {
  readonly kind = 'primary';
  readonly journalMode = 'wal';
  private host!: RoleHost;
  private capture: FrameCapture | null = null;
  private startupError: Error | null = null;
  private publisher!: FramePublisher;
  private poll: NodeJS.Timeout | null = null;
  private closed = false;
  checkpointer!: Checkpointer;
  /** True when the previous run did not shut down cleanly. */
  uncleanShutdown = false;

  constructor(private readonly opts: PrimaryOptions) {}

  async open(host: RoleHost): Promise<void> {
    this.host = host;
    const sentinel = host.paths.sentinel;
    this.uncleanShutdown = fs.existsSync(sentinel);
    if (this.uncleanShutdown) host.logger.warn(`namespace ${host.name}: the previous run did not shut down cleanly; recovering`);
    this.publisher = new FramePublisher(host.name, host.logger);
    this.checkpointer = new Checkpointer(this.checkpointTarget(), this.opts.checkpoint, host.logger, host.name);
    try {
      fs.writeFileSync(sentinel, '');
      await this.openCapture();
    } catch (err) {
      if (!isResourceError(err)) throw err;
      this.startupError = err instanceof Error ? err : new Error(String(err));
      host.logger.error({ err }, `namespace ${host.name}: the replication log cannot be opened (${errorMessage(err)}); serving reads, refusing writes until it can`);
    }
    if (this.opts.outsidePollMs !== null) {
      this.poll = guardedInterval(host.logger, `namespace ${host.name}: outside-writer poll`, this.opts.outsidePollMs, () => this.pollOutside());
    }
  }

  /** The current replication log (tests, diagnostics); consumers use `frameSource()`. */
  get log(): ReplicationLog {
    return this.requireCapture().log;
  }

  get logId(): string {
    return this.requireCapture().logId;
  }

  /** Why the log was started anew at open, or null. */
  get newLogReason(): string | null {
    return this.capture?.newLogReason ?? null;
  }

  /** The reason writes are refused now, or null. */
  get writeRefusal(): Error | null {
    return this.startupError ?? this.capture?.failed ?? null;
  }

  beforeWrite(): void | Promise<void> {
    if (this.capture) return this.capture.beforeWrite();
    return this.retryOpen();
  }

  /** Start-up could not open the log: the write that asks for it retries (write lock held). */
  private async retryOpen(): Promise<void> {
    try {
      await this.openCapture();
    } catch (err) {
      throw new SqlError('SQLITE_IOERR', `SQLite error: writes are refused until the replication log can be opened: ${errorMessage(err)}`, { cause: err });
    }
    this.startupError = null;
    this.host.logger.warn(`namespace ${this.host.name}: replication log opened, writes accepted`);
    this.capture!.beforeWrite();
  }

  afterCommit(): void {
    this.requireCapture().afterCommit();
    this.checkpointer.afterCommit();
  }

  replicationIndex(): bigint | null {
    return this.capture?.replicationIndex() ?? null;
  }

  /** A read-only view of the current log (its `logId` is fixed; a new log needs a new source). */
  frameSource(): FrameSource {
    return new LogFrameSource({ currentLog: () => this.requireCapture().log, publisher: this.publisher, isClosed: () => this.closed });
  }

  /** Subscribers now (frame-source iterators included): tests check none is left behind. */
  get subscriberCount(): number {
    return this.publisher.count;
  }

  subscribe(subscriber: TransactionSubscriber): () => void {
    return this.publisher.subscribe(subscriber);
  }

  addCheckpointParticipant(p: CheckpointParticipant): () => void {
    return this.checkpointer.addParticipant(p);
  }

  /** A participant that only vetoes: `guard()` false holds checkpoints back (retried later). */
  addCheckpointGuard(guard: () => boolean): () => void {
    return this.checkpointer.addParticipant({ name: 'guard', handOver: () => guard() });
  }

  onCheckpointed(fn: (e: CheckpointedEvent) => void): () => void {
    return this.checkpointer.onCheckpointed(fn);
  }

  /** Checkpoints as soon as possible (prepared, queued for the write lock); true when complete. */
  checkpoint(): Promise<boolean> {
    return this.checkpointer.request();
  }

  /** Checkpoints now if the write lock is free and nobody needs to prepare; false otherwise. */
  checkpointNow(): boolean {
    return this.checkpointer.tryNow();
  }

  pendingWalBytes(): number {
    return this.capture?.pendingWalBytes() ?? 0;
  }

  /**
   * Read-only access to the database file through the engine's one descriptor (bottomless
   * snapshots): `read` returns the bytes read at `position` (short only at the end of the file).
   */
  get databaseFile(): { size(): number; read(buf: Uint8Array, position: number): number } {
    const files = this.host.files;
    return { size: () => files.statDb().size, read: (buf, position) => files.readDb(buf, position) };
  }

  /**
   * Starts a new log from the database as it is (new `log_id`): restore, fork and dump loading call
   * this after changing the database underneath. Waits for the write lock.
   */
  async startNewLog(reason: string): Promise<void> {
    await this.host.acquireWriteLock(this);
    try {
      this.requireCapture().startNewLog(reason);
    } finally {
      this.host.releaseWriteLock(this);
    }
  }

  /** Internal lock holder: never preempted. */
  preempt(): void {}

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.poll) clearInterval(this.poll);
    const checkpointed = await this.checkpointer.close();
    this.closed = true;
    this.publisher.close();
    // Only after a complete checkpoint: the database file then holds everything the log does.
    if (this.opts.snapshotAtShutdown && checkpointed) await this.capture?.compactForShutdown();
    const clean = this.capture?.close() ?? false;
    if (clean && checkpointed && this.opts.snapshotAtShutdown) this.truncateWal();
    if (clean && checkpointed) fs.rmSync(this.host.paths.sentinel, { force: true });
  }

  /** `--snapshot-at-shutdown`: everything is checkpointed and captured; leave an empty WAL. */
  private truncateWal(): void {
    try {
      const [row] = this.host.maintenance.pragma('wal_checkpoint(TRUNCATE)') as { busy: bigint }[];
      if (row !== undefined && Number(row.busy) !== 0) this.host.logger.warn(`namespace ${this.host.name}: snapshot at shutdown: the WAL could not be truncated (another process reads the database)`);
    } catch (err) {
      this.host.logger.warn({ err }, `namespace ${this.host.name}: snapshot at shutdown: truncating the WAL failed: ${errorMessage(err)}`);
    }
  }

  private async openCapture(): Promise<void> {
    this.capture = await FrameCapture.open(this.host, this.opts.compaction, this.publisher);
  }

  private requireCapture(): FrameCapture {
    if (!this.capture) {
      throw new SqlError('SQLITE_IOERR', `SQLite error: the replication log of namespace ${this.host.name} is not open: ${errorMessage(this.startupError)}`);
    }
    return this.capture;
  }

  private pollOutside(): void {
    this.host.faults.at('timer');
    const capture = this.capture;
    if (!capture || this.closed) return;
    if (this.host.tryAcquireWriteLock(this)) {
      try {
        capture.captureOutside();
      } finally {
        this.host.releaseWriteLock(this);
      }
    }
    // --max-log-duration is checked here too, so an idle log still compacts on time.
    capture.compactIfDue();
  }

  private checkpointTarget(): ConstructorParameters<typeof Checkpointer>[0] {
    return {
      pendingWalBytes: () => this.pendingWalBytes(),
      replicationIndex: () => this.replicationIndex(),
      checkpointLocked: () => this.capture?.checkpointLocked() ?? null,
      acquireWriteLock: (h, s) => this.host.acquireWriteLock(h, s),
      tryAcquireWriteLock: (h) => this.host.tryAcquireWriteLock(h),
      releaseWriteLock: (h) => this.host.releaseWriteLock(h),
    };
  }
}
