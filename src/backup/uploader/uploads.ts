/**
 * What goes to the store for each generation, and what is known to be there: `.meta`, `.dep`,
 * batches (from staging), the snapshot and `.changecounter`, and the durable marker. Also the
 * durable frontier: the newest log frame a restore from the store reaches right now.
 */
import fs from 'node:fs';
import { depKey, durableMarkerKey, generationPrefix, metaKey, snapshotKey, changeCounterKey, parseCompression } from '../format/layout.js';
import { encodeChangeCounter, encodeDep, encodeDurableMarker, encodeMeta, encodeSnapshotMetadata } from '../format/objects.js';
import { TimerSlot, type ErrorTracker, type Timers } from './clock.js';
import type { BatchRef, Generation } from './generation.js';
import type { StagingDir } from './staging.js';
import type { UploadJob, UploadQueue } from './upload-queue.js';

export interface UploadsContext {
  dbName: string;
  logId(): string;
  now(): number;
  staging: StagingDir;
  queue: UploadQueue;
  timers: Timers;
  errors: ErrorTracker;
  markerDebounceMs: number;
  /** Generations tracked, oldest first. */
  generations(): readonly Generation[];
  /** Persists the uploader's state now (false when it could not be written). */
  save(): boolean;
  /** Staged bytes changed by `delta` (of batches: `batch`, of snapshots otherwise). */
  stagedBytes(delta: number, batch: boolean): void;
  /** Something reached the store. */
  progressed(): void;
  /** Frames that will never reach the store (why): a fresh generation must follow. */
  lost(reason: string): void;
  /** A staged snapshot vanished before its upload. */
  snapshotLost(gen: Generation, err: unknown): void;
  stopped(): boolean;
}

export class ObjectUploads {
  private readonly markerTimer: TimerSlot;
  private lastMarkerAt = Number.NEGATIVE_INFINITY;
  private readonly jobs = new Map<Generation, Set<UploadJob>>();
  private readonly markersQueued = new Set<Generation>();

  constructor(private readonly ctx: UploadsContext) {
    this.markerTimer = new TimerSlot(ctx.timers, (err) => ctx.errors.report('durable marker', err));
  }

  get timerArmed(): boolean {
    return this.markerTimer.armed;
  }

  /** Upload jobs of `gen` not finished yet. */
  pendingFor(gen: Generation): number {
    return this.jobs.get(gen)?.size ?? 0;
  }

  stop(): void {
    this.markerTimer.clear();
  }

  /** A job that will never run (its staged file was dropped). */
  forget(gen: Generation, job: UploadJob | undefined): void {
    if (job) this.jobs.get(gen)?.delete(job);
  }

  private push(gen: Generation, job: UploadJob): UploadJob {
    let set = this.jobs.get(gen);
    if (!set) this.jobs.set(gen, (set = new Set()));
    set.add(job);
    const done = job.onDone;
    job.onDone = () => {
      set.delete(job);
      done();
      this.ctx.progressed();
    };
    this.ctx.queue.push(job);
    return job;
  }

  /** `.meta` (once the generation has coordinates) and `.dep` (when it has a parent), each once. */
  queueHeader(gen: Generation): void {
    const { dbName } = this.ctx;
    if (gen.parent !== null && !gen.depUploaded && !gen.depQueued) {
      gen.depQueued = true;
      const body = encodeDep(gen.parent);
      this.push(gen, {
        key: depKey(dbName, gen.id),
        kind: 'dep',
        load: () => ({ body }),
        onDone: () => {
          gen.depUploaded = true;
          this.ctx.save();
        },
      });
    }
    const coords = gen.coords;
    if (coords !== null && !gen.metaUploaded && !gen.metaQueued) {
      gen.metaQueued = true;
      const body = encodeMeta({ pageSize: coords.pageSize, checksum: coords.seed });
      this.push(gen, {
        key: metaKey(dbName, gen.id),
        kind: 'meta',
        load: () => ({ body }),
        onDone: () => {
          gen.metaUploaded = true;
          this.ctx.save();
        },
      });
    }
  }

  /** A staged batch (recorded in the state file) goes up; its staged copy is removed after. */
  queueBatch(gen: Generation, ref: BatchRef): void {
    const { staging } = this.ctx;
    const job = this.push(gen, {
      key: generationPrefix(this.ctx.dbName, gen.id) + ref.name,
      kind: 'batch',
      load: async () => {
        let body: Buffer;
        try {
          body = await staging.read(gen.id, ref.name);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.lost(gen, ref);
          throw err;
        }
        const metadata = await staging.readHeaders(gen.id, ref.name);
        return { body, options: metadata === null ? {} : { metadata } };
      },
      onDone: () => {
        ref.uploaded = true;
        this.ctx.stagedBytes(-ref.bytes, true);
        gen.prune();
        void staging.remove(gen.id, ref.name).catch((err: unknown) => this.ctx.errors.report('removing an uploaded batch', err));
      },
    });
    ref.job = job;
  }

  /** A staged batch vanished (removed behind the uploader's back): a gap, like a dropped one. */
  private lost(gen: Generation, ref: BatchRef): void {
    ref.dropped = true;
    gen.damaged = true;
    if (ref.job) {
      ref.job.cancelled = true;
      this.forget(gen, ref.job);
    }
    this.ctx.stagedBytes(-ref.bytes, true);
    this.ctx.lost(`staged batch ${ref.name} of generation ${gen.id} disappeared before its upload`);
  }

  /** The staged snapshot, by multipart upload from its file, then `.changecounter`. */
  queueSnapshot(gen: Generation): void {
    const info = gen.snapshotInfo;
    if (!info) return;
    const compression = parseCompression(info.name.slice(3));
    if (compression === null) throw new Error(`bad snapshot name ${info.name}`);
    const file = this.ctx.staging.file(gen.id, info.name);
    const metadata = encodeSnapshotMetadata({ digest: info.digest, pageCount: info.pageCount });
    const job: UploadJob = this.push(gen, {
      key: snapshotKey(this.ctx.dbName, gen.id, compression),
      kind: 'snapshot',
      load: () => {
        try {
          fs.accessSync(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            job.cancelled = true;
            this.forget(gen, job);
            this.ctx.stagedBytes(-info.bytes, false);
            this.ctx.snapshotLost(gen, err);
          }
          throw err;
        }
        return { body: () => fs.createReadStream(file), options: { metadata, contentLength: info.bytes } };
      },
      onDone: () => {
        gen.snapshot = 'uploaded';
        this.ctx.stagedBytes(-info.bytes, false);
        // Recorded before the staged copy goes: a restart never sees "staged" without the file.
        this.ctx.save();
        void this.ctx.staging.remove(gen.id, info.name).catch((err: unknown) => this.ctx.errors.report('removing an uploaded snapshot', err));
        this.queueCounter(gen);
      },
    });
  }

  queueCounter(gen: Generation): void {
    const info = gen.snapshotInfo;
    if (!info || gen.counterUploaded) return;
    const body = encodeChangeCounter(info.changeCounter);
    this.push(gen, {
      key: changeCounterKey(this.ctx.dbName, gen.id),
      kind: 'changecounter',
      load: () => ({ body }),
      onDone: () => {
        gen.counterUploaded = true;
        this.ctx.save();
      },
    });
  }

  /** The generation's starting point is in the store: its snapshot, or `.dep` to a complete parent. */
  baseOk(gen: Generation, seen = 0): boolean {
    if (gen.baseDurable) return true;
    let ok = gen.snapshot === 'uploaded';
    if (!ok && gen.parent !== null && gen.depUploaded && seen < 1000) {
      const parent = this.ctx.generations().find((g) => g.id === gen.parent);
      // A parent no longer tracked finished its upload (generations are dropped only then).
      ok = parent === undefined || (this.complete(parent) && this.baseOk(parent, seen + 1));
    }
    if (ok) gen.baseDurable = true;
    return ok;
  }

  /** Sealed, and every frame, `.meta` and `.dep` of it is in the store. */
  complete(gen: Generation): boolean {
    return gen.sealed && !gen.damaged && gen.durableIndex === gen.lastIndex && gen.headerDurable;
  }

  /**
   * The generations to keep: a generation goes once it is sealed, nothing of it is pending (`busy`,
   * uploads), its last marker is written, and it is complete or older than one whose base is durable.
   */
  prunable(gens: readonly Generation[], busy: (g: Generation) => boolean): Generation[] {
    const newestBase = gens.findLastIndex((g) => this.baseOk(g));
    return gens.filter((g, i) => {
      if (!g.sealed || busy(g) || this.pendingFor(g) > 0) return true;
      const complete = this.complete(g);
      const markerFinal = g.durableIndex === 0 || (g.marker !== null && g.marker.index === g.durableIndex && g.marker.sealed === complete);
      return !(markerFinal && ((complete && this.baseOk(g)) || i < newestBase));
    });
  }

  /** Log frame number up to which a restore of the store reaches now, null when it reaches nothing. */
  lastDurableFrameNo(): bigint | null {
    const gens = this.ctx.generations();
    for (let i = gens.length - 1; i >= 0; i--) {
      const g = gens[i]!;
      if (g.logId !== this.ctx.logId()) break;
      if (g.headerDurable && this.baseOk(g)) return g.frameNo(g.durableIndex);
    }
    return null;
  }

  /**
   * Writes durable markers where they changed: at once when `force` (flush, shutdown) or a
   * generation just became complete, else at most once per debounce interval.
   */
  markers(force: boolean): void {
    if (this.ctx.stopped()) return;
    const due = this.ctx.generations().filter((g) => this.markerWanted(g));
    if (due.length === 0) return;
    const now = this.ctx.now();
    const urgent = force || due.some((g) => this.complete(g));
    if (!urgent && now - this.lastMarkerAt < this.ctx.markerDebounceMs) {
      this.markerTimer.arm(this.ctx.markerDebounceMs - (now - this.lastMarkerAt), () => this.markers(false));
      return;
    }
    this.markerTimer.clear();
    this.lastMarkerAt = now;
    for (const g of due) this.queueMarker(g);
  }

  private markerWanted(g: Generation): boolean {
    if (this.markersQueued.has(g) || g.durableIndex === 0) return false;
    const m = g.marker;
    return m === null || m.index !== g.durableIndex || m.sealed !== this.complete(g);
  }

  private queueMarker(g: Generation): void {
    this.markersQueued.add(g);
    let sent: { index: number; sealed: boolean } | null = null;
    this.push(g, {
      key: durableMarkerKey(this.ctx.dbName, g.id),
      kind: 'marker',
      load: () => {
        sent = { index: g.durableIndex, sealed: this.complete(g) };
        const coords = g.coords;
        const body = encodeDurableMarker({
          logId: this.ctx.logId(),
          lastFrame: sent.index,
          lastFrameNo: g.frameNo(sent.index),
          sealed: sent.sealed,
          at: new Date(this.ctx.now()),
          // What .meta and .dep hold: a restore then reads this object alone.
          ...(coords === null ? {} : { meta: { pageSize: coords.pageSize, checksum: coords.seed } }),
          parent: g.parent,
        });
        return { body };
      },
      onDone: () => {
        this.markersQueued.delete(g);
        g.marker = sent;
      },
    });
  }
}
