/**
 * Puts to the store, at most `parallel` at a time, each failure retried with exponential backoff and
 * jitter (base → max, forever while the queue runs). Nothing here throws into a timer or a stream
 * callback: a failure is counted and logged once per cause (ErrorTracker), and the job waits.
 *
 * Retry pacing uses real (monotonic) time, not the uploader's Clock: it decides when to ask the
 * store again, not what any object says.
 */
import { performance } from 'node:perf_hooks';
import type { BackupStorage, PutBody, PutOptions } from '../storage/storage.js';
import { type ErrorTracker, TimerSlot, type Timers } from './clock.js';

export type JobKind = 'batch' | 'meta' | 'dep' | 'snapshot' | 'changecounter' | 'marker';

export interface UploadJob {
  key: string;
  kind: JobKind;
  /** Body and options, built for every attempt (a staged file is read again). */
  load(): Promise<{ body: PutBody; options?: PutOptions }> | { body: PutBody; options?: PutOptions };
  /** After the put succeeded. Exceptions are logged. */
  onDone: () => void;
  /** Set when the job is no longer wanted: it is not started (again). */
  cancelled?: boolean;
  /** Maintained by the queue: a put of it is under way. */
  inFlight?: boolean;
}

export interface UploadQueueOptions {
  storage: BackupStorage;
  parallel: number;
  timers: Timers;
  errors: ErrorTracker;
  retryBaseMs: number;
  retryMaxMs: number;
  random?: () => number;
  /** Called whenever the queue becomes empty. */
  onIdle?: () => void;
}

interface Waiting {
  job: UploadJob;
  failures: number;
  at: number;
}

export class UploadQueue {
  private readonly ready: Waiting[] = [];
  private readonly waiting: Waiting[] = [];
  private running = 0;
  private stopped = false;
  private busy = false;
  private readonly retry: TimerSlot;
  private readonly idleWaiters: (() => void)[] = [];
  /** Successful puts (metrics, tests). */
  puts = 0;

  constructor(private readonly opts: UploadQueueOptions) {
    this.retry = new TimerSlot(opts.timers, (err) => opts.errors.report('upload retry', err));
  }

  /** Jobs queued, running or waiting for a retry. */
  get pending(): number {
    return this.ready.length + this.waiting.length + this.running;
  }

  get timerArmed(): boolean {
    return this.retry.armed;
  }

  /** True when some job has failed and waits for its retry. */
  get backingOff(): boolean {
    return this.waiting.length > 0;
  }

  push(job: UploadJob): void {
    if (this.stopped) return;
    this.busy = true;
    this.ready.push({ job, failures: 0, at: 0 });
    this.pump();
  }

  /** Resolves once nothing is queued, running or waiting (or the queue stopped). */
  idle(): Promise<void> {
    if (this.pending === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** No new puts from now on; running ones settle unobserved. Waiters are released. */
  stop(): void {
    this.stopped = true;
    this.retry.clear();
    this.ready.length = 0;
    this.waiting.length = 0;
    this.releaseWaiters();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.parallel && this.ready.length > 0) {
      const w = this.ready.shift()!;
      if (w.job.cancelled) continue;
      this.running += 1;
      void this.attempt(w).finally(() => {
        this.running -= 1;
        this.pump();
        this.checkIdle();
      });
    }
    this.checkIdle();
  }

  private async attempt(w: Waiting): Promise<void> {
    const { job } = w;
    const step = job.kind === 'snapshot' ? 'snapshot upload' : 'upload';
    job.inFlight = true;
    try {
      const { body, options } = await job.load();
      await this.opts.storage.put(job.key, body, options);
    } catch (err) {
      job.inFlight = false;
      if (this.stopped || job.cancelled) return;
      this.opts.errors.report(step, err);
      w.failures += 1;
      const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(30, w.failures - 1));
      const random = this.opts.random ?? Math.random;
      w.at = performance.now() + delay / 2 + (random() * delay) / 2;
      this.waiting.push(w);
      this.armRetry();
      return;
    }
    job.inFlight = false;
    if (this.stopped) return;
    this.puts += 1;
    this.opts.errors.recovered(step);
    try {
      job.onDone();
    } catch (err) {
      this.opts.errors.report(`after uploading ${job.key}`, err);
    }
  }

  private armRetry(): void {
    if (this.stopped || this.waiting.length === 0 || this.retry.armed) return;
    const next = Math.min(...this.waiting.map((w) => w.at));
    this.retry.arm(next - performance.now(), () => {
      const now = performance.now();
      const due = this.waiting.filter((w) => w.at <= now);
      for (const w of due) this.waiting.splice(this.waiting.indexOf(w), 1);
      // Retries go first: they are the oldest work.
      this.ready.unshift(...due);
      this.pump();
      this.armRetry();
    });
  }

  private checkIdle(): void {
    if (this.pending !== 0 || !this.busy) return;
    this.busy = false;
    this.releaseWaiters();
    try {
      this.opts.onIdle?.();
    } catch (err) {
      this.opts.errors.report('after the upload queue drained', err);
    }
  }

  private releaseWaiters(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
