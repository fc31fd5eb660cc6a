/**
 * The per-namespace write lock (design.md §6). SQLite connections run with busy_timeout = 0, so a
 * writer must never reach SQLite while another connection holds the write transaction: it awaits this
 * FIFO lock instead. A holder that keeps the lock longer than the transaction timeout while someone
 * waits is preempted (its transaction rolled back) through the `preempt` callback it registered.
 */

export interface LockHolder {
  /** Roll back the holder's transaction; called when it overstays while others wait. */
  preempt(): void;
}

interface Waiter {
  holder: LockHolder;
  resolve: () => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class WriteLock {
  private current: LockHolder | null = null;
  private acquiredAt = 0;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private txnTimeoutMs: number) {}

  /** Changes the steal timeout (a namespace's `txn_timeout_s`); a waiting writer's timer follows it. */
  setTimeoutMs(ms: number): void {
    if (ms === this.txnTimeoutMs) return;
    this.txnTimeoutMs = ms;
    this.clearTimer();
    this.armTimer();
  }

  get holder(): LockHolder | null {
    return this.current;
  }

  get waiting(): number {
    return this.queue.length;
  }

  isHeldBy(holder: LockHolder): boolean {
    return this.current === holder;
  }

  /** Resolves once `holder` owns the lock. Re-entrant: resolves at once if it already does. */
  acquire(holder: LockHolder, signal?: AbortSignal): Promise<void> {
    if (this.current === holder) return Promise.resolve();
    if (this.current === null && this.queue.length === 0) {
      this.grant(holder);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { holder, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        if (signal.aborted) {
          reject(abortReason(signal));
          return;
        }
        waiter.onAbort = () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.push(waiter);
      this.armTimer();
    });
  }

  /** Synchronous acquire for internal jobs (checkpoints): succeeds only when the lock is free. */
  tryAcquire(holder: LockHolder): boolean {
    if (this.current === holder) return true;
    if (this.current !== null || this.queue.length > 0) return false;
    this.grant(holder);
    return true;
  }

  release(holder: LockHolder): void {
    if (this.current !== holder) return;
    this.current = null;
    this.clearTimer();
    this.grantNext();
  }

  /** Fails every waiter (used at shutdown). */
  close(err: Error): void {
    this.clearTimer();
    for (const w of this.queue.splice(0)) {
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.reject(err);
    }
  }

  private grant(holder: LockHolder): void {
    this.current = holder;
    this.acquiredAt = Date.now();
    this.armTimer();
  }

  private grantNext(): void {
    const next = this.queue.shift();
    if (!next) return;
    if (next.signal && next.onAbort) next.signal.removeEventListener('abort', next.onAbort);
    this.grant(next.holder);
    next.resolve();
  }

  private armTimer(): void {
    if (this.timer || this.current === null || this.queue.length === 0) return;
    const due = Math.max(0, this.acquiredAt + this.txnTimeoutMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onTimeout();
    }, due);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimeout(): void {
    const holder = this.current;
    if (holder === null || this.queue.length === 0) return;
    if (Date.now() - this.acquiredAt < this.txnTimeoutMs) {
      this.armTimer();
      return;
    }
    // The holder's preempt() rolls back its transaction and calls release(), which grants the next waiter.
    holder.preempt();
    if (this.current === holder) this.release(holder);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
