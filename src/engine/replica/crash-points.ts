/**
 * Where the frame applier can be made to "crash" (tests only; production passes no hook):
 *
 * - `after-redo`: the redo file is written and synced, the database is untouched;
 * - `during-pages`: about half of the batch's pages are in the database file, page 1 is not patched;
 * - `before-index`: the batch is committed in the database, `client_wal_index` still has the old index.
 *
 * The hook is called synchronously at that point of every applied batch; a test's hook kills the
 * process (or throws) at the one it wants.
 */
export type ApplierCrashPoint = 'after-redo' | 'during-pages' | 'before-index';

export const APPLIER_CRASH_POINTS: readonly ApplierCrashPoint[] = ['after-redo', 'during-pages', 'before-index'];

export interface CrashAt {
  point: ApplierCrashPoint;
  /** 1-based: crash at that point of the n-th applied batch. */
  after: number;
}

function isCrashPoint(value: string): value is ApplierCrashPoint {
  return (APPLIER_CRASH_POINTS as readonly string[]).includes(value);
}

/**
 * Parses `point` or `point:n` (e.g. `during-pages:3`: at that point of the 3rd applied batch; `n`
 * defaults to 1). Undefined or empty means no crash; anything else malformed throws.
 */
export function parseCrashAt(value: string | undefined): CrashAt | null {
  if (value === undefined || value.trim() === '') return null;
  const [point = '', count, ...rest] = value.trim().split(':');
  if (!isCrashPoint(point) || rest.length > 0) {
    throw new RangeError(`crash point must be one of ${APPLIER_CRASH_POINTS.join(', ')} with an optional :n, got "${value}"`);
  }
  if (count === undefined) return { point, after: 1 };
  if (!/^[1-9][0-9]*$/.test(count)) throw new RangeError(`crash point count must be a positive integer, got "${value}"`);
  return { point, after: Number(count) };
}

/** A crash hook that calls `crash` when `at.point` is reached for the `at.after`-th time. */
export function crashHookAt(at: CrashAt, crash: () => void): (point: ApplierCrashPoint) => void {
  let seen = 0;
  return (point) => {
    if (point !== at.point) return;
    seen += 1;
    if (seen === at.after) crash();
  };
}
