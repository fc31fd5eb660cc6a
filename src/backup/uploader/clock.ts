/**
 * Seams of the uploader: the clock (generation ids, commit times, every "has enough time passed"
 * decision) and timers (so tests can count them and an idle namespace provably runs none), plus the
 * error boundary every timer and asynchronous step runs behind.
 */
import { errorMessage, type Logger } from '../../engine/logger.js';

/** Milliseconds since the Unix epoch. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd: the uploader never keeps a process alive. */
export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/**
 * One named timer: armed at most once at a time, its callback behind an error boundary. `armed`
 * tells whether it waits (an idle uploader has none armed).
 */
export class TimerSlot {
  private handle: unknown = null;

  constructor(
    private readonly timers: Timers,
    private readonly onError: (err: unknown) => void,
  ) {}

  get armed(): boolean {
    return this.handle !== null;
  }

  /** Arms the timer unless it is armed already. */
  arm(ms: number, fn: () => void): void {
    if (this.handle !== null) return;
    this.handle = this.timers.setTimeout(
      () => {
        this.handle = null;
        try {
          fn();
        } catch (err) {
          this.onError(err);
        }
      },
      Math.max(1, Math.ceil(ms)),
    );
  }

  clear(): void {
    if (this.handle === null) return;
    this.timers.clearTimeout(this.handle);
    this.handle = null;
  }
}

/** A clock that never throws: a failing or absurd clock falls back to the system's (logged once). */
export function safeClock(clock: Clock, logger: Logger, what: string): () => number {
  let warned = false;
  return () => {
    let t: number;
    try {
      t = clock.now();
    } catch (err) {
      t = Number.NaN;
      if (!warned) logger.error({ err }, `${what}: the clock failed: ${errorMessage(err)}; using the system clock`);
      warned = true;
    }
    if (Number.isFinite(t) && t >= 0) return Math.floor(t);
    if (!warned) logger.error(`${what}: the clock returned ${String(t)}; using the system clock`);
    warned = true;
    return Date.now();
  };
}

/**
 * Errors by cause: the first occurrence of a cause is logged as an error, repeats only at debug
 * level (a store that is down for an hour logs once, not once per retry), and the first success
 * after failures is logged as a recovery. Counts every error; remembers the last message.
 */
export class ErrorTracker {
  private readonly seen = new Set<string>();
  count = 0;
  lastError: string | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  report(step: string, err: unknown): void {
    this.count += 1;
    const message = errorMessage(err);
    this.lastError = `${step}: ${message}`;
    const code = (err as { code?: unknown } | null)?.code;
    const cause = `${step}|${typeof code === 'string' ? code : message}`;
    if (this.seen.has(cause)) {
      this.logger.debug({ err }, `${this.what}: ${step} failed again: ${message}`);
      return;
    }
    this.seen.add(cause);
    this.logger.error({ err }, `${this.what}: ${step} failed: ${message}`);
  }

  /** `step` succeeded: its causes are over (logged once when there were any). */
  recovered(step: string): void {
    let had = false;
    for (const cause of this.seen) {
      if (!cause.startsWith(`${step}|`)) continue;
      this.seen.delete(cause);
      had = true;
    }
    if (!had) return;
    if (this.lastError?.startsWith(`${step}: `)) this.lastError = null;
    this.logger.warn(`${this.what}: ${step} succeeded again`);
  }
}
