import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { LibsqlctlError } from '../../errors.js';
import type { Frame, PageFrame } from '../wal/frame.js';
import { WallogFile } from '../wal/wallog-file.js';
import { buildSnapshot, parseSnapshotFileName, readSnapshot, snapshotFileName } from '../wal/snapshot-file.js';
import { runSnapshotExec } from './snapshot-exec.js';
import { warn } from '../warn.js';

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
  /** `<db-path>`: snapshot-exec hard links live in `<db-path>/script_backup/`. */
  dbPath: string;
}

export interface SnapshotInfo {
  path: string;
  startFrameNo: bigint;
  endFrameNo: bigint;
}

interface Waiter {
  frameNo: bigint;
  resolve: () => void;
}

export const WALLOG = 'wallog';
const WALLOG_NEW = 'wallog.new';

/**
 * A namespace's replication log: sqld's `wallog` plus its compacted snapshots. Frame numbers are
 * global and never restart for a given `log_id`. Readers can wait for new frames.
 */
export class ReplicationLog {
  private waiters: Waiter[] = [];
  private startedAt = Date.now();
  private compacting: Promise<void> = Promise.resolve();
  private headerFlush: NodeJS.Immediate | null = null;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly namespace: string,
    private file: WallogFile,
    private readonly policy: CompactionPolicy,
  ) {}

  /** Opens `<dir>/wallog` (finishing an interrupted compaction swap); throws WallogCorruptError. */
  static open(dir: string, namespace: string, policy: CompactionPolicy): ReplicationLog | null {
    const logPath = path.join(dir, WALLOG);
    const newPath = path.join(dir, WALLOG_NEW);
    if (!fs.existsSync(logPath) && fs.existsSync(newPath)) fs.renameSync(newPath, logPath);
    if (!fs.existsSync(logPath)) return null;
    const log = new ReplicationLog(dir, namespace, WallogFile.open(logPath), policy);
    log.finishPendingCompactions();
    return log;
  }

  /** Starts a new, empty log with a fresh `log_id`; old snapshots and pending compactions are removed. */
  static create(dir: string, namespace: string, policy: CompactionPolicy, logId: string): ReplicationLog {
    for (const sub of ['snapshots', 'to_compact']) fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
    for (const name of [WALLOG, WALLOG_NEW]) fs.rmSync(path.join(dir, name), { force: true });
    const file = WallogFile.create(path.join(dir, WALLOG), { logId, startFrameNo: 0n, startChecksum: 0n });
    return new ReplicationLog(dir, namespace, file, policy);
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
   * Appends whole transactions, wakes waiters, maybe compacts. Frames go to the page cache at once;
   * the header's frame_count is written once per event-loop turn (a crash before that leaves a torn
   * tail, which recovery cuts and re-captures from the WAL — see docs/REPLICATION_LOG.md).
   */
  append(frames: readonly PageFrame[]): { firstFrameNo: bigint; lastFrameNo: bigint } {
    const range = this.file.appendTransaction(frames, { fsync: false, deferHeader: true });
    if (!this.headerFlush) {
      this.headerFlush = setImmediate(() => {
        this.headerFlush = null;
        if (!this.closed) this.file.flushHeader();
      });
    }
    this.wake();
    this.maybeCompact();
    return range;
  }

  /** Writes everything appended so far (frames, then the header) to the file; no fsync. */
  flush(): void {
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
    this.file.sync();
  }

  /** Frames from `frameNo` on (at most `max`); NeedSnapshotError when they were compacted away. */
  readFrames(frameNo: bigint, max: number): Frame[] {
    if (frameNo < this.file.startFrameNo) throw new NeedSnapshotError(frameNo, this.file.startFrameNo);
    return this.file.readFrames(frameNo, max);
  }

  /** Resolves once frame `frameNo` exists (at once if it already does). */
  waitFor(frameNo: bigint, signal?: AbortSignal): Promise<void> {
    if (frameNo < this.file.nextFrameNo) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { frameNo, resolve };
      this.waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(abortReason(signal));
        },
        { once: true },
      );
    });
  }

  /** Snapshot files in ascending frame order. */
  snapshots(): SnapshotInfo[] {
    const dir = path.join(this.dir, 'snapshots');
    if (!fs.existsSync(dir)) return [];
    const out: SnapshotInfo[] = [];
    for (const name of fs.readdirSync(dir)) {
      const parsed = parseSnapshotFileName(name);
      if (parsed && parsed.logId === this.logId) out.push({ path: path.join(dir, name), startFrameNo: parsed.startFrameNo, endFrameNo: parsed.endFrameNo });
    }
    return out.sort((a, b) => (a.startFrameNo < b.startFrameNo ? -1 : 1));
  }

  /**
   * Checks every snapshot (header, range, size, frames in order): returns what is wrong, or null.
   * The history before the log is only servable when the snapshots cover it without a gap.
   */
  checkSnapshots(): string | null {
    let expected = 0n;
    for (const snap of this.snapshots()) {
      try {
        const { header, frames } = readSnapshot(snap.path);
        if (header.logId !== this.logId || header.startFrameNo !== snap.startFrameNo || header.endFrameNo !== snap.endFrameNo) {
          return `snapshot ${path.basename(snap.path)} does not match its name`;
        }
        for (const frame of frames) void frame;
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      }
      if (snap.startFrameNo > expected) return `snapshots miss frames ${expected}..${snap.startFrameNo - 1n}`;
      expected = snap.endFrameNo + 1n;
    }
    const pending = path.join(this.dir, 'to_compact');
    const compacting = fs.existsSync(pending) && fs.readdirSync(pending).length > 0;
    if (!compacting && expected < this.startFrameNo) return `snapshots miss frames ${expected}..${this.startFrameNo - 1n}`;
    return null;
  }

  /** Waits for background snapshot building (tests, shutdown). */
  async drain(): Promise<void> {
    await this.compacting;
  }

  /** Checks the compaction policy now (also called periodically for `--max-log-duration`). */
  maybeCompact(now = Date.now()): void {
    const count = this.file.frameCount;
    if (count === 0n) return;
    const tooBig = count > this.policy.maxFrames;
    const tooOld = this.policy.maxDurationMs !== null && now - this.startedAt > this.policy.maxDurationMs;
    if (tooBig || tooOld) this.compact();
  }

  /** Swaps in a new empty log continuing the numbering; the old one becomes a snapshot in the background. */
  compact(): void {
    const last = this.file.lastCommittedFrameNo;
    if (last === null) return;
    const pending = path.join(this.dir, 'to_compact');
    fs.mkdirSync(pending, { recursive: true });
    const newPath = path.join(this.dir, WALLOG_NEW);
    fs.rmSync(newPath, { force: true });
    const next = WallogFile.create(newPath, { logId: this.file.logId, startFrameNo: last + 1n, startChecksum: this.file.lastChecksum });
    this.file.sync();
    this.file.close();
    const oldPath = path.join(pending, randomUUID());
    fs.renameSync(path.join(this.dir, WALLOG), oldPath);
    fs.renameSync(newPath, path.join(this.dir, WALLOG));
    this.file = next;
    this.startedAt = Date.now();
    this.scheduleSnapshot(oldPath);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.headerFlush) clearImmediate(this.headerFlush);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    this.file.sync();
    this.file.close();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const next = this.file.nextFrameNo;
    const ready = this.waiters.filter((w) => w.frameNo < next);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.frameNo >= next);
    for (const w of ready) w.resolve();
  }

  private finishPendingCompactions(): void {
    const pending = path.join(this.dir, 'to_compact');
    if (!fs.existsSync(pending)) return;
    for (const name of fs.readdirSync(pending)) this.scheduleSnapshot(path.join(pending, name));
  }

  private scheduleSnapshot(oldLogPath: string): void {
    this.compacting = this.compacting
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.turnIntoSnapshot(oldLogPath))
      .catch((err: unknown) => warn(`compaction of ${oldLogPath} failed: ${err instanceof Error ? err.message : String(err)}`));
  }

  private async turnIntoSnapshot(oldLogPath: string): Promise<void> {
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
      const dir = path.join(this.dir, 'snapshots');
      fs.mkdirSync(dir, { recursive: true });
      snapPath = path.join(dir, snapshotFileName(old.logId, start, end));
      buildSnapshot({ wallog: old }, snapPath);
    } finally {
      old.close();
    }
    fs.rmSync(oldLogPath, { force: true });
    if (this.policy.snapshotExec) {
      await runSnapshotExec(this.policy.snapshotExec, { snapshotPath: snapPath, dbPath: this.policy.dbPath, namespace: this.namespace, logId: this.logId, start, end });
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
