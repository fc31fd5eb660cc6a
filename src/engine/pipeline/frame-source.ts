import type { Frame } from '../wal/frame.js';
import type { LoggedTransaction } from './transactions.js';

/** A compacted range of the log: the newest image of each page changed in [start, end]. */
export interface SnapshotRef {
  startFrameNo: bigint;
  endFrameNo: bigint;
  /** Database size in pages after `endFrameNo`. */
  sizeAfter: number;
  frameCount: bigint;
}

/**
 * The read-only view of a namespace's replication log that every consumer uses (gRPC log server,
 * backups, the replica applier in tests) — never the mutable log itself.
 */
export interface FrameSource {
  readonly logId: string;
  /** frame_no of the last frame of the last committed transaction, null for an empty log. */
  replicationIndex(): bigint | null;
  /** The first frame the log (not its snapshots) still holds. */
  startFrameNo(): bigint;
  /**
   * Whole transactions from frame `from` on: backfilled from the log, then following live commits,
   * without gap or duplicate. Throws NeedSnapshotError (code NEED_SNAPSHOT) when `from` was compacted
   * away, and LogChangedError (code LOG_CHANGED) when a new log replaces this one. Ends when `signal`
   * aborts (the pending `next()` rejects with the abort reason) or the namespace closes.
   */
  transactions(from: bigint, signal?: AbortSignal): AsyncIterable<LoggedTransaction>;
  /**
   * The snapshot whose range holds `frameNo`, or null (none yet: retry later). A remote source
   * (a replica's primary) fetches it first, hence the promise.
   */
  snapshotFor(frameNo: bigint): SnapshotRef | null | Promise<SnapshotRef | null>;
  /** A snapshot's frames, in the file's descending `frameNo` order (each `sizeAfter` 0). */
  snapshotFrames(ref: SnapshotRef): Iterable<Frame>;
  /** Lets go of what `snapshotFor` fetched (a downloaded copy), once it is applied or abandoned. */
  releaseSnapshot?(ref: SnapshotRef): void;
}
