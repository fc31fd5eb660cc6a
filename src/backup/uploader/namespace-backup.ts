/**
 * The server side of bottomless for one primary namespace (docs/BOTTOMLESS.md "Uploader"): every
 * committed transaction reaches the object store shortly after commit as bottomless' objects.
 *
 *   const backup = await NamespaceBackup.attach({ role, paths, storage, config, dbName, logger });
 *   backup.status();                 // generation, frames committed / durable, lag, errors
 *   await backup.flush();            // everything staged and uploaded, markers written
 *   await backup.close({ upload: true, timeoutMs: 30_000 });
 *
 * `attach` registers with the engine synchronously, before its first await (a checkpoint can then
 * never pass the uploader by), and resolves once it has caught up with the log.
 */
import os from 'node:os';
import { readCaptureState, type CaptureState } from '../../engine/log/capture-state.js';
import { errorMessage } from '../../engine/logger.js';
import type { CheckpointedEvent, CommittedTransaction } from '../../engine/pipeline/transactions.js';
import type { Timers } from './clock.js';
import { BackupCore } from './core.js';
import { Generation } from './generation.js';
import { LagReport } from './lag-report.js';
import { type AttachOptions, type BackupStatus, resolveOptions } from './options.js';
import { planAttach, reconcileStaging, syntheticCoords } from './restart.js';
import { readState, type UploaderState } from './state-file.js';

export type { AttachOptions, BackupStatus } from './options.js';

/** Most page data a checkpoint's hand-over stages synchronously, under the write lock. */
const SYNC_STAGING_MAX_BYTES = 16 * 1024 * 1024;

export class NamespaceBackup extends BackupCore {
  private ready = false;
  private readonly early: (() => void)[] = [];
  private attachIndex: bigint | null = null;
  private capture: CaptureState | null = null;
  private unsubscribe: (() => void) | null = null;
  private removeParticipant: (() => void) | null = null;
  private initDone: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  /** Generations whose snapshot has held a checkpoint back (logged once each). */
  private readonly deferredFor = new WeakSet<Generation>();
  private readonly lag = new LagReport({
    logger: this.o.logger,
    what: `bottomless ${this.o.dbName}`,
    now: this.now,
    warnAfterMs: Math.max(this.o.tune.lagWarnMs, 2 * this.o.config.batchIntervalMs),
    repeatMs: this.o.tune.lagRepeatMs,
  });

  static async attach(opts: AttachOptions): Promise<NamespaceBackup> {
    const b = new NamespaceBackup(resolveOptions(opts));
    b.register();
    b.initDone = b.init();
    try {
      await b.initDone;
    } catch (err) {
      b.stop();
      throw err;
    }
    return b;
  }

  /** Synchronous: where the engine stands, then the subscription and the checkpoint participant. */
  private register(): void {
    const { role, paths } = this.o;
    this.logId = role.logId;
    this.attachIndex = role.replicationIndex();
    this.lastCommitted = this.attachIndex;
    try {
      this.capture = readCaptureState(paths.captureState);
    } catch {
      this.capture = null;
    }
    const c = this.capture;
    if (c && c.logId === this.logId) {
      this.walOffsets.set(c.walGeneration, c.genStartFrameNo - 1n);
      this.knownDb = c.genStartFrameNo - 1n + BigInt(c.checkpointedFrames ?? 0);
    }
    this.unsubscribe = role.subscribe({
      name: 'bottomless',
      policy: 'isolated',
      onTransaction: (txn) => this.onTransaction(txn),
      onNewLog: (logId, reason) => {
        // The new log holds the database as it is now: its last frame is where the file stands.
        const seedEnd = role.replicationIndex() ?? -1n;
        this.whenReady(() => this.newLog(logId, reason, seedEnd));
      },
      onClose: () => this.onNamespaceClose(),
      onError: (err, txn) => this.setAwaitingFresh(`the uploader failed on log frames ${txn.firstFrameNo}..${txn.lastFrameNo}: ${errorMessage(err)}`),
    });
    this.removeParticipant = role.addCheckpointParticipant({
      name: 'bottomless',
      prepare: (_upTo, signal) => this.prepare(signal),
      handOver: (_upTo, { final }) => this.handOver(final),
      onCheckpointed: (e) => this.checkpointed(e),
    });
  }

  private whenReady(fn: () => void): void {
    if (this.stopped) return;
    if (this.ready) fn();
    else this.early.push(fn);
  }

  private onTransaction(txn: CommittedTransaction): void {
    this.whenReady(() => {
      this.routeCommitted(txn);
      this.reportLag(txn.lastFrameNo);
    });
  }

  protected afterProgress(): void {
    this.reportLag(null);
  }

  /** The lag report sees a commit (its last frame) or an upload; it never fails the caller. */
  private reportLag(committed: bigint | null): void {
    try {
      if (committed !== null) this.lag.committed(committed, this.now());
      this.lag.update(this.status());
    } catch (err) {
      this.errors.report('the upload lag report', err);
    }
  }

  private async init(): Promise<void> {
    const { paths, dbName, logger } = this.o;
    let state: UploaderState | null = null;
    try {
      state = readState(paths.bottomlessState);
    } catch (err) {
      logger.warn({ err }, `bottomless ${dbName}: the state file is unusable (${errorMessage(err)}); starting a fresh generation`);
    }
    let scanned = new Map<string, string[]>();
    try {
      scanned = this.staging.scan();
    } catch (err) {
      this.errors.report('reading the staging folder', err);
    }
    let logStart = 0n;
    try {
      logStart = this.o.role.frameSource().startFrameNo();
    } catch (err) {
      this.errors.report('reading the log', err);
    }
    const plan = planAttach(state, { logId: this.logId, replicationIndex: this.attachIndex, capture: this.capture, logStart }, dbName);
    const continuing = plan.kind === 'continue' && state !== null;
    if (state && state.dbName === dbName) this.loadHistory(state, continuing, scanned);
    else for (const gen of scanned.keys()) this.staging.removeGeneration(gen);
    const last = this.attachIndex ?? -1n;
    if (plan.kind === 'continue') {
      this.current = this.gens.find((g) => g.id === state?.current) ?? null;
      this.lastFrameNo = plan.from - 1n;
      logger.info(`bottomless ${dbName}: continuing generation ${this.current?.id ?? '?'} after log frame ${this.lastFrameNo}`);
      this.repairSnapshot();
      await this.backfill(plan.from, plan.splitAt);
    } else if (plan.kind === 'fresh') {
      this.lastFrameNo = plan.base;
      if (plan.base >= last) {
        if (this.knownDb === plan.base) this.openFresh(plan.base, null, plan.reason);
        else this.setAwaitingFresh(plan.reason);
      } else {
        this.awaitingFresh = plan.reason;
        await this.backfill(plan.base + 1n, null);
      }
    } else {
      this.lastFrameNo = last;
      this.setAwaitingFresh(plan.reason);
    }
    this.ready = true;
    for (const fn of this.early.splice(0)) {
      try {
        fn();
      } catch (err) {
        this.errors.report('routing a transaction', err);
        this.setAwaitingFresh(`a transaction committed during start-up was lost to the uploader (${errorMessage(err)})`);
      }
    }
    this.save();
  }

  /** Generations of the state file: their leftovers in staging are uploaded again. */
  private loadHistory(state: UploaderState, continuing: boolean, scanned: Map<string, string[]>): void {
    for (const p of state.generations) {
      const g = Generation.fromJSON(p);
      g.sealed = !(continuing && g.id === state.current);
      this.gens.push(g);
    }
    const newest = [state.newestGeneration, this.gens.at(-1)?.id].filter((id) => typeof id === 'string').sort()[0];
    this.lastGenId = newest ?? null;
    this.gensSinceSnapshot = state.gensSinceSnapshot;
    this.walBytesSinceSnapshot = state.walBytesSinceSnapshot;
    const found = reconcileStaging(this.gens, scanned, this.staging);
    this.stagedBytes = found.bytes;
    this.batchBytes = found.batchBytes;
    for (const g of this.gens) {
      if (g.snapshot === 'lost' && g.snapshotRequired) g.damaged = true;
      if (g.stagedIndex > 0 || g.snapshot === 'staged' || g.snapshot === 'uploaded') this.uploads.queueHeader(g);
      for (const b of g.batches) this.uploads.queueBatch(g, b);
      if (g.snapshot === 'staged') this.uploads.queueSnapshot(g);
      else if (g.snapshot === 'uploaded') this.uploads.queueCounter(g);
    }
  }

  /** A continued generation whose required snapshot was never staged (a crash while reading it). */
  private repairSnapshot(): void {
    const cur = this.current;
    if (!cur || !cur.snapshotRequired || cur.snapshot !== 'none') return;
    if (this.knownDb === cur.base) this.startSnapshot(cur);
    else this.snapshotFailed(cur, new Error('the database file moved on before its snapshot was staged'));
  }

  /** Routes the logged transactions `from`..the index at attach (live ones wait meanwhile). */
  private async backfill(from: bigint, splitAt: bigint | null): Promise<void> {
    const last = this.attachIndex;
    if (last === null || from > last) return;
    const bigEndian = this.current?.coords?.bigEndian ?? os.endianness() === 'BE';
    const synthetic = syntheticCoords(this.capture, bigEndian);
    const ac = new AbortController();
    try {
      for await (const t of this.o.role.frameSource().transactions(from, ac.signal)) {
        if (this.stopped) return;
        if (t.firstFrameNo === splitAt) this.resumeChild(splitAt);
        const own = this.current?.coords ?? null;
        const newWal = splitAt !== null && t.firstFrameNo >= splitAt;
        const ownFits = own !== null && (!newWal || (own.walGeneration === synthetic.walGeneration && own.salt1 === synthetic.salt1 && own.salt2 === synthetic.salt2));
        const coords = own !== null && ownFits ? own : synthetic;
        this.routeFrames(t, coords, this.now());
        if (t.lastFrameNo >= last) break;
      }
    } catch (err) {
      this.errors.report('reading logged frames to stage them', err);
      this.lastFrameNo = last;
      this.setAwaitingFresh(`logged frames from ${from} on could not be read (${errorMessage(err)})`);
    } finally {
      ac.abort();
    }
  }

  /**
   * The next WAL generation may have been opened as a generation before the kill (nothing of its
   * frames staged, maybe its snapshot): it goes on, with the coordinates it was opened with, rather
   * than a new generation over the same frames.
   */
  private resumeChild(splitAt: bigint): void {
    const cur = this.current;
    const c = this.capture;
    const child = this.gens.find((g) => g.parent === cur?.id && g.base === splitAt - 1n && g.stagedIndex === 0 && g.coords !== null);
    if (!cur || !child || !c || child.coords?.walGeneration !== c.walGeneration || child.coords.salt1 !== c.salt1 || child.coords.salt2 !== c.salt2) return;
    this.endCurrent();
    child.sealed = false;
    this.current = child;
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /** Outside the write lock: everything pending staged, the snapshot read (bounded by `signal`). */
  private async prepare(signal: AbortSignal): Promise<void> {
    if (this.stopped) return;
    await until(this.initDone.catch(() => undefined), signal);
    // What is committed now is staged before the checkpoint asks for the lock; what commits meanwhile
    // is the hand-over's. Cut once: cutting again on every round would chase a busy server's commits
    // with ever smaller batches (each a staged file and an upload) until the prepare timeout.
    this.cutPending();
    // Until the cut batches are staged and no snapshot is reading (one may begin meanwhile).
    while (!signal.aborted && !this.stopped) {
      const job = this.snapshot?.job;
      const reading = job?.reading === true;
      if (this.stager.length === 0 && !reading) return;
      await until(Promise.all([this.stager.drained(), reading ? job.done.catch(() => undefined) : undefined]), signal);
    }
  }

  /**
   * Under the write lock, synchronously: the rest is staged now. A snapshot still reading the
   * database file holds the checkpoint back (false: the checkpointer retries) until its generation
   * has `snapshotHoldWalBytes` of WAL; then it is given up and the checkpoint goes ahead.
   */
  private handOver(final: boolean): boolean {
    const snap = this.snapshot;
    if (snap?.job.reading && !final && !this.stopped && snap.gen.walBytes < this.o.tune.snapshotHoldWalBytes) {
      if (!this.deferredFor.has(snap.gen)) {
        this.deferredFor.add(snap.gen);
        this.o.logger.info(`bottomless ${this.o.dbName}: checkpoints wait while the snapshot of generation ${snap.gen.id} is read (up to ${this.o.tune.snapshotHoldWalBytes} bytes of WAL)`);
      }
      return false;
    }
    try {
      this.handOverUnguarded();
    } catch (err) {
      // Never in the way of a checkpoint: what is not staged now is staged from the log later.
      this.errors.report('the checkpoint hand-over', err);
    }
    return true;
  }

  private handOverUnguarded(): void {
    if (this.stopped) return;
    if (this.ready) {
      this.deferSave(() => {
        this.cutPending();
        // The few transactions since `prepare`; a backlog (a slow or failing disk) is left to the
        // worker rather than held under the write lock: the log still holds those frames.
        if (this.stager.memoryBytes > SYNC_STAGING_MAX_BYTES) return;
        try {
          this.stager.stageAllSync();
        } catch (err) {
          this.errors.report('staging at a checkpoint', err);
        }
      });
    }
    if (this.snapshot?.job.reading) this.snapshot.job.abort('its generation reached the WAL it may hold back before the database file was read');
  }

  private checkpointed(e: CheckpointedEvent): void {
    if (this.stopped || e.logId !== this.logId || e.lastFrameIndex === 0) return;
    const offset = this.walOffsets.get(e.walGeneration);
    this.knownDb = offset === undefined ? null : offset + BigInt(e.lastFrameIndex);
    this.o.logger.debug(`bottomless ${this.o.dbName}: checkpointed WAL generation ${e.walGeneration} (${e.lastFrameIndex} frames); the database file is at log frame ${this.knownDb ?? 'unknown'}`);
    // The checkpoint asked for to begin the fresh generation awaited: when the file now holds every
    // frame so far, it begins here (an idle database needs no further commit to be backed up).
    const asked = this.freshCheckpointAsked;
    this.freshCheckpointAsked = false;
    if (asked && this.ready && this.awaitingFresh !== null && this.knownDb !== null && this.knownDb === this.lastFrameNo) this.openFresh(this.knownDb, null, this.awaitingFresh);
  }

  private onNamespaceClose(): void {
    this.snapshot?.job.abort('the namespace closed');
    if (this.ready) this.cutPending();
  }

  // ---- public API --------------------------------------------------------------------------

  status(): BackupStatus {
    const durable = this.uploads.lastDurableFrameNo();
    const committed = this.lastCommitted;
    let lag = 0;
    if (committed !== null) {
      const floor = durable ?? this.gens[0]?.base ?? this.attachIndex ?? -1n;
      lag = committed > floor ? Number(committed - floor) : 0;
    }
    return {
      generation: this.current?.id ?? null,
      lastCommittedFrameNo: committed,
      lastDurableFrameNo: durable,
      uploadLagFrames: lag,
      stagedBytes: this.stagedBytes,
      lastError: this.errors.lastError,
      errors: this.errors.count,
      awaitingFresh: this.awaitingFresh,
      timersArmed: this.timersArmed,
    };
  }

  /** Stages what is pending, waits until everything is in the store, writes the durable markers. */
  async flush(): Promise<void> {
    await this.initDone;
    while (!this.stopped) {
      this.cutPending();
      await this.stager.drained();
      await this.snapshot?.job.done.catch(() => undefined);
      await this.queue.idle();
      this.uploads.markers(true);
      await this.queue.idle();
      if (!this.pending && this.stager.length === 0 && !this.snapshot && this.queue.pending === 0) return;
    }
  }

  /**
   * Graceful shutdown: flushes (unless `upload` is false or LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD),
   * at most `timeoutMs`; what did not make it stays staged for the next start.
   */
  close(opts: { upload?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.doClose(opts.upload ?? true, opts.timeoutMs ?? 30_000);
    return this.closing;
  }

  private async doClose(upload: boolean, timeoutMs: number): Promise<void> {
    const wantUpload = upload && !this.o.config.skipShutdownUpload;
    const work = wantUpload ? this.flush() : this.stageLocally();
    const finished = await within(work, timeoutMs, this.o.timers);
    if (!finished) this.o.logger.warn(`bottomless ${this.o.dbName}: ${wantUpload ? 'uploads' : 'staging'} did not finish within ${timeoutMs} ms at shutdown; what is staged goes up at the next start`);
    this.cleanShutdown = this.ready && !this.pending && this.stager.length === 0;
    this.save();
    this.stop();
  }

  private async stageLocally(): Promise<void> {
    await this.initDone;
    this.cutPending();
    await this.stager.drained();
    await this.snapshot?.job.done.catch(() => undefined);
  }

  /** Stops at once without writing anything more (tests: what a kill -9 leaves behind). */
  kill(): void {
    this.stop();
  }

  private stop(): void {
    if (this.stopped) return;
    this.snapshot?.job.abort('the uploader stopped');
    this.stopped = true;
    this.unsubscribe?.();
    this.removeParticipant?.();
    this.stopWork();
    this.early.length = 0;
  }
}

/** Resolves when `p` settles or `signal` aborts. */
function until(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    p.then(
      () => resolve(),
      () => resolve(),
    );
  });
}

/** True when `p` settled within `ms`. */
async function within(p: Promise<unknown>, ms: number, timers: Timers): Promise<boolean> {
  let handle: unknown = null;
  const timeout = new Promise<false>((resolve) => (handle = timers.setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(
      () => true,
      () => true,
    ), timeout]);
  } finally {
    timers.clearTimeout(handle);
  }
}
