import type Database from 'better-sqlite3';
import { errorMessage } from '../logger.js';
import type { FramePublisher } from '../pipeline/publisher.js';
import type { RoleHost } from '../roles/role.js';
import type { CheckpointedEvent, CommittedTransaction } from '../pipeline/transactions.js';
import { SqlError } from '../sql-error.js';
import { decodeFrame, FRAME_SIZE, type Frame } from '../wal/frame.js';
import { WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WalReader, type WalReaderState, type WalTransaction } from '../wal/sqlite-wal.js';
import { CaptureStateFile, type CaptureState } from './capture-state.js';
import { dbIdentity } from './db-identity.js';
import { recoverLog, seedNewLog, toPageFrames, type RecoveredLog, type RecoveryInput } from './log-recovery.js';
import type { CompactionPolicy, ReplicationLog } from './replication-log.js';

/** What frame capture needs from its namespace database. */
export type CaptureHost = Pick<RoleHost, 'name' | 'paths' | 'files' | 'logger' | 'faults' | 'maintenance' | 'openInternalConnection'>;

/** The reader's pages stay views into its buffer: the log copies them at once (capture). */
const NO_PAGE_COPIES = { copyPages: false } as const;

/** Compaction that failed is tried again after this long, not on every commit. */
const COMPACT_RETRY_MS = 1000;

/**
 * Captures committed WAL frames into the replication log and publishes them (docs/REPLICATION_LOG.md).
 * Every method runs under the namespace write lock, so commits and captures are strictly ordered.
 *
 * A *read guard* — a read transaction kept open on an internal connection — stops other processes
 * from checkpointing frames we have not captured and from restarting the WAL: it is released only
 * for our own checkpoint, which holds SQLite's WAL write lock meanwhile so nobody commits between
 * the last capture and the checkpoint.
 */
export class FrameCapture {
  private reader: WalReader;
  private state: CaptureState;
  private failure: Error | null = null;
  /** True from a complete checkpoint until new frames are captured. */
  private checkpointed = false;
  private compactAfter = 0;
  private guardConn: Database.Database;
  /** Holds SQLite's WAL write lock during our checkpoints. */
  private ckptConn: Database.Database;
  private closed = false;
  log: ReplicationLog;
  /** Why the current log was started at open (null: it continued). */
  readonly newLogReason: string | null;

  private constructor(
    private readonly host: CaptureHost,
    private readonly policy: CompactionPolicy,
    private readonly publisher: FramePublisher,
    reader: WalReader,
    private readonly stateFile: CaptureStateFile,
    recovered: RecoveredLog,
  ) {
    this.reader = reader;
    this.log = recovered.log;
    this.state = recovered.state;
    this.newLogReason = recovered.newLogReason;
    if (recovered.recoveredFrames > 0) host.logger.warn(`namespace ${host.name}: captured ${recovered.recoveredFrames} WAL frames missing from the log`);
    try {
      this.guardConn = host.openInternalConnection();
      this.ckptConn = host.openInternalConnection();
    } catch (err) {
      this.log.close();
      stateFile.close();
      throw err;
    }
    this.beginGuard();
  }

  /** Recovers (or seeds) the log; throws when that fails (e.g. disk full). */
  static async open(host: CaptureHost, policy: CompactionPolicy, publisher: FramePublisher): Promise<FrameCapture> {
    const reader = new WalReader(host.files.wal);
    // The log's deferred header write reports to the capture, which exists only once recovery is done.
    const sink: { capture: FrameCapture | null; early: unknown } = { capture: null, early: null };
    const onFlushError = (err: unknown): void => {
      if (sink.capture) sink.capture.flushFailed(err);
      else sink.early = err;
    };
    const stateFile = new CaptureStateFile(host.paths.captureState, host.faults);
    let recovered: RecoveredLog;
    try {
      recovered = await recoverLog(recoveryInput(host, policy, reader, stateFile, onFlushError));
    } catch (err) {
      stateFile.close();
      throw err;
    }
    sink.capture = new FrameCapture(host, policy, publisher, reader, stateFile, recovered);
    if (sink.early !== null) sink.capture.flushFailed(sink.early);
    return sink.capture;
  }

  get logId(): string {
    return this.log.logId;
  }

  get failed(): Error | null {
    return this.failure;
  }

  replicationIndex(): bigint | null {
    return this.log.replicationIndex;
  }

  /** WAL generation counter of the frames being captured now. */
  get walGeneration(): number {
    return this.state.walGeneration;
  }

  /** After a commit: the new frames must reach the log, or the writer hears of it. */
  afterCommit(): void {
    try {
      this.capture();
    } catch (err) {
      this.fail(err);
      throw new SqlError('SQLITE_IOERR', `SQLite error: the transaction committed but its frames could not be logged: ${errorMessage(err)}`, { cause: err });
    }
    if (this.failure) {
      // Recovered only once the log is written out again (a failed header write set the failure);
      // if it still fails, this commit's frames are in the log all the same, and writes stay refused.
      try {
        this.log.flush();
        this.recovered();
      } catch (err) {
        this.fail(err);
      }
    }
    this.compactIfDue();
  }

  /** Before a write transaction starts: re-captures after a failure, or refuses. */
  beforeWrite(): void {
    if (!this.failure) return;
    try {
      this.capture();
      this.log.flush();
    } catch (err) {
      throw new SqlError('SQLITE_IOERR', `SQLite error: writes are refused until the replication log catches up: ${errorMessage(err)}`, { cause: err });
    }
    this.recovered();
  }

  /** The deferred log header write failed: writes are refused until a flush succeeds again. */
  flushFailed(err: unknown): void {
    this.fail(err);
  }

  /** Captures frames other processes committed (write lock held, no writer of ours active). */
  captureOutside(): void {
    if (this.failure || this.closed) return;
    try {
      this.capture();
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * The checkpoint itself (write lock held): capture, then a PASSIVE checkpoint while our internal
   * connection holds SQLite's WAL write lock, then the boundary is persisted. Returns the event, or
   * null when refused (failure, another process mid-transaction, readers pinning old frames).
   */
  checkpointLocked(): { event: CheckpointedEvent; complete: boolean } | null {
    if (this.closed || this.failure) return null;
    // SQLite's WAL write lock is taken before the guard lets go, so no other process can commit or
    // checkpoint in between.
    try {
      this.ckptConn.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return null;
      throw err;
    }
    this.endGuard();
    try {
      this.capture();
      this.log.flush();
      const [row] = this.host.maintenance.pragma('wal_checkpoint(PASSIVE)') as { busy: bigint; log: bigint; checkpointed: bigint }[];
      const backfilled = row === undefined ? 0 : Math.max(0, Number(row.checkpointed));
      const complete = row !== undefined && Number(row.busy) === 0 && Number(row.log) === backfilled;
      const consumed = this.reader.framesConsumed;
      const gen = this.reader.salts;
      const sameGeneration = gen !== null && gen.salt1 === this.state.salt1 && gen.salt2 === this.state.salt2;
      // What the database file now holds of this generation (a partial checkpoint holds less). With
      // no WAL of that generation open (a restart after a clean shutdown removed it), what an earlier
      // checkpoint covered stands: this one saw none of its frames, so it cannot have covered fewer.
      const covered = sameGeneration ? Math.min(consumed, backfilled) : (this.state.checkpointedFrames ?? 0);
      this.state = { ...this.state, checkpointedFrames: covered, dbIdentity: dbIdentity(this.host.files) };
      this.stateFile.write(this.state);
      if (complete) this.checkpointed = true;
      return { event: { logId: this.log.logId, walGeneration: this.state.walGeneration, lastFrameIndex: covered, lastFrameNo: this.log.replicationIndex }, complete };
    } catch (err) {
      this.fail(err);
      throw err;
    } finally {
      this.releaseWalWriteLock();
      this.beginGuard();
    }
  }

  /** Bytes of WAL frames not yet checkpointed into the database (what the size thresholds see). */
  pendingWalBytes(): number {
    return this.checkpointed ? 0 : Math.max(0, this.reader.offset - WAL_HEADER_SIZE);
  }

  /**
   * Starts a new log from the database as it is now (new `log_id`; write lock held): restore, fork
   * and dump loading call this through the namespace, and capture when the WAL was restarted or the
   * database replaced behind our back. Frame sources of the old log end with LOG_CHANGED.
   */
  startNewLog(reason: string): void {
    this.host.logger.warn(`namespace ${this.host.name}: starting a new replication log: ${reason}`);
    // Seeding checkpoints with TRUNCATE: neither our guard nor our hold of the WAL write lock may stand.
    this.releaseWalWriteLock();
    this.endGuard();
    const saved = this.reader.state;
    try {
      const old = this.log;
      this.reader.restore({ generation: null, offset: 32, checksum: [0, 0] });
      const recovered = seedNewLog(recoveryInput(this.host, this.policy, this.reader, this.stateFile, (err) => this.flushFailed(err)), reason);
      old.close();
      this.log = recovered.log;
      this.state = recovered.state;
      this.checkpointed = true;
      if (this.failure) this.recovered();
    } catch (err) {
      // Refused (another process holds the database) or failed: the old log goes on exactly where
      // it was, so nothing is captured twice.
      this.reader.restore(saved);
      throw err;
    } finally {
      this.beginGuard();
    }
    this.publisher.newLog(this.log.logId, reason);
  }

  /** Final flush; the log and the guard close. Returns true when everything was captured. */
  close(): boolean {
    if (this.closed) return this.failure === null;
    let clean = this.failure === null;
    try {
      if (clean) this.capture();
    } catch (err) {
      clean = false;
      this.host.logger.error({ err }, `namespace ${this.host.name}: final capture failed: ${errorMessage(err)}`);
    }
    this.closed = true;
    this.endGuard();
    this.releaseWalWriteLock();
    this.guardConn.close();
    this.ckptConn.close();
    this.reader.close();
    this.stateFile.close();
    try {
      this.log.close();
    } catch (err) {
      clean = false;
      this.host.logger.error({ err }, `namespace ${this.host.name}: closing the replication log failed: ${errorMessage(err)}`);
    }
    return clean;
  }

  private fail(err: unknown): void {
    const first = this.failure === null;
    this.failure = err instanceof Error ? err : new Error(String(err));
    if (first) this.host.logger.error({ err }, `namespace ${this.host.name}: frame capture failed, writes are refused until it recovers: ${this.failure.message}`);
  }

  private recovered(): void {
    this.failure = null;
    this.host.logger.warn(`namespace ${this.host.name}: frame capture recovered, writes accepted again`);
  }

  /**
   * `--snapshot-at-shutdown`: captures what is left, compacts the whole log into a snapshot and waits
   * until the snapshot is built (and `--snapshot-exec` ran). A failure is logged; the log stays.
   */
  async compactForShutdown(): Promise<void> {
    if (this.closed || this.failure) return;
    try {
      this.capture();
      const from = this.log.startFrameNo;
      const to = this.log.nextFrameNo - 1n;
      if (to < from) return;
      this.log.compact();
      // A snapshot that fails to build is logged by the log itself and finished at the next start.
      await this.log.drain();
      if (this.log.snapshots().some((snap) => snap.endFrameNo === to)) {
        this.host.logger.info(`namespace ${this.host.name}: snapshot at shutdown: log frames ${from}..${to} compacted into a snapshot`);
      }
    } catch (err) {
      this.host.logger.error({ err }, `namespace ${this.host.name}: snapshot at shutdown failed: ${errorMessage(err)}`);
    }
  }

  /** Compacts the log when the policy says so; a failure is logged and retried a second later. */
  compactIfDue(): void {
    if (Date.now() < this.compactAfter) return;
    try {
      this.log.maybeCompact();
    } catch (err) {
      // The current log stays as it is (nothing logged twice); tried again a little later.
      this.compactAfter = Date.now() + COMPACT_RETRY_MS;
      this.host.logger.error({ err }, `namespace ${this.host.name}: log compaction failed: ${errorMessage(err)}`);
    }
  }

  private beginGuard(): void {
    if (this.closed || this.guardConn.inTransaction) return;
    this.guardConn.exec('BEGIN');
    this.guardConn.prepare('SELECT 1 FROM sqlite_master LIMIT 1').all();
  }

  private releaseWalWriteLock(): void {
    if (this.ckptConn.inTransaction) this.ckptConn.exec('ROLLBACK');
  }

  private endGuard(): void {
    if (this.guardConn.inTransaction) this.guardConn.exec('COMMIT');
  }

  /** Reads new committed WAL frames, appends them to the log, publishes them. */
  private capture(): void {
    if (this.captureFilled()) return;
    const saved = this.reader.mark();
    let transactions: WalTransaction[];
    let range: ReturnType<ReplicationLog['append']>;
    try {
      const read = this.reader.readCommitted(NO_PAGE_COPIES);
      if (read.restarted && this.restartedBehindUs(saved)) {
        // The WAL restarted although our last checkpoint did not cover frames we had read: someone
        // else checkpointed and restarted it. Continuing would hide what we may have missed.
        this.reader.restore(saved);
        this.startNewLog('the WAL was restarted behind the server');
        return;
      }
      transactions = read.transactions;
      if (transactions.length === 0) return;
      const gen = this.reader.salts!;
      if (this.state.salt1 !== gen.salt1 || this.state.salt2 !== gen.salt2) {
        const next: CaptureState = {
          ...this.state,
          salt1: gen.salt1,
          salt2: gen.salt2,
          genStartFrameNo: this.log.nextFrameNo,
          walGeneration: this.state.walGeneration + 1,
          checkpointedFrames: null,
        };
        this.stateFile.write(next);
        this.state = next;
      }
      // A WAL frame is a page frame already: one transaction (the usual case) goes as it is.
      range = this.log.append(transactions.length === 1 ? transactions[0]!.frames : toPageFrames(transactions), this.publisher.active);
      this.checkpointed = false;
    } catch (err) {
      this.reader.restore(saved);
      throw err;
    }
    if (range.encoded) this.publish(transactions, range.firstFrameNo, range.encoded);
  }

  /**
   * The fast path of `capture`: the frames go from `-wal` straight into the log's buffer in one
   * native call per commit, verified there exactly as readCommitted verifies them, without frame
   * objects. Only when nobody listens for the frames (a publisher's subscriber needs them as
   * objects) and the WAL generation is the one already captured (a new one updates the capture
   * state first). True when it captured frames and none can follow; false: the usual path runs
   * (which also notices a restarted or replaced WAL, and takes a transaction too big for the buffer).
   */
  private captureFilled(): boolean {
    const reader = this.reader;
    if (this.publisher.active || !reader.canFill) return false;
    const gen = reader.salts;
    if (gen === null || gen.salt1 !== this.state.salt1 || gen.salt2 !== this.state.salt2) return false;
    for (;;) {
      // The reader moves on only with the log (commitFill): a throw leaves both as they were.
      const n = this.log.appendFilled(reader);
      if (n > 0) this.checkpointed = false;
      if (!reader.fillMore) return n > 0;
      if (n === 0) return false;
    }
  }

  /** The WAL restarted: did our last checkpoint cover every frame we had read of the old generation? */
  private restartedBehindUs(before: WalReaderState): boolean {
    if (this.state.salt1 === null || before.generation === null) return false;
    const frameSize = WAL_FRAME_HEADER_SIZE + before.generation.pageSize;
    const consumed = (before.offset - WAL_HEADER_SIZE) / frameSize;
    return consumed > (this.state.checkpointedFrames ?? 0);
  }

  private publish(transactions: readonly WalTransaction[], firstFrameNo: bigint, encoded: Buffer): void {
    const gen = this.reader.state.generation!;
    let at = 0;
    let frameNo = firstFrameNo;
    for (const t of transactions) {
      const frames: Frame[] = [];
      for (let i = 0; i < t.frames.length; i++, at += FRAME_SIZE) frames.push(decodeFrame(encoded, at));
      const txn: CommittedTransaction = {
        logId: this.log.logId,
        firstFrameNo: frameNo,
        lastFrameNo: frameNo + BigInt(frames.length) - 1n,
        sizeAfter: t.sizeAfter,
        frames,
        wal: {
          generation: this.state.walGeneration,
          salt1: gen.salt1,
          salt2: gen.salt2,
          bigEndian: gen.bigEndian,
          checkpointSeq: gen.checkpointSeq,
          headerChecksum: gen.headerChecksum,
          checksumBefore: t.checksumBefore,
          firstFrameIndex: t.firstFrameIndex,
        },
      };
      frameNo = txn.lastFrameNo + 1n;
      this.publisher.publish(txn);
    }
  }
}

function recoveryInput(host: CaptureHost, policy: CompactionPolicy, reader: WalReader, stateFile: CaptureStateFile, onFlushError: (err: unknown) => void): RecoveryInput {
  return {
    log: { paths: host.paths, namespace: host.name, policy, logger: host.logger, faults: host.faults, onFlushError },
    files: host.files,
    main: host.maintenance,
    reader,
    stateFile,
  };
}
