/**
 * Stages cut batches in order: encode, compress, write a temp file and fsync it (off the event loop),
 * rename it to its object name, fsync the folder, report it staged. A checkpoint's hand-over takes
 * whatever is left synchronously (`stageAllSync`), including a batch the worker is in the middle of:
 * the worker notices and throws its copy away, so every range is staged under exactly one name.
 */
import { errorMessage } from '../../engine/logger.js';
import type { Compression } from '../format/layout.js';
import type { BatchItem } from './batch.js';
import { type ErrorTracker, TimerSlot, type Timers } from './clock.js';
import { headersName, type StagingDir } from './staging.js';

export interface StagerOptions {
  staging: StagingDir;
  compression: Compression;
  errors: ErrorTracker;
  timers: Timers;
  /** A batch is staged (called synchronously, once per batch, in order). */
  onStaged(item: BatchItem): void;
  /** True once the uploader stopped: nothing more is written. */
  stopped(): boolean;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 10_000;

export class Stager {
  private readonly queue: BatchItem[] = [];
  private working = false;
  private readonly retry: TimerSlot;
  private retryDelay = RETRY_MIN_MS;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly opts: StagerOptions) {
    this.retry = new TimerSlot(opts.timers, (err) => opts.errors.report('staging', err));
  }

  /** Batches cut but not yet staged. */
  get length(): number {
    return this.queue.length;
  }

  /** Raw bytes of page data waiting in memory. */
  get memoryBytes(): number {
    let n = 0;
    for (const item of this.queue) n += item.memoryBytes;
    return n;
  }

  get timerArmed(): boolean {
    return this.retry.armed;
  }

  /** The queued batches, oldest first (the size cap drops from the front). */
  items(): readonly BatchItem[] {
    return this.queue;
  }

  push(item: BatchItem): void {
    item.state = 'queued';
    this.queue.push(item);
    this.kick();
  }

  /** Removes a queued batch that will never be staged (size cap). */
  drop(item: BatchItem): void {
    const i = this.queue.indexOf(item);
    if (i >= 0) this.queue.splice(i, 1);
    item.state = 'dropped';
    item.payload = null;
    this.notifyIfEmpty();
  }

  /** Resolves when the queue is empty (or the uploader stopped). */
  drained(): Promise<void> {
    if (this.queue.length === 0 || this.opts.stopped()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stages every queued batch now, synchronously. Throws on the first failure (the rest stay queued). */
  stageAllSync(): void {
    while (this.queue.length > 0 && !this.opts.stopped()) {
      const item = this.queue[0]!;
      if (item.state !== 'placed') {
        const { data, compression } = item.compressedSync(this.opts.compression);
        const name = item.objectName(compression);
        this.opts.staging.writeSync(item.gen.id, headersName(name), Buffer.from(JSON.stringify(item.metadata)));
        this.opts.staging.writeSync(item.gen.id, name, data);
        item.name = name;
        item.bytes = data.length;
        item.state = 'placed';
      }
      this.finish(item);
    }
  }

  stop(): void {
    this.retry.clear();
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private kick(): void {
    if (this.working || this.retry.armed || this.opts.stopped()) return;
    this.working = true;
    void this.work().finally(() => {
      this.working = false;
    });
  }

  private async work(): Promise<void> {
    while (this.queue.length > 0 && !this.opts.stopped()) {
      const item = this.queue[0]!;
      try {
        await this.stageOne(item);
        this.retryDelay = RETRY_MIN_MS;
        this.opts.errors.recovered('staging');
      } catch (err) {
        if (this.opts.stopped()) return;
        this.opts.errors.report('staging', err);
        const delay = this.retryDelay;
        this.retryDelay = Math.min(RETRY_MAX_MS, this.retryDelay * 2);
        this.retry.arm(delay, () => this.kick());
        return;
      }
    }
  }

  private async stageOne(item: BatchItem): Promise<void> {
    if (item.state === 'placed') {
      this.finish(item);
      return;
    }
    item.state = 'writing';
    const c = item.compressionFor(this.opts.compression);
    const data = await item.compressed(c);
    if (item.state !== 'writing' || this.opts.stopped()) return;
    const headers = await this.opts.staging.writeTemp(item.gen.id, Buffer.from(JSON.stringify(item.metadata)));
    const tmp = await this.opts.staging.writeTemp(item.gen.id, data).catch((err: unknown) => {
      this.opts.staging.discard(headers);
      throw err;
    });
    // Taken over by a hand-over (or dropped) meanwhile: its copy stands, this one goes.
    if (item.state !== 'writing' || this.opts.stopped()) {
      this.opts.staging.discard(headers);
      this.opts.staging.discard(tmp);
      return;
    }
    const name = item.objectName(c);
    this.opts.staging.place(headers, item.gen.id, headersName(name));
    this.opts.staging.place(tmp, item.gen.id, name);
    item.name = name;
    item.bytes = data.length;
    item.state = 'placed';
    this.finish(item);
  }

  /** A placed batch leaves the queue and is reported (synchronously). */
  private finish(item: BatchItem): void {
    if (this.queue[0] !== item) throw new Error(`batch ${item.firstIndex}-${item.lastIndex} staged out of order`);
    this.queue.shift();
    item.state = 'staged';
    item.payload = null;
    try {
      this.opts.onStaged(item);
    } catch (err) {
      this.opts.errors.report('recording a staged batch', new Error(errorMessage(err), { cause: err }));
    }
    this.notifyIfEmpty();
  }

  private notifyIfEmpty(): void {
    if (this.queue.length === 0) for (const resolve of this.waiters.splice(0)) resolve();
  }
}
