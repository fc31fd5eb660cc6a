/**
 * What the frame pipeline hands around: committed transactions with their log range, their frames
 * and (on a primary) their coordinates in SQLite's WAL. See docs/ARCHITECTURE.md "Frame pipeline".
 */
import type { Frame } from '../wal/frame.js';

/**
 * Where a transaction sat in SQLite's `-wal` file — what a WAL-shipping backup (bottomless) needs to
 * rebuild the WAL byte for byte.
 */
export interface WalCoordinates {
  /** Counter of WAL generations (restarts) seen since the log began (persisted in `wallog-capture`). */
  generation: number;
  salt1: number;
  salt2: number;
  /** Checksum byte order of this WAL (magic 0x377f0683 = big-endian words). */
  bigEndian: boolean;
  checkpointSeq: number;
  /** The WAL header's own checksum (header bytes 24..31). */
  headerChecksum: readonly [number, number];
  /** The running WAL checksum just before the transaction's first frame. */
  checksumBefore: readonly [number, number];
  /** 1-based index of the transaction's first frame within its WAL generation. */
  firstFrameIndex: number;
}

/** A whole transaction of the replication log: frames up to and including one commit frame. */
export interface LoggedTransaction {
  firstFrameNo: bigint;
  lastFrameNo: bigint;
  /** Database size in pages after the transaction (its commit frame's `sizeAfter`). */
  sizeAfter: number;
  /**
   * The frames in ascending `frameNo`, with the log's checksums. They are copies owned by the
   * receiver: the engine never reuses or changes them.
   */
  frames: readonly Frame[];
}

/** A transaction as capture publishes it right after commit. */
export interface CommittedTransaction extends LoggedTransaction {
  logId: string;
  /** null for transactions that did not come from the WAL (the pages of a newly seeded log). */
  wal: WalCoordinates | null;
}

/**
 * How a subscriber's failure is handled. `refuse-writes`: the namespace refuses writes (reads go on)
 * until it recovers — only the replication log itself is such a subscriber. `isolated`: the failure
 * is logged and the subscriber is told (`onError`), SQL never notices (backups).
 */
export type FailurePolicy = 'refuse-writes' | 'isolated';

export interface TransactionSubscriber {
  readonly name: string;
  readonly policy: FailurePolicy;
  /** Called synchronously right after the transaction is in the log (write lock still held). */
  onTransaction(txn: CommittedTransaction): void;
  /** A new log began (new `log_id`): everything received before belongs to the old one. */
  onNewLog?(logId: string, reason: string): void;
  /** The namespace closed: no more transactions will come. */
  onClose?(): void;
  /** An isolated subscriber threw; it may want to resynchronise from the frame source. */
  onError?(err: unknown, txn: CommittedTransaction): void;
}

/** "WAL generation N ends at frame F": published after every checkpoint. */
export interface CheckpointedEvent {
  logId: string;
  walGeneration: number;
  /** 1-based index of the last WAL frame of that generation (0 when it held none). */
  lastFrameIndex: number;
  /** The replication index at the checkpoint (frame_no of its last frame), null for an empty log. */
  lastFrameNo: bigint | null;
}
