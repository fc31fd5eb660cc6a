import { LibsqlctlError } from '../../errors.js';
import type { ReplicationLog } from '../log/replication-log.js';
import { readSnapshot } from '../wal/snapshot-file.js';
import type { Frame } from '../wal/frame.js';
import type { FrameSource, SnapshotRef } from './frame-source.js';
import { Notifier } from './notifier.js';
import type { FramePublisher } from './publisher.js';
import type { CommittedTransaction, LoggedTransaction } from './transactions.js';

/** The log this source reads was replaced by a new one (new `log_id`): start over from the new source. */
export class LogChangedError extends LibsqlctlError {
  constructor(oldId: string, reason: string) {
    super('LOG_CHANGED', `replication log ${oldId} was replaced by a new log: ${reason}`);
  }
}

/** Frames read from the log per step of a backfill. */
const BACKFILL_FRAMES = 1024;
/** Live transactions buffered per iterator; a slower consumer falls back to reading the log. */
const LIVE_BUFFER = 256;

/** What the source reads: the current log of the namespace, its publisher, and whether it closed. */
export interface LogAccess {
  currentLog(): ReplicationLog;
  readonly publisher: FramePublisher;
  isClosed(): boolean;
}

/**
 * FrameSource over a primary's replication log. An iterator subscribes to live commits first, then
 * backfills from the log, then drains the live buffer skipping what it already yielded (cut-over
 * by frame number): no gap, no duplicate. A consumer that falls behind by more than LIVE_BUFFER
 * transactions drops back to reading the log — it never blocks capture.
 */
export class LogFrameSource implements FrameSource {
  readonly logId: string;

  constructor(private readonly access: LogAccess) {
    this.logId = access.currentLog().logId;
  }

  replicationIndex(): bigint | null {
    return this.log().replicationIndex;
  }

  startFrameNo(): bigint {
    return this.log().startFrameNo;
  }

  snapshotFor(frameNo: bigint): SnapshotRef | null {
    const snap = this.log().snapshotFor(frameNo);
    return snap && { startFrameNo: snap.startFrameNo, endFrameNo: snap.endFrameNo, sizeAfter: snap.sizeAfter, frameCount: snap.frameCount };
  }

  *snapshotFrames(ref: SnapshotRef): Iterable<Frame> {
    const snap = this.log().snapshots().find((s) => s.startFrameNo === ref.startFrameNo && s.endFrameNo === ref.endFrameNo);
    if (!snap) throw new LibsqlctlError('SNAPSHOT_GONE', `snapshot ${ref.startFrameNo}-${ref.endFrameNo} no longer exists`);
    yield* readSnapshot(snap.path).frames;
  }

  async *transactions(from: bigint, signal?: AbortSignal): AsyncGenerator<LoggedTransaction> {
    const wake = new Notifier();
    let live: CommittedTransaction[] = [];
    let overflow = false;
    let changed: string | null = null;
    const unsubscribe = this.access.publisher.subscribe({
      name: 'frame-source',
      policy: 'isolated',
      onTransaction: (txn) => {
        if (overflow) return;
        live.push(txn);
        if (live.length > LIVE_BUFFER) {
          overflow = true;
          live = [];
        }
        wake.notify();
      },
      onNewLog: (_id, reason) => {
        changed = reason;
        wake.notify();
      },
      onClose: () => wake.notify(),
    });
    const onClose = (): void => wake.notify();
    signal?.addEventListener('abort', onClose, { once: true });
    try {
      let next = from;
      const ahead: ReadAhead = { frames: [], pos: 0 };
      for (;;) {
        if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
        if (this.access.isClosed()) return;
        const log = this.log();
        if (changed !== null || log.logId !== this.logId) throw new LogChangedError(this.logId, changed ?? 'new log');
        // Live transactions that continue exactly where we are.
        while (live.length > 0 && live[0]!.lastFrameNo < next) live.shift();
        const head = live[0];
        if (head && head.firstFrameNo <= next) {
          live.shift();
          yield head.firstFrameNo === next ? head : sliceFrom(head, next);
          next = head.lastFrameNo + 1n;
          continue;
        }
        if (next < log.nextFrameNo) {
          overflow = false;
          const txn = this.readTransaction(log, next, ahead);
          if (txn) {
            yield txn;
            next = txn.lastFrameNo + 1n;
            continue;
          }
        }
        await wake.wait(signal);
      }
    } finally {
      unsubscribe();
      signal?.removeEventListener('abort', onClose);
    }
  }

  private log(): ReplicationLog {
    return this.access.currentLog();
  }

  /**
   * One whole transaction (or the rest of one) from the log starting at `from`. Frames read ahead
   * stay in `ahead` for the next call, so a backfill reads each log frame once.
   */
  private readTransaction(log: ReplicationLog, from: bigint, ahead: ReadAhead): LoggedTransaction | null {
    const frames: Frame[] = [];
    let at = from;
    for (;;) {
      if (ahead.pos >= ahead.frames.length || ahead.frames[ahead.pos]!.frameNo !== at) {
        const batch = log.readFrames(at, BACKFILL_FRAMES);
        if (batch.length === 0) return null;
        ahead.frames = batch;
        ahead.pos = 0;
      }
      while (ahead.pos < ahead.frames.length) {
        const f = ahead.frames[ahead.pos++]!;
        frames.push(f);
        at = f.frameNo + 1n;
        if (f.sizeAfter !== 0) return { firstFrameNo: from, lastFrameNo: f.frameNo, sizeAfter: f.sizeAfter, frames };
      }
    }
  }
}

/** Frames an iterator read from the log but has not yielded yet. */
interface ReadAhead {
  frames: Frame[];
  pos: number;
}

function sliceFrom(txn: LoggedTransaction, from: bigint): LoggedTransaction {
  const skip = Number(from - txn.firstFrameNo);
  return { firstFrameNo: from, lastFrameNo: txn.lastFrameNo, sizeAfter: txn.sizeAfter, frames: txn.frames.slice(skip) };
}
