/**
 * Output buffers for decoded batches, reused from one batch to the next. A restore decodes its
 * batches' frames (often a hundred megabytes and more) a few batches ahead of the one it applies;
 * a fresh buffer per batch is memory the kernel must hand over page by page and the collector must
 * account for, where a handful of buffers serve the whole restore.
 */

/** Sizes are rounded up to this, so that batches of slightly different sizes share buffers. */
const GRAIN = 64 * 1024;

export class BufferPool {
  private readonly free: Buffer[] = [];

  /** `keep`: free buffers held at most (the largest are kept). */
  constructor(private readonly keep: number) {}

  /** A buffer of at least `bytes` (its contents are whatever it held before). */
  take(bytes: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.length;
      if (len >= bytes && (best < 0 || len < this.free[best]!.length)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    return Buffer.allocUnsafeSlow(Math.ceil(Math.max(1, bytes) / GRAIN) * GRAIN);
  }

  /** Gives `buf` back: nothing may read or write it any more. */
  give(buf: Buffer): void {
    this.free.push(buf);
    if (this.free.length > this.keep) {
      this.free.sort((a, b) => b.length - a.length);
      this.free.length = this.keep;
    }
  }

  /** Free buffers held (for tests). */
  get size(): number {
    return this.free.length;
  }
}
