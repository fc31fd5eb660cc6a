/** The uploader's inputs and tunables, with their defaults. */
import type { NamespacePaths } from '../../engine/data-dir.js';
import type { Logger } from '../../engine/logger.js';
import type { CheckpointParticipant } from '../../engine/pipeline/checkpointer.js';
import type { FrameSource } from '../../engine/pipeline/frame-source.js';
import type { TransactionSubscriber } from '../../engine/pipeline/transactions.js';
import type { BottomlessConfig } from '../../config/bottomless-config.js';
import type { BackupStorage } from '../storage/storage.js';
import { type Clock, systemClock, systemTimers, type Timers } from './clock.js';
import type { DatabaseFile } from './snapshot.js';

/** What the uploader uses of a primary namespace (PrimaryRole). */
export interface BackupRole {
  readonly logId: string;
  replicationIndex(): bigint | null;
  subscribe(subscriber: TransactionSubscriber): () => void;
  addCheckpointParticipant(p: CheckpointParticipant): () => void;
  frameSource(): FrameSource;
  checkpoint(): Promise<boolean>;
  readonly databaseFile: DatabaseFile;
}

export interface UploaderTunables {
  /** A periodic snapshot every this many generations (K). */
  snapshotEveryGenerations: number;
  /** … or once this many WAL bytes were shipped since the last snapshot (N). */
  snapshotEveryWalBytes: number;
  /** Staged (and queued in memory) bytes beyond which the oldest staged batches are dropped. */
  stagingCapBytes: number;
  /** Upload retry backoff, first and longest delay. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Least time between two durable-marker writes of the same queue drain. */
  markerDebounceMs: number;
  /** Bytes of the database file read per step of a snapshot. */
  snapshotChunkBytes: number;
  /** Least time between two checkpoints the uploader asks for (to begin a fresh generation). */
  freshCheckpointIntervalMs: number;
  /**
   * While a snapshot reads the database file, checkpoints wait (the file must not change under it)
   * until this many WAL bytes piled up in its generation; then the snapshot is given up instead.
   */
  snapshotHoldWalBytes: number;
  /** Upload lag logged once the oldest commit not in the store is this old (at least two batch intervals)… */
  lagWarnMs: number;
  /** … and again at most this often while it keeps growing. */
  lagRepeatMs: number;
}

export const UPLOADER_DEFAULTS: UploaderTunables = {
  snapshotEveryGenerations: 32,
  snapshotEveryWalBytes: 256 * 1024 * 1024,
  stagingCapBytes: 1024 * 1024 * 1024,
  retryBaseMs: 100,
  retryMaxMs: 30_000,
  markerDebounceMs: 1000,
  snapshotChunkBytes: 1024 * 1024,
  freshCheckpointIntervalMs: 10_000,
  snapshotHoldWalBytes: 512 * 1024 * 1024,
  lagWarnMs: 60_000,
  lagRepeatMs: 30_000,
};

export type UploaderConfig = Pick<BottomlessConfig, 'compression' | 'batchIntervalMs' | 'batchMaxFrames' | 'parallelMax' | 'skipSnapshot' | 'skipShutdownUpload'>;

export interface AttachOptions {
  role: BackupRole;
  paths: NamespacePaths;
  storage: BackupStorage;
  config: UploaderConfig;
  /** The bottomless database name (`ns-<db_id>:<namespace>` inside the server). */
  dbName: string;
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
  options?: Partial<UploaderTunables>;
}

export interface ResolvedOptions {
  role: BackupRole;
  paths: NamespacePaths;
  storage: BackupStorage;
  config: UploaderConfig;
  dbName: string;
  logger: Logger;
  clock: Clock;
  timers: Timers;
  tune: UploaderTunables;
}

export function resolveOptions(o: AttachOptions): ResolvedOptions {
  const tune = { ...UPLOADER_DEFAULTS, ...o.options };
  for (const [k, v] of Object.entries(tune)) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`uploader option ${k} must be positive, got ${v}`);
  }
  return { role: o.role, paths: o.paths, storage: o.storage, config: o.config, dbName: o.dbName, logger: o.logger, clock: o.clock ?? systemClock, timers: o.timers ?? systemTimers, tune };
}

export interface BackupStatus {
  /** The generation frames go to now (null while none is open). */
  generation: string | null;
  /** Last frame of the last committed transaction the uploader knows of. */
  lastCommittedFrameNo: bigint | null;
  /** Last frame a restore from the store reaches now (null: none). */
  lastDurableFrameNo: bigint | null;
  /** Frames committed but not yet durable in the store. */
  uploadLagFrames: number;
  /** Bytes in the staging folder. */
  stagedBytes: number;
  lastError: string | null;
  /** Errors so far (uploads, staging, snapshots, the state file). */
  errors: number;
  /** Why a fresh generation (snapshot, no `.dep`) is awaited; frames are not backed up meanwhile. */
  awaitingFresh: string | null;
  /** Timers armed now (an idle uploader has none). */
  timersArmed: number;
}
