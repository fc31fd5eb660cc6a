/**
 * The uploader's machinery, below the public API of NamespaceBackup: transactions are routed to
 * generations and batches (in memory, under the write lock), batches are staged in order, staged
 * objects are uploaded once the state file names them, snapshots are taken when a generation opens.
 * docs/BOTTOMLESS.md "Uploader" has the state machine and its invariants.
 */
import { errorMessage } from '../../engine/logger.js';
import type { CommittedTransaction } from '../../engine/pipeline/transactions.js';
import type { WalFrame } from '../../engine/wal/sqlite-wal-format.js';
import { generationTimeMs, newGenerationId } from '../format/generation-id.js';
import { BatchItem } from './batch.js';
import { ErrorTracker, safeClock, TimerSlot } from './clock.js';
import { dependsOn, Generation, type GenCoords } from './generation.js';
import type { ResolvedOptions } from './options.js';
import { SnapshotAborted, SnapshotJob } from './snapshot.js';
import { Stager } from './stager.js';
import { StagingDir } from './staging.js';
import { STATE_VERSION, type UploaderState } from './state-file.js';
import { StateWriter } from './state-writer.js';
import { UploadQueue } from './upload-queue.js';
import { ObjectUploads } from './uploads.js';

/** The reason restart.ts gives when no uploader ran on this database before. */
export const FIRST_START = 'no uploader state';

/** Transaction frames as routing needs them (live or read back from the log). */
export interface RoutedTxn {
  firstFrameNo: bigint;
  lastFrameNo: bigint;
  frames: readonly WalFrame[];
}

const FRAME_HEADER = 24;

/** The batch interval passed (a clock that stepped back counts as passed: the batch goes now). */
function due(elapsed: number, interval: number): boolean {
  return elapsed < 0 || elapsed >= interval;
}

function sameWal(a: GenCoords, b: GenCoords): boolean {
  return a.walGeneration === b.walGeneration && a.salt1 === b.salt1 && a.salt2 === b.salt2 && a.bigEndian === b.bigEndian;
}

export abstract class BackupCore {
  protected readonly gens: Generation[] = [];
  protected current: Generation | null = null;
  protected pending: BatchItem | null = null;
  /** A fresh generation (snapshot, no `.dep`) is needed before frames can be backed up, and why. */
  protected awaitingFresh: string | null = null;
  /** The log frame the database file equals now (null: unknown), for snapshot decisions. */
  protected knownDb: bigint | null = null;
  /** Per WAL generation: log frame number = offset + WAL frame index. */
  protected readonly walOffsets = new Map<number, bigint>();
  protected lastCommitted: bigint | null = null;
  /** Last log frame routed (appended, covered by a generation's base, or skipped). */
  protected lastFrameNo: bigint | null = null;
  protected gensSinceSnapshot = 0;
  protected walBytesSinceSnapshot = 0;
  protected snapshot: { gen: Generation; job: SnapshotJob } | null = null;
  protected logId = '';
  protected stopped = false;
  protected stagedBytes = 0;
  /** Of which batches (what the cap applies to: a snapshot is one file per generation, never dropped). */
  protected batchBytes = 0;
  protected cleanShutdown = false;
  protected lastGenId: string | null = null;
  private skipping = false;
  private lastFreshRequest = Number.NEGATIVE_INFINITY;
  /** A checkpoint was asked for to begin the fresh generation awaited (the next one completing may begin it). */
  protected freshCheckpointAsked = false;
  protected readonly now: () => number;
  protected readonly errors: ErrorTracker;
  protected readonly staging: StagingDir;
  protected readonly stager: Stager;
  protected readonly queue: UploadQueue;
  protected readonly uploads: ObjectUploads;
  protected readonly batchTimer: TimerSlot;
  /** While a fresh generation is awaited: asks for its checkpoint again (requestFreshCheckpoint). */
  private readonly freshTimer: TimerSlot;
  private readonly state: StateWriter;

  constructor(protected readonly o: ResolvedOptions) {
    const what = `bottomless ${o.dbName}`;
    this.errors = new ErrorTracker(o.logger, what);
    this.now = safeClock(o.clock, o.logger, what);
    this.staging = new StagingDir(o.paths);
    const stopped = (): boolean => this.stopped;
    this.stager = new Stager({ staging: this.staging, compression: o.config.compression, errors: this.errors, timers: o.timers, onStaged: (item) => this.onStaged(item), stopped });
    this.queue = new UploadQueue({
      storage: o.storage,
      parallel: o.config.parallelMax,
      timers: o.timers,
      errors: this.errors,
      retryBaseMs: o.tune.retryBaseMs,
      retryMaxMs: o.tune.retryMaxMs,
      onIdle: () => this.uploads.markers(false),
    });
    this.uploads = new ObjectUploads({
      dbName: o.dbName,
      logId: () => this.logId,
      now: this.now,
      staging: this.staging,
      queue: this.queue,
      timers: o.timers,
      errors: this.errors,
      markerDebounceMs: o.tune.markerDebounceMs,
      generations: () => this.gens,
      save: () => this.save(),
      stagedBytes: (delta, batch) => {
        this.stagedBytes += delta;
        if (batch) this.batchBytes += delta;
      },
      progressed: () => this.progressed(),
      lost: (reason) => {
        this.o.logger.error(`bottomless ${o.dbName}: ${reason}`);
        this.setAwaitingFresh(reason);
      },
      snapshotLost: (gen, err) => this.snapshotFailed(gen, err),
      stopped,
    });
    const onTimerError = (err: unknown): void => this.errors.report('timer', err);
    this.batchTimer = new TimerSlot(o.timers, onTimerError);
    this.freshTimer = new TimerSlot(o.timers, onTimerError);
    this.state = new StateWriter({ path: o.paths.bottomlessState, timers: o.timers, errors: this.errors, snapshot: () => this.stateSnapshot(), stopped });
  }

  /** Timers cleared, no more puts or staging (the uploader stopped). */
  protected stopWork(): void {
    this.batchTimer.clear();
    this.freshTimer.clear();
    this.state.stop();
    this.queue.stop();
    this.stager.stop();
    this.uploads.stop();
  }

  protected get timersArmed(): number {
    return [this.batchTimer.armed, this.freshTimer.armed, this.state.timerArmed, this.queue.timerArmed, this.stager.timerArmed, this.uploads.timerArmed].filter(Boolean).length;
  }

  // ---- routing (synchronous; runs under the namespace's write lock) ------------------------

  protected routeCommitted(txn: CommittedTransaction): void {
    if (this.lastCommitted === null || txn.lastFrameNo > this.lastCommitted) this.lastCommitted = txn.lastFrameNo;
    if (txn.logId !== this.logId) this.newLog(txn.logId, 'a transaction of another log arrived', null);
    if (txn.wal === null) {
      // The pages of a newly seeded log: the database file holds exactly them.
      this.endCurrent();
      this.knownDb = txn.lastFrameNo;
      this.lastFrameNo = txn.lastFrameNo;
      this.openFresh(txn.lastFrameNo, null, this.awaitingFresh ?? 'the replication log was seeded from the database');
      return;
    }
    const wal = txn.wal;
    this.walOffsets.set(wal.generation, txn.firstFrameNo - BigInt(wal.firstFrameIndex));
    for (const g of this.walOffsets.keys()) if (g < wal.generation - 2) this.walOffsets.delete(g);
    // SQLite restarts a WAL only once every frame of it is in the database file.
    if (wal.firstFrameIndex === 1) this.knownDb = txn.firstFrameNo - 1n;
    const [b0, b1] = wal.checksumBefore;
    const coords: GenCoords = {
      walGeneration: wal.generation,
      salt1: wal.salt1,
      salt2: wal.salt2,
      bigEndian: wal.bigEndian,
      seed: [b0, b1],
      pageSize: txn.frames[0]?.page.length ?? 4096,
      synthetic: !(wal.firstFrameIndex === 1 && b0 === wal.headerChecksum[0] && b1 === wal.headerChecksum[1]),
    };
    this.routeFrames(txn, coords, this.now());
  }

  /** Appends a transaction to the generation it belongs to, opening one when needed. */
  protected routeFrames(t: RoutedTxn, coords: GenCoords, commitMs: number): void {
    if (t.frames.length === 0) return;
    const base = t.firstFrameNo - 1n;
    if (this.lastFrameNo !== null && base !== this.lastFrameNo) {
      if (t.lastFrameNo <= this.lastFrameNo) return; // seen already
      this.setAwaitingFresh(`log frames ${this.lastFrameNo + 1n}..${base} never reached the uploader`);
    }
    let gen = this.current;
    const fits =
      gen !== null &&
      this.awaitingFresh === null &&
      !gen.sealed &&
      !gen.damaged &&
      gen.frameNo(gen.lastIndex) === base &&
      (gen.coords === null ? gen.lastIndex === 0 : sameWal(gen.coords, coords));
    if (fits && gen) {
      if (gen.coords === null) gen.adopt(coords);
    } else if (this.awaitingFresh === null && gen !== null && !gen.damaged && gen.frameNo(gen.lastIndex) === base) {
      gen = this.openGeneration(base, gen.id, coords, false);
    } else {
      if (this.knownDb !== base) {
        this.setAwaitingFresh(gen === null ? 'no generation is open' : `generation ${gen.id} cannot be continued`);
        this.skip(t);
        return;
      }
      gen = this.openFresh(base, coords, this.awaitingFresh ?? 'no generation was open');
    }
    this.append(gen, t, coords, commitMs);
  }

  private append(gen: Generation, t: RoutedTxn, coords: GenCoords, commitMs: number): void {
    const { batchMaxFrames, batchIntervalMs } = this.o.config;
    const n = t.frames.length;
    const lastIndex = gen.nextIndex + n - 1;
    let p = this.pending;
    if (p && (p.gen !== gen || p.frames + n > batchMaxFrames || !p.commitsFit(lastIndex, commitMs) || due(commitMs - p.startedAt, batchIntervalMs))) {
      this.cutPending();
      p = null;
      // That cut crossed the staging cap and dropped `gen`'s frames: the transaction is routed again.
      if (gen.damaged) return this.routeFrames(t, coords, commitMs);
    }
    if (!p) {
      p = new BatchItem(gen, commitMs);
      this.pending = p;
    }
    p.add({ frames: t.frames, firstFrameNo: t.firstFrameNo, lastFrameNo: t.lastFrameNo, lastIndex, commitMs });
    gen.nextIndex = lastIndex + 1;
    const bytes = n * (FRAME_HEADER + (gen.coords?.pageSize ?? 4096));
    gen.walBytes += bytes;
    this.walBytesSinceSnapshot += bytes;
    this.lastFrameNo = t.lastFrameNo;
    this.skipping = false;
    if (p.frames >= batchMaxFrames) this.cutPending();
    else this.armBatchTimer();
  }

  /** The open batch goes to the stager. */
  protected cutPending(): void {
    const p = this.pending;
    this.pending = null;
    this.batchTimer.clear();
    if (!p || p.empty) return;
    this.stager.push(p);
    this.checkCap();
  }

  private armBatchTimer(): void {
    const p = this.pending;
    if (!p) return;
    const interval = this.o.config.batchIntervalMs;
    this.batchTimer.arm(interval - Math.max(0, this.now() - p.startedAt), () => {
      if (this.pending !== p) return;
      if (due(this.now() - p.startedAt, interval)) this.cutPending();
      else this.armBatchTimer();
    });
  }

  private skip(t: RoutedTxn): void {
    this.lastFrameNo = t.lastFrameNo;
    if (!this.skipping) {
      this.o.logger.error(`bottomless ${this.o.dbName}: frames from ${t.firstFrameNo} on are not backed up until a new generation with a snapshot can begin (${this.awaitingFresh ?? 'no generation'})`);
    }
    this.skipping = true;
    this.requestFreshCheckpoint();
  }

  protected setAwaitingFresh(reason: string): void {
    if (this.awaitingFresh !== null) return;
    this.awaitingFresh = reason;
    this.o.logger.error(`bottomless ${this.o.dbName}: a new generation with a snapshot is needed: ${reason}`);
    this.requestFreshCheckpoint();
  }

  /** A new replication log (the database was replaced): what follows needs a fresh generation. */
  protected newLog(logId: string, reason: string, seedEnd: bigint | null): void {
    this.endCurrent();
    this.snapshot?.job.abort('the database was replaced');
    this.logId = logId;
    this.walOffsets.clear();
    // Frame numbers start again in the new log.
    this.knownDb = seedEnd;
    this.lastFrameNo = seedEnd;
    this.lastCommitted = seedEnd;
    this.awaitingFresh = null;
    this.setAwaitingFresh(`a new replication log began (${reason})`);
  }

  /** The current generation ends: no frame will be added to it. */
  protected endCurrent(): void {
    this.cutPending();
    const cur = this.current;
    if (!cur) return;
    cur.sealed = true;
    this.current = null;
    this.uploads.markers(false);
  }

  protected openFresh(base: bigint, coords: GenCoords | null, reason: string): Generation {
    this.awaitingFresh = null;
    this.freshTimer.clear();
    const gen = this.openGeneration(base, null, coords, true);
    // The first generation of a database is no news; any other fresh start means a broken chain.
    const first = reason.startsWith(FIRST_START);
    this.o.logger[first ? 'info' : 'warn'](`bottomless ${this.o.dbName}: generation ${gen.id} begins with a snapshot and no parent: ${reason}`);
    return gen;
  }

  protected openGeneration(base: bigint, parent: string | null, coords: GenCoords | null, required: boolean): Generation {
    this.endCurrent();
    const gen = new Generation(this.newId(), this.logId, parent, base, coords);
    gen.snapshotRequired = required;
    this.gens.push(gen);
    this.lastGenId = gen.id;
    this.current = gen;
    this.gensSinceSnapshot += 1;
    const { tune, config } = this.o;
    const periodic = !config.skipSnapshot && (this.gensSinceSnapshot >= tune.snapshotEveryGenerations || this.walBytesSinceSnapshot >= tune.snapshotEveryWalBytes);
    if (required || periodic) {
      if (this.knownDb === base) this.startSnapshot(gen);
      else if (required) this.snapshotFailed(gen, new Error('the database file is not at the start of the generation'));
    }
    this.o.logger.info(`bottomless ${this.o.dbName}: generation ${gen.id} begins after log frame ${base}${parent ? `, parent ${parent}` : ''}${gen.snapshot === 'reading' ? ', with a snapshot' : ''}`);
    return gen;
  }

  /** Newer generations sort first: an id is always newer than the previous one, whatever the clock says. */
  private newId(): string {
    let t = this.now();
    if (this.lastGenId !== null) t = Math.max(t, generationTimeMs(this.lastGenId) + 1);
    return newGenerationId(t);
  }

  // ---- snapshots ---------------------------------------------------------------------------

  protected startSnapshot(gen: Generation): void {
    this.snapshot?.job.abort('a newer snapshot began');
    let job: SnapshotJob;
    try {
      job = new SnapshotJob({ gen: gen.id, file: this.o.role.databaseFile, staging: this.staging, compression: this.o.config.compression, chunkBytes: this.o.tune.snapshotChunkBytes });
    } catch (err) {
      this.snapshotFailed(gen, err);
      return;
    }
    gen.snapshot = 'reading';
    const entry = { gen, job };
    this.snapshot = entry;
    void job.done
      .then(
        (info) => {
          if (this.stopped) return;
          gen.snapshot = 'staged';
          gen.snapshotInfo = info;
          this.stagedBytes += info.bytes;
          this.gensSinceSnapshot = 0;
          this.walBytesSinceSnapshot = gen.walBytes;
          this.o.logger.info(`bottomless ${this.o.dbName}: snapshot of generation ${gen.id} staged (${info.pageCount} pages)`);
          this.withSave(() => {
            this.uploads.queueHeader(gen);
            this.uploads.queueSnapshot(gen);
          });
          this.checkCap();
        },
        (err: unknown) => this.snapshotFailed(gen, err),
      )
      .catch((err: unknown) => this.errors.report(`recording the snapshot of generation ${gen.id}`, err))
      .finally(() => {
        if (this.snapshot === entry) this.snapshot = null;
      });
  }

  protected snapshotFailed(gen: Generation, err: unknown): void {
    if (this.stopped) return;
    gen.snapshot = 'lost';
    if (err instanceof SnapshotAborted) this.o.logger.warn(`bottomless ${this.o.dbName}: generation ${gen.id} gets no snapshot: ${err.message}`);
    else this.errors.report(`snapshot of generation ${gen.id}`, err);
    if (gen.snapshotRequired) {
      gen.damaged = true;
      // What comes after it needs a new starting point, unless a newer snapshot already gave it one.
      if (this.current !== null && dependsOn(this.gens, this.current, gen)) {
        this.setAwaitingFresh(`generation ${gen.id} cannot be restored without the snapshot it lacks (${errorMessage(err)})`);
      }
    }
    this.save();
  }

  // ---- staging results, cap, state ---------------------------------------------------------

  private onStaged(item: BatchItem): void {
    const gen = item.gen;
    if (item.firstIndex !== gen.stagedIndex + 1) throw new Error(`batch ${item.firstIndex}-${item.lastIndex} of ${gen.id} staged after index ${gen.stagedIndex}`);
    gen.stagedIndex = item.lastIndex;
    gen.stagedChecksum = item.checksumAfter;
    const ref = { first: item.firstIndex, last: item.lastIndex, name: item.name!, bytes: item.bytes, uploaded: false, dropped: false };
    gen.batches.push(ref);
    this.stagedBytes += item.bytes;
    this.batchBytes += item.bytes;
    // Uploaded only once the state file names it: the store never holds what a restart would stage again.
    this.withSave(() => {
      this.uploads.queueHeader(gen);
      if (!ref.dropped) this.uploads.queueBatch(gen, ref);
    });
    this.checkCap();
  }

  /** Past the cap, the oldest batches are dropped (loudly); the gap needs a fresh generation. Snapshots do not count. */
  protected checkCap(): void {
    const cap = this.o.tune.stagingCapBytes;
    let total = this.batchBytes + this.stager.memoryBytes;
    if (total <= cap) return;
    let frames = 0;
    const damaged = new Set<Generation>();
    for (const g of this.gens) {
      for (const b of g.batches) {
        if (total <= cap) break;
        if (b.uploaded || b.dropped || b.job?.inFlight) continue;
        b.dropped = true;
        if (b.job) b.job.cancelled = true;
        this.uploads.forget(g, b.job);
        this.staging.removeSync(g.id, b.name);
        this.stagedBytes -= b.bytes;
        this.batchBytes -= b.bytes;
        total -= b.bytes;
        frames += b.last - b.first + 1;
        damaged.add(g);
      }
    }
    for (const item of [...this.stager.items()]) {
      if (total <= cap && !damaged.has(item.gen)) continue;
      total -= item.memoryBytes;
      frames += item.lastIndex - item.firstIndex + 1;
      this.stager.drop(item);
      damaged.add(item.gen);
    }
    if (this.pending && damaged.has(this.pending.gen)) {
      frames += this.pending.frames;
      this.pending = null;
      this.batchTimer.clear();
    }
    for (const g of damaged) g.damaged = true;
    if (frames === 0) return;
    this.o.logger.error(
      `bottomless ${this.o.dbName}: the staging folder outgrew its cap of ${cap} bytes (the store is unreachable?): ${frames} frames of generation(s) ${[...damaged].map((g) => g.id).join(', ')} were dropped; restores cannot go past them`,
    );
    this.setAwaitingFresh('staged frames were dropped (staging cap)');
    this.save();
  }

  /** Runs `fn` after the next successful state write (right away when it succeeds now). */
  protected withSave(fn: () => void): void {
    this.state.after(fn);
  }

  /** Several changes, one state write (checkpoint hand-over). */
  protected deferSave(fn: () => void): void {
    this.state.defer(fn);
  }

  protected save(): boolean {
    return this.state.save();
  }

  protected stateSnapshot(): UploaderState {
    // Everything up to `lastFrameNo` is staged (or needs no staging); `current` holds the next frame.
    const oldest = this.stager.items()[0] ?? (this.pending && !this.pending.empty ? this.pending : null);
    const current = oldest ? oldest.gen : this.current;
    const lastFrameNo = oldest ? oldest.firstFrameNo - 1n : this.lastFrameNo;
    return {
      version: STATE_VERSION,
      dbName: this.o.dbName,
      logId: this.logId,
      current: current?.id ?? null,
      newestGeneration: this.lastGenId,
      lastFrameNo,
      awaitingFresh: this.awaitingFresh,
      gensSinceSnapshot: this.gensSinceSnapshot,
      walBytesSinceSnapshot: this.walBytesSinceSnapshot,
      cleanShutdown: this.cleanShutdown,
      generations: this.gens.map((g) => g.toJSON()),
    };
  }

  /** Asks for a checkpoint so the next WAL generation can begin the fresh generation awaited. */
  protected requestFreshCheckpoint(): void {
    if (this.awaitingFresh === null || this.stopped) return;
    // The database file is where the log is (a new log was just seeded): the next commit can begin it.
    if (this.knownDb !== null && this.knownDb === this.lastFrameNo) return;
    // Until it begins, ask again now and then: this request may be skipped (the store still fails)
    // or its checkpoint stop short (a reader holds the WAL), and with every staged frame dropped no
    // upload is left whose completion would ask again; an idle database makes no commit that would.
    this.freshTimer.arm(this.o.tune.freshCheckpointIntervalMs, () => this.requestFreshCheckpoint());
    if (this.queue.backingOff) return;
    const now = this.now();
    if (now - this.lastFreshRequest < this.o.tune.freshCheckpointIntervalMs) return;
    this.lastFreshRequest = now;
    this.freshCheckpointAsked = true;
    void this.o.role.checkpoint().catch((err: unknown) => this.errors.report('requesting a checkpoint', err));
  }

  /** Something reached the store: forget finished generations, write markers. */
  private progressed(): void {
    this.prune();
    this.uploads.markers(false);
    this.requestFreshCheckpoint();
    this.afterProgress();
  }

  /** After something reached the store (NamespaceBackup: the lag report). */
  protected abstract afterProgress(): void;

  /** Generations nothing depends on any more leave the state (ObjectUploads.prunable). */
  protected prune(): void {
    const busy = (g: Generation): boolean => g === this.current || g.snapshot === 'reading' || this.pending?.gen === g || this.stager.items().some((item) => item.gen === g);
    const keep = this.uploads.prunable(this.gens, busy);
    if (keep.length !== this.gens.length) {
      this.gens.splice(0, this.gens.length, ...keep);
      this.save();
    }
  }
}
