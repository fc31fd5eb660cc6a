import { errorMessage, guardedInterval, type Logger } from '../logger.js';
import type { LockHolder } from '../write-lock.js';
import type { CheckpointedEvent } from './transactions.js';

/**
 * A party to checkpoints (bottomless): a checkpoint ends a WAL generation, and whoever ships WAL
 * frames must have them first. Two phases: `prepare` runs outside the write lock, so commits go on
 * while it works (bounded by the policy's `prepareTimeoutMs`: a slow participant delays a checkpoint,
 * never a commit); `handOver` runs under the write lock, synchronously, and takes the remainder —
 * frames up to `upTo` are final. `handOver` returning false vetoes this checkpoint (retried later,
 * except the final one at close, `final: true`).
 */
export interface CheckpointParticipant {
  readonly name: string;
  prepare?(upTo: bigint | null, signal: AbortSignal): Promise<void>;
  handOver?(upTo: bigint | null, opts: { final: boolean }): boolean | void;
  onCheckpointed?(event: CheckpointedEvent): void;
}

/** When checkpoints run (docs/REPLICATION_LOG.md "Checkpoints"). */
export interface CheckpointPolicy {
  /** `--checkpoint-interval-s` in ms; null = no periodic checkpoint. */
  intervalMs: number | null;
  /** Checkpoint once this many WAL bytes wait (4 MB ≈ SQLite's own 1000-page auto-checkpoint). */
  walBytes: number;
  /** Longest a participant's `prepare` may delay a checkpoint. */
  prepareTimeoutMs: number;
}

/** What the checkpointer drives (frame capture and the namespace's write lock). */
export interface CheckpointTarget {
  pendingWalBytes(): number;
  replicationIndex(): bigint | null;
  /** Capture + checkpoint with the write lock held; null when refused. */
  checkpointLocked(): { event: CheckpointedEvent; complete: boolean } | null;
  acquireWriteLock(holder: LockHolder, signal?: AbortSignal): Promise<void>;
  tryAcquireWriteLock(holder: LockHolder): boolean;
  releaseWriteLock(holder: LockHolder): void;
}

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

/**
 * The one place checkpoints are decided and run. Triggers: WAL size (checked after every commit),
 * the interval, requests (admin API, tests), shutdown. With no participant that prepares, a commit
 * that pushes the WAL past the size threshold checkpoints right in the commit path (the committing
 * connection still holds the write lock, as SQLite's auto-checkpoint would); otherwise the
 * preparation runs first and the checkpoint queues for the write lock like any writer. A refused
 * checkpoint (readers pinning old frames) is retried by a timer with backoff.
 */
export class Checkpointer implements LockHolder {
  private readonly participants = new Set<CheckpointParticipant>();
  private readonly listeners = new Set<(e: CheckpointedEvent) => void>();
  private running: Promise<boolean> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay = RETRY_MIN_MS;
  private readonly interval: NodeJS.Timeout | null;
  private readonly abort = new AbortController();
  private closed = false;
  /** Completed checkpoints (tests, metrics). */
  count = 0;

  constructor(
    private readonly target: CheckpointTarget,
    private readonly policy: CheckpointPolicy,
    private readonly logger: Logger,
    private readonly namespace: string,
  ) {
    this.interval =
      policy.intervalMs === null
        ? null
        : guardedInterval(logger, `namespace ${namespace}: periodic checkpoint`, policy.intervalMs, () => {
            if (target.pendingWalBytes() > 0) void this.request();
          });
  }

  addParticipant(p: CheckpointParticipant): () => void {
    this.participants.add(p);
    return () => this.participants.delete(p);
  }

  /** "WAL generation N ends at frame F", after every checkpoint. */
  onCheckpointed(fn: (e: CheckpointedEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** After a commit (write lock held by the committer). Never waits and never throws. */
  afterCommit(): void {
    if (this.closed || this.target.pendingWalBytes() < this.policy.walBytes) return;
    if (this.running || this.retryTimer) return;
    if (this.needsPreparation()) {
      void this.request();
      return;
    }
    let done = false;
    try {
      done = this.checkpointWithLock();
    } catch (err) {
      this.logger.error({ err }, `namespace ${this.namespace}: checkpoint failed: ${errorMessage(err)}`);
    }
    if (!done) this.scheduleRetry();
  }

  /**
   * Checkpoints as soon as possible: participants prepare, then the checkpoint queues for the write
   * lock. Resolves true when it completed; concurrent requests share one run.
   */
  request(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  /** Checkpoints now only if the write lock is free (synchronous); false when refused. */
  tryNow(): boolean {
    if (this.closed || this.needsPreparation() || !this.target.tryAcquireWriteLock(this)) return false;
    try {
      return this.checkpointWithLock();
    } catch (err) {
      this.logger.error({ err }, `namespace ${this.namespace}: checkpoint failed: ${errorMessage(err)}`);
      return false;
    } finally {
      this.target.releaseWriteLock(this);
    }
  }

  /** Internal lock holder: a checkpoint never overstays, nothing to preempt. */
  preempt(): void {}

  /** Stops the timers and runs the final checkpoint (prepared like any other). */
  async close(): Promise<boolean> {
    if (this.closed) return false;
    if (this.interval) clearInterval(this.interval);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.running?.catch(() => false);
    let done = false;
    try {
      done = await this.run(true);
    } catch (err) {
      this.logger.error({ err }, `namespace ${this.namespace}: final checkpoint failed: ${errorMessage(err)}`);
    }
    this.closed = true;
    this.abort.abort(new Error('closing'));
    return done;
  }

  private needsPreparation(): boolean {
    for (const p of this.participants) if (p.prepare) return true;
    return false;
  }

  private async run(final = false): Promise<boolean> {
    try {
      await this.prepareAll();
      await this.target.acquireWriteLock(this, this.abort.signal);
    } catch (err) {
      // The lock was closed (shutdown) or the wait aborted: no checkpoint this time.
      this.logger.debug({ err }, `namespace ${this.namespace}: checkpoint not run: ${errorMessage(err)}`);
      return false;
    }
    let done = false;
    try {
      done = this.checkpointWithLock(final);
    } catch (err) {
      this.logger.error({ err }, `namespace ${this.namespace}: checkpoint failed: ${errorMessage(err)}`);
    } finally {
      this.target.releaseWriteLock(this);
    }
    if (!done && !final) this.scheduleRetry();
    return done;
  }

  private async prepareAll(): Promise<void> {
    const upTo = this.target.replicationIndex();
    const preparing = [...this.participants].filter((p) => p.prepare !== undefined);
    if (preparing.length === 0) return;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error('checkpoint preparation timed out')), this.policy.prepareTimeoutMs);
    timer.unref();
    try {
      await Promise.all(
        preparing.map((p) =>
          Promise.race([
            // Through a promise, so a prepare that throws synchronously is caught like one that rejects.
            Promise.resolve().then(() => p.prepare?.(upTo, timeout.signal)),
            new Promise<void>((resolve) => timeout.signal.addEventListener('abort', () => resolve(), { once: true })),
          ]).catch((err: unknown) => this.logger.warn({ err }, `namespace ${this.namespace}: checkpoint participant ${p.name} failed to prepare: ${errorMessage(err)}`)),
        ),
      );
    } finally {
      clearTimeout(timer);
      timeout.abort();
    }
  }

  /** Hand-over, checkpoint, event. The write lock is held. */
  private checkpointWithLock(final = false): boolean {
    const upTo = this.target.replicationIndex();
    for (const p of this.participants) {
      if (p.handOver?.(upTo, { final }) === false) return false;
    }
    const result = this.target.checkpointLocked();
    if (result === null) return false;
    if (result.complete) {
      this.count += 1;
      this.retryDelay = RETRY_MIN_MS;
    }
    for (const p of this.participants) this.notify(() => p.onCheckpointed?.(result.event), p.name);
    for (const fn of this.listeners) this.notify(() => fn(result.event), 'listener');
    return result.complete;
  }

  private notify(fn: () => void, who: string): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, `namespace ${this.namespace}: checkpoint ${who} failed on the checkpointed event: ${errorMessage(err)}`);
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.request().catch((err: unknown) => this.logger.error({ err }, `namespace ${this.namespace}: checkpoint failed: ${errorMessage(err)}`));
    }, delay);
    this.retryTimer.unref();
  }
}
