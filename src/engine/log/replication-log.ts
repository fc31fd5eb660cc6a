import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { LibsqlctlError } from '../../errors.js';
import type { NamespacePaths } from '../data-dir.js';
import type { FaultInjector } from '../faults.js';
import { errorMessage, type Logger } from '../logger.js';
import type { Frame, PageFrame } from '../wal/frame.js';
import { WallogFile, type FrameFiller } from '../wal/wallog-file.js';
import { buildSnapshot, parseSnapshotFileName, readSnapshot, readSnapshotHeader, snapshotFileName } from '../wal/snapshot-file.js';
import { runSnapshotExec } from './snapshot-exec.js';

/** The requested frames were compacted away: the reader needs a snapshot first (gRPC NEED_SNAPSHOT). */
export class NeedSnapshotError extends LibsqlctlError {
  constructor(frameNo: bigint, start: bigint) {
    super('NEED_SNAPSHOT', `frame ${frameNo} is before the log start ${start}; a snapshot is needed`);
  }
}

export interface CompactionPolicy {
  /** Frames the log may hold before it is compacted (`--max-log-size` MB × 1e6 / 4120). */
  maxFrames: bigint;
  /** Compact when the log is older than this (`--max-log-duration`), null = never by age. */
  maxDurationMs: number | null;
  /** `--snapshot-exec` command, run for each new snapshot. */
  snapshotExec: string | null;
  /** `<db-path>/script_backup/`: where snapshot-exec hard links live. */
  scriptBackupDir: string;
}

export interface SnapshotInfo {
  path: string;
  startFrameNo: bigint;
  endFrameNo: bigint;
}

export interface LogContext {
  paths: NamespacePaths;
  namespace: string;
  policy: CompactionPolicy;
  logger: Logger;
  faults: FaultInjector;
  /** The deferred header write failed: the log is behind what was acknowledged (capture must know). */
  onFlushError: (err: unknown) => void;
}

/** How capture appends: no fsync, header deferred (see append); with or without the encoded copy. */
const APPEND = { fsync: false, deferHeader: true, collect: false } as const;
const APPEND_COLLECT = { fsync: false, deferHeader: true, collect: true } as const;

/** Snapshot frames checked between two turns of the event loop at open. */
const SNAPSHOT_CHECK_YIELD_FRAMES = 4096;

interface Waiter {
  frameNo: bigint;
  resolve: () => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * A namespace's replication log: sqld's `wallog` plus its compacted snapshots. Frame numbers are
 * global and never restart for a given `log_id`. Readers can wait for new frames. Only frame capture
 * writes it; consumers read it through a FrameSource.
 */
export class ReplicationLog {
  private waiters: Waiter[] = [];
  private startedAt = Date.now();
  private compacting: Promise<void> = Promise.resolve();
  private headerFlush: NodeJS.Immediate | null = null;
  private closed = false;

  private constructor(
    private readonly ctx: LogContext,
    private file: WallogFile,
  ) {}

  /**
   * Opens `wallog` (finishing an interrupted compaction swap), verifying it without stalling the
   * event loop; throws WallogCorruptError.
   */
  static async open(ctx: LogContext): Promise<ReplicationLog | null> {
    const { wallog, wallogNew } = ctx.paths;
    if (!fs.existsSync(wallog) && fs.existsSync(wallogNew)) fs.renameSync(wallogNew, wallog);
    if (!fs.existsSync(wallog)) return null;
    const log = new ReplicationLog(ctx, await WallogFile.openAsync(wallog));
    log.finishPendingCompactions();
    return log;
  }

  /** Starts a new, empty log with a fresh `log_id`; old snapshots and pending compactions are removed. */
  static create(ctx: LogContext, logId: string): ReplicationLog {
    const p = ctx.paths;
    for (const dir of [p.snapshots, p.toCompact]) fs.rmSync(dir, { recursive: true, force: true });
    for (const file of [p.wallog, p.wallogNew]) fs.rmSync(file, { force: true });
    const file = WallogFile.create(p.wallog, { logId, startFrameNo: 0n, startChecksum: 0n });
    return new ReplicationLog(ctx, file);
  }

  get logId(): string {
    return this.file.logId;
  }

  get startFrameNo(): bigint {
    return this.file.startFrameNo;
  }

  get nextFrameNo(): bigint {
    return this.file.nextFrameNo;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * frame_no of the last frame of the last committed transaction; null only when nothing was ever
   * logged (a log emptied by compaction still continues from `startFrameNo - 1`).
   */
  get replicationIndex(): bigint | null {
    const last = this.file.lastCommittedFrameNo;
    if (last !== null) return last;
    return this.file.startFrameNo > 0n ? this.file.startFrameNo - 1n : null;
  }

  /**
   * Appends whole transactions and wakes waiters. Frames go to the page cache at once; the header's
   * frame_count is written once per event-loop turn (a crash before that leaves a torn tail, which
   * recovery cuts and re-captures from the WAL — docs/REPLICATION_LOG.md). Never compacts: that runs
   * after the commit (`maybeCompact`), so a failing compaction cannot make capture log twice.
   * `collect`: also return a copy of the encoded frames (for the log's live readers).
   */
  append(frames: readonly PageFrame[], collect = false): { firstFrameNo: bigint; lastFrameNo: bigint; encoded: Buffer | null } {
    this.ctx.faults.at('log-append');
    const range = this.file.appendTransaction(frames, collect ? APPEND_COLLECT : APPEND);
    this.appended();
    return range;
  }

  /**
   * `append` of whole transactions a FrameFiller writes straight into the log's buffer (the
   * capture's native path: no frame objects). Returns the frames appended; 0 when the filler had
   * none it could take (`filler.fillMore` tells whether it ran out of room).
   */
  appendFilled(filler: FrameFiller): number {
    const n = this.file.appendFilled(filler, this.appendFault);
    if (n > 0) this.appended();
    return n;
  }

  /** The fault point of an append, before its frames count. */
  private readonly appendFault = (): void => this.ctx.faults.at('log-append');

  /** After an append: the header write is scheduled for this event-loop turn, waiters wake. */
  private appended(): void {
    this.headerFlush ??= setImmediate(() => {
      this.headerFlush = null;
      if (this.closed) return;
      try {
        this.flush();
      } catch (err) {
        this.ctx.onFlushError(err);
      }
    });
    this.wake();
  }

  /** Writes everything appended so far (frames, then the header) to the file; no fsync. */
  flush(): void {
    this.ctx.faults.at('log-flush');
    this.file.flushHeader();
  }

  /**
   * Appends the first pieces of a transaction too large to hold in memory at once (a seeded log):
   * nothing is visible until `append` adds the piece ending in the commit frame, in the same
   * synchronous run (no event-loop turn in between, so no header write or compaction interleaves).
   */
  appendPart(frames: readonly PageFrame[]): void {
    this.file.appendTransaction(frames, { fsync: false, deferHeader: true, partial: true });
  }

  /** flush() and fsync: durable across power loss. */
  sync(): void {
    this.ctx.faults.at('log-flush');
    this.file.sync();
  }

  /** Frames from `frameNo` on (at most `max`); NeedSnapshotError when they were compacted away. */
  readFrames(frameNo: bigint, max: number): Frame[] {
    if (frameNo < this.file.startFrameNo) throw new NeedSnapshotError(frameNo, this.file.startFrameNo);
    return this.file.readFrames(frameNo, max);
  }

  /** Resolves once frame `frameNo` exists (at once if it already does) or the log closes. */
  waitFor(frameNo: bigint, signal?: AbortSignal): Promise<void> {
    if (frameNo < this.file.nextFrameNo || this.closed) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { frameNo, resolve, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  /** Number of pending waiters (tests: no growth). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** Snapshot files in ascending frame order. */
  snapshots(): SnapshotInfo[] {
    const dir = this.ctx.paths.snapshots;
    if (!fs.existsSync(dir)) return [];
    const out: SnapshotInfo[] = [];
    for (const name of fs.readdirSync(dir)) {
      const parsed = parseSnapshotFileName(name);
      if (parsed && parsed.logId === this.logId) out.push({ path: this.ctx.paths.snapshot(name), startFrameNo: parsed.startFrameNo, endFrameNo: parsed.endFrameNo });
    }
    return out.sort((a, b) => (a.startFrameNo < b.startFrameNo ? -1 : 1));
  }

  /** The snapshot holding `frameNo` with its header, or null. */
  snapshotFor(frameNo: bigint): (SnapshotInfo & { sizeAfter: number; frameCount: bigint }) | null {
    const snap = this.snapshots().find((s) => s.startFrameNo <= frameNo && frameNo <= s.endFrameNo);
    if (!snap) return null;
    const header = readSnapshotHeader(snap.path);
    return { ...snap, sizeAfter: header.sizeAfter, frameCount: header.frameCount };
  }

  /**
   * Checks every snapshot (header, range, size, frames in order): resolves to what is wrong, or
   * null. The history before the log is only servable when the snapshots cover it without a gap.
   * Large snapshots are read with a turn of the event loop every few thousand frames.
   */
  async checkSnapshots(): Promise<string | null> {
    // Taken first: a pending compaction (which explains a gap) may finish while we read.
    const pending = this.ctx.paths.toCompact;
    const compacting = fs.existsSync(pending) && fs.readdirSync(pending).length > 0;
    let expected = 0n;
    for (const snap of this.snapshots()) {
      try {
        const { header, frames } = readSnapshot(snap.path);
        if (header.logId !== this.logId || header.startFrameNo !== snap.startFrameNo || header.endFrameNo !== snap.endFrameNo) {
          return `snapshot ${snap.path} does not match its name`;
        }
        let n = 0;
        for (const frame of frames) {
          void frame;
          if (++n % SNAPSHOT_CHECK_YIELD_FRAMES === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        return errorMessage(err);
      }
      if (snap.startFrameNo > expected) return `snapshots miss frames ${expected}..${snap.startFrameNo - 1n}`;
      expected = snap.endFrameNo + 1n;
    }
    if (!compacting && expected < this.startFrameNo) return `snapshots miss frames ${expected}..${this.startFrameNo - 1n}`;
    return null;
  }

  /** Waits for background snapshot building (tests, shutdown). */
  async drain(): Promise<void> {
    await this.compacting;
  }

  /** Checks the compaction policy (after commits and periodically); compacts when due. */
  maybeCompact(now = Date.now()): void {
    if (this.closed) return;
    const count = this.file.frameCount;
    if (count === 0n) return;
    const tooBig = count > this.ctx.policy.maxFrames;
    const tooOld = this.ctx.policy.maxDurationMs !== null && now - this.startedAt > this.ctx.policy.maxDurationMs;
    if (tooBig || tooOld) this.compact();
  }

  /**
   * Swaps in a new empty log continuing the numbering; the old one becomes a snapshot in the
   * background. A failure before the swap leaves the current log as it was (it keeps growing).
   */
  compact(): void {
    const last = this.file.lastCommittedFrameNo;
    if (last === null) return;
    const p = this.ctx.paths;
    this.ctx.faults.at('compaction');
    this.flush();
    fs.mkdirSync(p.toCompact, { recursive: true });
    fs.rmSync(p.wallogNew, { force: true });
    const next = WallogFile.create(p.wallogNew, { logId: this.file.logId, startFrameNo: last + 1n, startChecksum: this.file.lastChecksum });
    const oldPath = p.pendingCompaction(randomUUID());
    try {
      this.file.sync();
      fs.renameSync(p.wallog, oldPath);
    } catch (err) {
      next.close();
      fs.rmSync(p.wallogNew, { force: true });
      throw err;
    }
    // From here the swap completes at the next open even if this process dies (wallog.new → wallog).
    this.file.close();
    fs.renameSync(p.wallogNew, p.wallog);
    this.file = next;
    this.startedAt = Date.now();
    this.scheduleSnapshot(oldPath);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.headerFlush) clearImmediate(this.headerFlush);
    this.headerFlush = null;
    for (const w of this.waiters.splice(0)) this.settle(w);
    try {
      this.file.sync();
    } finally {
      this.file.close();
    }
  }

  private settle(w: Waiter): void {
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const next = this.file.nextFrameNo;
    const ready = this.waiters.filter((w) => w.frameNo < next);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.frameNo >= next);
    for (const w of ready) this.settle(w);
  }

  private finishPendingCompactions(): void {
    const pending = this.ctx.paths.toCompact;
    if (!fs.existsSync(pending)) return;
    for (const name of fs.readdirSync(pending)) this.scheduleSnapshot(this.ctx.paths.pendingCompaction(name));
  }

  private scheduleSnapshot(oldLogPath: string): void {
    this.compacting = this.compacting
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.turnIntoSnapshot(oldLogPath))
      .catch((err: unknown) => this.ctx.logger.error({ err }, `namespace ${this.ctx.namespace}: compaction of ${oldLogPath} failed (retried at the next start): ${errorMessage(err)}`));
  }

  private async turnIntoSnapshot(oldLogPath: string): Promise<void> {
    this.ctx.faults.at('compaction');
    const old = WallogFile.open(oldLogPath, { readOnly: true });
    let snapPath: string;
    let start: bigint;
    let end: bigint | null;
    try {
      start = old.startFrameNo;
      end = old.lastCommittedFrameNo;
      if (end === null) {
        fs.rmSync(oldLogPath, { force: true });
        return;
      }
      fs.mkdirSync(this.ctx.paths.snapshots, { recursive: true });
      snapPath = this.ctx.paths.snapshot(snapshotFileName(old.logId, start, end));
      buildSnapshot({ wallog: old }, snapPath);
    } finally {
      old.close();
    }
    fs.rmSync(oldLogPath, { force: true });
    const { snapshotExec, scriptBackupDir } = this.ctx.policy;
    if (snapshotExec) {
      await runSnapshotExec(snapshotExec, { snapshotPath: snapPath, scriptBackupDir, namespace: this.ctx.namespace, logId: this.logId, start, end, logger: this.ctx.logger });
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
