/**
 * Fault injection seam: the engine calls `faults.at(point)` right before the file operation a point
 * names, and a test's injector may throw there (e.g. an ENOSPC error). Production uses `noFaults`.
 * This exists for faults that cannot be caused for real in a test (a full disk at one exact write);
 * it replaces nothing else (no monkey-patched `fs`).
 */
export type FaultPoint =
  /** Appending a transaction's frames to the replication log (capture). */
  | 'log-append'
  /** The deferred write of the log header (once per event-loop turn). */
  | 'log-flush'
  /** Swapping in a new log and building a snapshot from the old one. */
  | 'compaction'
  /** The engine's periodic outside-writer poll (stands for any engine timer: they share one error boundary). */
  | 'timer'
  /** Opening or recovering the replication log at start-up. */
  | 'startup'
  /** Rewriting `wallog-capture`. */
  | 'capture-state';

export interface FaultInjector {
  at(point: FaultPoint): void;
}

export const noFaults: FaultInjector = { at: () => {} };

/** An `ENOSPC` error as Node's fs would raise it. */
export function enospc(what = 'write'): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`ENOSPC: no space left on device, ${what}`);
  err.code = 'ENOSPC';
  err.errno = -28;
  err.syscall = what;
  return err;
}

/** A test injector: `arm(point)` makes every call at that point throw ENOSPC until `disarm`. */
export class DiskFullFaults implements FaultInjector {
  private readonly armed = new Set<FaultPoint>();
  readonly hits = new Map<FaultPoint, number>();

  arm(...points: FaultPoint[]): void {
    for (const p of points) this.armed.add(p);
  }

  disarm(...points: FaultPoint[]): void {
    if (points.length === 0) this.armed.clear();
    for (const p of points) this.armed.delete(p);
  }

  at(point: FaultPoint): void {
    if (!this.armed.has(point)) return;
    this.hits.set(point, (this.hits.get(point) ?? 0) + 1);
    throw enospc(point);
  }
}
