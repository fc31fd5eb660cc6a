/**
 * One bottomless generation as the uploader tracks it: a run of consecutive replication-log frames
 * (index i of the generation is log frame `base + i`), the WAL coordinates its frames are encoded
 * with, what is staged, what is known to be in the store, and its snapshot. The persisted form is
 * part of state.json (state-file.ts).
 */
import type { SnapshotDigest } from '../format/digest.js';
import type { UploadJob } from './upload-queue.js';

/** How the generation's frames are written: a WAL's salts, byte order and the chain's seed. */
export interface GenCoords {
  /** The engine's WAL generation counter these frames come from (WalCoordinates.generation). */
  walGeneration: number;
  salt1: number;
  salt2: number;
  bigEndian: boolean;
  /** `.meta`'s checksum: the running checksum before the generation's frame 1. */
  seed: [number, number];
  pageSize: number;
  /**
   * False when frame 1 of the generation is frame 1 of the WAL and the seed is its header
   * checksum: batches are then byte for byte the `-wal` file's frames. True when the coordinates
   * were made up (frames re-staged after a restart from a WAL the uploader never saw).
   */
  synthetic: boolean;
}

export type SnapshotState = 'none' | 'reading' | 'staged' | 'uploaded' | 'lost';

export interface SnapshotInfo {
  /** Object name in the generation (`db.<ext>`). */
  name: string;
  /** Of the uncompressed bytes (crc64 now; sha256 in state files written before). */
  digest: SnapshotDigest;
  pageCount: number;
  changeCounter: number;
  /** Bytes of the staged (compressed) file. */
  bytes: number;
}

/** A staged batch whose upload is not yet known to have succeeded (or was dropped). */
export interface BatchRef {
  first: number;
  last: number;
  name: string;
  bytes: number;
  uploaded: boolean;
  /** Dropped from staging (size cap) before it reached the store: a permanent gap. */
  dropped: boolean;
  /** Its upload, once queued. */
  job?: UploadJob;
}

export interface PersistedGeneration {
  id: string;
  logId: string;
  parent: string | null;
  base: string;
  coords: GenCoords | null;
  stagedIndex: number;
  checksum: [number, number];
  metaUploaded: boolean;
  depUploaded: boolean;
  snapshot: SnapshotState;
  snapshotRequired: boolean;
  snapshotInfo: SnapshotInfo | null;
  counterUploaded: boolean;
  baseDurable: boolean;
  sealed: boolean;
  damaged: boolean;
}

export class Generation {
  /** Next index to give a frame (frames are numbered from 1). */
  nextIndex = 1;
  /** Last staged index (0: none) and the running checksum after it. */
  stagedIndex = 0;
  stagedChecksum: [number, number] = [0, 0];
  /** Last encoded index and the running checksum after it (encoding runs ahead of staging). */
  encodedIndex = 0;
  encodeChecksum: [number, number] = [0, 0];
  /** Staged batches, ascending; uploaded ones are dropped from the front. */
  readonly batches: BatchRef[] = [];
  metaUploaded = false;
  depUploaded = false;
  /** .meta/.dep were queued for upload (once something of the generation is staged). */
  metaQueued = false;
  depQueued = false;
  snapshot: SnapshotState = 'none';
  /** Without it the generation cannot be restored (no `.dep`). */
  snapshotRequired = false;
  snapshotInfo: SnapshotInfo | null = null;
  counterUploaded = false;
  /** Sticky: the generation's starting point is in the store (its snapshot, or a complete parent chain). */
  baseDurable = false;
  /** No frame will be added (a newer generation began). */
  sealed = false;
  /** Frames of it were lost before reaching the store (a gap restore must not bridge). */
  damaged = false;
  /** What the last `.libsqlctl-durable` said, null before the first. */
  marker: { index: number; sealed: boolean } | null = null;
  /** WAL bytes the generation holds (snapshot policy). */
  walBytes = 0;

  constructor(
    readonly id: string,
    /** The replication log its frame numbers belong to. */
    readonly logId: string,
    readonly parent: string | null,
    /** Log frame number just before index 1 (-1 for a generation that starts an empty log). */
    readonly base: bigint,
    public coords: GenCoords | null,
  ) {
    if (coords) this.adopt(coords);
  }

  /** Sets the coordinates of a generation that had none (it began before its first WAL frame). */
  adopt(coords: GenCoords): void {
    this.coords = coords;
    this.stagedChecksum = [coords.seed[0], coords.seed[1]];
    this.encodeChecksum = [coords.seed[0], coords.seed[1]];
  }

  /** Log frame number of index `i`. */
  frameNo(i: number): bigint {
    return this.base + BigInt(i);
  }

  /** Highest index such that every frame 1..index is in the store (as far as this process knows). */
  get durableIndex(): number {
    const pending = this.batches.find((b) => !b.uploaded);
    return pending === undefined ? this.stagedIndex : Math.min(this.stagedIndex, pending.first - 1);
  }

  /** Last index handed out. */
  get lastIndex(): number {
    return this.nextIndex - 1;
  }

  /** `.meta` and `.dep` are in the store (or not needed). */
  get headerDurable(): boolean {
    return (this.coords === null || this.metaUploaded) && (this.parent === null || this.depUploaded);
  }

  /** Drops uploaded batches from the front of the list. */
  prune(): void {
    while (this.batches.length > 0 && this.batches[0]!.uploaded) this.batches.shift();
  }

  toJSON(): PersistedGeneration {
    return {
      id: this.id,
      logId: this.logId,
      parent: this.parent,
      base: this.base.toString(),
      coords: this.coords,
      stagedIndex: this.stagedIndex,
      checksum: this.stagedChecksum,
      metaUploaded: this.metaUploaded,
      depUploaded: this.depUploaded,
      snapshot: this.snapshot === 'reading' ? 'none' : this.snapshot,
      snapshotRequired: this.snapshotRequired,
      snapshotInfo: this.snapshotInfo,
      counterUploaded: this.counterUploaded,
      baseDurable: this.baseDurable,
      sealed: this.sealed,
      damaged: this.damaged,
    };
  }

  static fromJSON(p: PersistedGeneration): Generation {
    const g = new Generation(p.id, p.logId, p.parent, BigInt(p.base), p.coords);
    g.nextIndex = p.stagedIndex + 1;
    g.stagedIndex = p.stagedIndex;
    g.stagedChecksum = [p.checksum[0], p.checksum[1]];
    g.encodedIndex = p.stagedIndex;
    g.encodeChecksum = [p.checksum[0], p.checksum[1]];
    g.metaUploaded = p.metaUploaded;
    g.depUploaded = p.depUploaded;
    g.snapshot = p.snapshot;
    g.snapshotRequired = p.snapshotRequired;
    g.snapshotInfo = p.snapshotInfo;
    g.counterUploaded = p.counterUploaded;
    g.baseDurable = p.baseDurable;
    g.sealed = p.sealed;
    g.damaged = p.damaged;
    return g;
  }
}

/** Whether restoring `gen` walks `.dep` back to `ancestor` (no snapshot in between). */
export function dependsOn(gens: readonly Generation[], gen: Generation, ancestor: Generation): boolean {
  for (let g: Generation | undefined = gen; g !== undefined; g = gens.find((x) => x.id === g.parent)) {
    if (g === ancestor) return true;
    if ((g.snapshot !== 'none' && g.snapshot !== 'lost') || g.parent === null) return false;
  }
  return false;
}
