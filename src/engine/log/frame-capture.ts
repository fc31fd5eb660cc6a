import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { SqlError } from '../sql-error.js';
import { WalReader } from '../wal/sqlite-wal.js';
import { WAL_HEADER_SIZE } from '../wal/sqlite-wal.js';
import { warn } from '../warn.js';
import type { LockHolder } from '../write-lock.js';
import { writeCaptureState } from './capture-state.js';
import { recoverLog, toPageFrames } from './log-recovery.js';
import type { CompactionPolicy, ReplicationLog } from './replication-log.js';

/** What frame capture needs from its namespace database. */
export interface CaptureHost {
  readonly name: string;
  readonly dir: string;
  readonly dbFile: string;
  readonly maintenance: Database.Database;
  tryAcquireWriteLock(holder: LockHolder): boolean;
  releaseWriteLock(holder: LockHolder): void;
}

export interface CaptureOptions {
  compaction: CompactionPolicy;
  /** `--checkpoint-interval-s`, null = only on WAL size and at shutdown. */
  checkpointIntervalS: number | null;
  /** Checkpoint once the WAL is this large (bytes). */
  checkpointWalBytes: number;
  /** Test seam for faults that cannot be caused otherwise (disk full during capture). */
  beforeAppend?: () => void;
}

/** Returns false to hold a checkpoint back (bottomless, until it has taken the frames). */
export type CheckpointGuard = () => boolean;

const SENTINEL = '.sentinel';
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

/**
 * Captures committed WAL frames into the replication log right after each write transaction, and
 * owns checkpoints (docs/REPLICATION_LOG.md). Called under the namespace write lock.
 */
export class FrameCapture implements LockHolder {
  private reader: WalReader;
  private generation: { salt1: number; salt2: number } | null;
  private failure: Error | null = null;
  /** True from a successful checkpoint until new frames are captured. */
  private checkpointed = false;
  private readonly guards = new Set<CheckpointGuard>();
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay = RETRY_MIN_MS;
  private readonly interval: NodeJS.Timeout | null;
  private closed = false;
  readonly log: ReplicationLog;
  /** True when the previous run did not shut down cleanly. */
  readonly uncleanShutdown: boolean;

  private constructor(
    private readonly host: CaptureHost,
    private readonly opts: CaptureOptions,
  ) {
    const sentinel = path.join(host.dir, SENTINEL);
    this.uncleanShutdown = fs.existsSync(sentinel);
    if (this.uncleanShutdown) warn(`namespace ${host.name}: the previous run did not shut down cleanly; recovering`);
    fs.writeFileSync(sentinel, '');
    const recovered = recoverLog(host.dir, host.name, this.walPath, host.maintenance, opts.compaction);
    this.log = recovered.log;
    this.reader = recovered.reader;
    this.generation = recovered.generation;
    if (recovered.recoveredFrames > 0) warn(`namespace ${host.name}: captured ${recovered.recoveredFrames} WAL frames missing from the log`);
    this.interval = opts.checkpointIntervalS === null ? null : setInterval(() => this.periodic(), opts.checkpointIntervalS * 1000);
    this.interval?.unref();
  }

  static open(host: CaptureHost, opts: CaptureOptions): FrameCapture {
    return new FrameCapture(host, opts);
  }

  private get walPath(): string {
    return `${this.host.dbFile}-wal`;
  }

  replicationIndex(): bigint | null {
    return this.log.replicationIndex;
  }

  addCheckpointGuard(guard: CheckpointGuard): () => void {
    this.guards.add(guard);
    return () => this.guards.delete(guard);
  }

  /** After a commit (write lock held): the new frames must reach the log, or the writer hears of it. */
  afterCommit(): void {
    try {
      this.capture();
      this.failure = null;
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      warn(`namespace ${this.host.name}: frame capture failed, writes are refused until it recovers: ${this.failure.message}`);
      throw new SqlError('SQLITE_IOERR', `SQLite error: the transaction committed but its frames could not be logged: ${this.failure.message}`, { cause: err });
    }
    // A refused checkpoint is retried by its timer (with backoff), not again on every commit.
    if (this.pendingWalBytes() >= this.opts.checkpointWalBytes && this.retryTimer === null) {
      // The committing connection still holds the write lock: checkpoint right here, in the commit
      // path, as SQLite's own auto-checkpoint would. Refused (readers, guards) → retried later.
      let done = false;
      try {
        done = this.checkpointLocked();
      } catch (err) {
        warn(`namespace ${this.host.name}: checkpoint failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!done) this.scheduleCheckpoint(0);
    }
  }

  /** Before a write transaction starts (write lock held): re-captures after a failure, or refuses. */
  beforeWrite(): void {
    if (!this.failure) return;
    try {
      this.capture();
      this.failure = null;
      warn(`namespace ${this.host.name}: frame capture recovered`);
    } catch (err) {
      throw new SqlError('SQLITE_IOERR', `SQLite error: writes are refused until the replication log catches up: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /** Checkpoints now if possible; false when refused (writer active, guard, busy readers, failure). */
  checkpoint(): boolean {
    if (this.closed || this.failure) return false;
    if (!this.host.tryAcquireWriteLock(this)) return false;
    try {
      return this.checkpointLocked();
    } finally {
      this.host.releaseWriteLock(this);
    }
  }

  /** The checkpoint itself; the caller holds the namespace write lock (so no commit can interleave). */
  private checkpointLocked(): boolean {
    if (this.closed || this.failure) return false;
    for (const guard of this.guards) if (!guard()) return false;
    try {
      this.capture();
      // Page cache only, like SQLite's own WAL under synchronous=NORMAL: after a power loss the log
      // may miss frames the database has, which recovery detects (new log); no fsync per checkpoint.
      this.log.flush();
      // RESTART, not TRUNCATE: the WAL file keeps its size and SQLite overwrites it from the start
      // (growing a file again after every checkpoint costs writers about a quarter of their speed).
      const [row] = this.host.maintenance.pragma('wal_checkpoint(RESTART)') as { busy: number }[];
      if (row?.busy) return false;
      // The capture state still describes the WAL generation on disk, which stays valid until the
      // next writer restarts the WAL; the reader notices that restart by its new salts.
      this.checkpointed = true;
      return true;
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return false;
      throw err;
    }
  }

  /** Internal lock holder: a checkpoint never overstays, nothing to preempt. */
  preempt(): void {}

  /** Final capture and checkpoint; removes the sentinel only when everything is in the log. */
  close(): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.interval) clearInterval(this.interval);
    let clean = false;
    try {
      clean = this.checkpoint();
    } catch (err) {
      warn(`namespace ${this.host.name}: final checkpoint failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.closed = true;
      this.reader.close();
      this.log.close();
    }
    if (clean) fs.rmSync(path.join(this.host.dir, SENTINEL), { force: true });
  }

  private capture(): void {
    const saved = this.reader.state;
    try {
      const { transactions } = this.reader.readCommitted({ copyPages: false });
      if (transactions.length === 0) return;
      const gen = this.reader.salts!;
      if (!this.generation || this.generation.salt1 !== gen.salt1 || this.generation.salt2 !== gen.salt2) {
        writeCaptureState(this.host.dir, { logId: this.log.logId, salt1: gen.salt1, salt2: gen.salt2, genStartFrameNo: this.log.nextFrameNo });
        this.generation = { salt1: gen.salt1, salt2: gen.salt2 };
      }
      this.opts.beforeAppend?.();
      this.log.append(toPageFrames(transactions));
      this.checkpointed = false;
    } catch (err) {
      this.reader.close();
      this.reader = new WalReader(this.walPath, saved);
      throw err;
    }
  }

  /** Bytes of WAL frames not yet checkpointed into the database (what the size thresholds see). */
  pendingWalBytes(): number {
    return this.checkpointed ? 0 : Math.max(0, this.reader.offset - WAL_HEADER_SIZE);
  }

  private periodic(): void {
    if (this.pendingWalBytes() > 0) this.scheduleCheckpoint(0);
    this.log.maybeCompact();
  }

  private scheduleCheckpoint(delay: number): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      let done = false;
      try {
        done = this.checkpoint();
      } catch (err) {
        warn(`namespace ${this.host.name}: checkpoint failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (done) {
        this.retryDelay = RETRY_MIN_MS;
      } else if (!this.closed) {
        this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
        this.scheduleCheckpoint(this.retryDelay);
      }
    }, delay);
    this.retryTimer.unref();
  }
}
