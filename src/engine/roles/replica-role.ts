/**
 * The replica role: the database is kept in rollback-journal mode and changed only by the frame
 * applier (design.md §5); client writes are refused. `follow()` consumes a FrameSource (batching the
 * whole transactions that are already there), `waitForIndex()` serves read-your-writes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import type { FrameSource } from '../pipeline/frame-source.js';
import type { LoggedTransaction } from '../pipeline/transactions.js';
import type { ApplierCrashPoint } from '../replica/crash-points.js';
import { FrameApplier } from '../replica/frame-applier.js';
import { SqlError } from '../sql-error.js';
import type { DbRole, JournalMode, RoleHost } from './role.js';

export interface ReplicaRoleOptions {
  /** How long an open read transaction may hold up an apply before it is rolled back (ms, 200). */
  readGraceMs?: number;
  /** At most this many frames per applied batch (a larger single transaction is applied alone). */
  maxBatchFrames?: number;
  /** Tests only (FrameApplierOptions.crashHook). */
  crashHook?: (point: ApplierCrashPoint) => void;
  /** Tests only: wait this long before applying each batch (a slow replica). */
  applyDelayMs?: number;
}

const DEFAULT_MAX_BATCH_FRAMES = 1024;
const MAX_BATCH_TRANSACTIONS = 1000;
const SNAPSHOT_RETRY_MS: readonly [number, number] = [50, 2000];
const TURN = Symbol('turn');

interface IndexWaiter {
  frameNo: bigint;
  resolve: () => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** Resolves with TURN after the current turn of the event loop (what is already there resolves first). */
function nextTurn(): Promise<typeof TURN> {
  return new Promise((resolve) => setImmediate(resolve, TURN));
}

export class ReplicaRole implements DbRole {
  readonly kind = 'replica';
  readonly journalMode: JournalMode = 'rollback';
  readonly #opts: ReplicaRoleOptions;
  readonly #maxBatchFrames: number;
  #applier: FrameApplier | null = null;
  #logger: Logger | null = null;
  readonly #waiters = new Set<IndexWaiter>();
  /** Aborted by close(): ends every follow loop. */
  readonly #closing = new AbortController();
  readonly #following = new Set<Promise<void>>();

  constructor(opts: ReplicaRoleOptions = {}) {
    this.#opts = opts;
    this.#maxBatchFrames = opts.maxBatchFrames ?? DEFAULT_MAX_BATCH_FRAMES;
  }

  async open(host: RoleHost): Promise<void> {
    this.#logger = host.logger;
    this.#applier = await FrameApplier.open({
      paths: host.paths,
      files: host.files,
      logger: host.logger,
      openTransactions: () => host.openTransactions(),
      readGraceMs: this.#opts.readGraceMs,
      crashHook: this.#opts.crashHook,
    });
  }

  beforeWrite(): void {
    throw new SqlError('SQLITE_READONLY', 'SQLite error: this database is a read-only replica; send writes to the primary');
  }

  afterCommit(): void {}

  replicationIndex(): bigint | null {
    return this.#applier?.appliedFrameNo ?? null;
  }

  /** The log the replica follows (null before its first frames). */
  logId(): string | null {
    return this.#applier?.logId ?? null;
  }

  /**
   * Applies `source`'s transactions until `signal` aborts (then resolves) or the source ends. A source
   * of another log than the replica's, or a LOG_CHANGED from it, empties the replica and starts
   * again from frame 0; NEED_SNAPSHOT is answered with the source's snapshot. Other errors reject.
   */
  async follow(source: FrameSource, signal: AbortSignal): Promise<void> {
    const run = this.#follow(source, AbortSignal.any([signal, this.#closing.signal]));
    this.#following.add(run);
    try {
      await run;
    } finally {
      this.#following.delete(run);
    }
  }

  /** Resolves once the replica has applied frame `frameNo` (rejects when `signal` aborts or on close). */
  waitForIndex(frameNo: bigint, signal?: AbortSignal): Promise<void> {
    const applied = this.replicationIndex();
    if (applied !== null && applied >= frameNo) return Promise.resolve();
    if (this.#closing.signal.aborted) return Promise.reject(new Error('the replica is closed'));
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter: IndexWaiter = { frameNo, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          this.#waiters.delete(waiter);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.add(waiter);
    });
  }

  async close(): Promise<void> {
    this.#closing.abort(new Error('the replica is closing'));
    await Promise.allSettled([...this.#following]);
    for (const w of [...this.#waiters]) this.#settle(w, new Error('the replica is closed'));
    try {
      await this.#applier?.flush();
    } catch (err) {
      this.#logger?.error({ err }, 'the replica database could not be synced at close');
    }
    this.#applier?.close();
  }

  #requireApplier(): FrameApplier {
    if (this.#applier === null) throw new Error('the replica role is not open');
    return this.#applier;
  }

  async #follow(source: FrameSource, signal: AbortSignal): Promise<void> {
    const applier = this.#requireApplier();
    let needSnapshot = false;
    while (!signal.aborted) {
      try {
        if (applier.logId !== source.logId) {
          await applier.reset(source.logId, signal);
          this.#notify();
        }
        if (needSnapshot) {
          needSnapshot = false;
          await this.#catchUpFromSnapshot(applier, source, signal);
        }
        await this.#consume(applier, source, signal);
        return; // the source ended
      } catch (err) {
        if (signal.aborted) return;
        const code = codeOf(err);
        if (code === 'NEED_SNAPSHOT') {
          this.#logger?.info({ nextFrameNo: applier.nextFrameNo.toString() }, 'the frames the replica needs were compacted away; fetching a snapshot');
          needSnapshot = true;
        }
        else if (code === 'LOG_CHANGED' && source.logId !== applier.logId) {
          this.#logger?.info({ logId: source.logId }, 'the primary started a new log; the replica starts over');
        } else throw err;
      }
    }
  }

  /** One pass over `source.transactions(next)`; applies what is already there as one batch. */
  async #consume(applier: FrameApplier, source: FrameSource, signal: AbortSignal): Promise<void> {
    const local = new AbortController();
    const it = source.transactions(applier.nextFrameNo, AbortSignal.any([signal, local.signal]))[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<LoggedTransaction>> | null = null;
    try {
      for (;;) {
        const first: IteratorResult<LoggedTransaction> = await (pending ?? it.next());
        pending = null;
        if (first.done === true) return;
        const batch = [first.value];
        let frames = first.value.frames.length;
        let failure: { err: unknown } | null = null;
        let ended = false;
        while (frames < this.#maxBatchFrames && batch.length < MAX_BATCH_TRANSACTIONS) {
          pending = it.next();
          let r: IteratorResult<LoggedTransaction> | typeof TURN;
          try {
            r = await Promise.race([pending, nextTurn()]);
          } catch (err) {
            pending = null;
            failure = { err };
            break;
          }
          if (r === TURN) break; // nothing more yet: `pending` is the next round's first
          pending = null;
          if (r.done === true) {
            ended = true;
            break;
          }
          if (frames + r.value.frames.length > this.#maxBatchFrames) {
            pending = Promise.resolve(r);
            break;
          }
          batch.push(r.value);
          frames += r.value.frames.length;
        }
        if (this.#opts.applyDelayMs) await sleep(this.#opts.applyDelayMs, undefined, { signal });
        await applier.apply(batch, signal);
        this.#notify();
        if (failure !== null) throw failure.err;
        if (ended) return;
      }
    } finally {
      local.abort(new Error('the replica stopped reading'));
      if (pending !== null) void pending.catch(() => undefined);
    }
  }

  async #catchUpFromSnapshot(applier: FrameApplier, source: FrameSource, signal: AbortSignal): Promise<void> {
    let delay = SNAPSHOT_RETRY_MS[0];
    for (;;) {
      const ref = await source.snapshotFor(applier.nextFrameNo);
      if (ref !== null) {
        try {
          await applier.applySnapshot(ref, source.snapshotFrames(ref), signal);
        } finally {
          source.releaseSnapshot?.(ref);
        }
        this.#logger?.info(
          { frames: ref.frameCount.toString(), range: `${ref.startFrameNo}-${ref.endFrameNo}`, pages: ref.sizeAfter },
          'the replica caught up from a snapshot of the primary log',
        );
        this.#notify();
        return;
      }
      this.#logger?.debug({ frameNo: applier.nextFrameNo.toString() }, 'no snapshot yet for the replica; retrying');
      try {
        await sleep(delay, undefined, { signal });
      } catch (err) {
        signal.throwIfAborted();
        throw err;
      }
      delay = Math.min(delay * 2, SNAPSHOT_RETRY_MS[1]);
    }
  }

  #notify(): void {
    const applied = this.replicationIndex();
    if (applied === null) return;
    for (const w of this.#waiters) if (w.frameNo <= applied) this.#settle(w, null);
  }

  #settle(w: IndexWaiter, err: unknown): void {
    this.#waiters.delete(w);
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
    if (err === null) w.resolve();
    else w.reject(err);
  }
}
