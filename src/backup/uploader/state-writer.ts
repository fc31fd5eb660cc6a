/**
 * Writes the uploader's state file: batched (several changes inside `defer`, one write), with
 * callbacks that run only once a write naming their change succeeded (`after`), and a retry every
 * second while the write fails (a full disk, say). Only what the state file names may be uploaded:
 * a restart must never stage again what the store already holds.
 */
import { type ErrorTracker, TimerSlot, type Timers } from './clock.js';
import { writeState, type UploaderState } from './state-file.js';

export interface StateWriterContext {
  path: string;
  timers: Timers;
  errors: ErrorTracker;
  /** The state to write now. */
  snapshot(): UploaderState;
  stopped(): boolean;
}

const RETRY_MS = 1000;

export class StateWriter {
  private depth = 0;
  private dirty = false;
  private readonly afterWrite: (() => void)[] = [];
  private readonly retry: TimerSlot;

  constructor(private readonly ctx: StateWriterContext) {
    this.retry = new TimerSlot(ctx.timers, (err) => ctx.errors.report('timer', err));
  }

  get timerArmed(): boolean {
    return this.retry.armed;
  }

  stop(): void {
    this.retry.clear();
  }

  /** Runs `fn` after the next successful write (right away when it succeeds now). */
  after(fn: () => void): void {
    this.afterWrite.push(fn);
    this.save();
  }

  /** Several changes, one write (checkpoint hand-over). */
  defer(fn: () => void): void {
    this.depth += 1;
    try {
      fn();
    } finally {
      this.depth -= 1;
      if (this.depth === 0 && this.dirty) this.save();
    }
  }

  /** Writes the state (or marks it due at the end of `defer`); false when the write failed. */
  save(): boolean {
    if (this.ctx.stopped()) return false;
    if (this.depth > 0) {
      this.dirty = true;
      return true;
    }
    this.dirty = false;
    try {
      writeState(this.ctx.path, this.ctx.snapshot());
    } catch (err) {
      this.ctx.errors.report('writing the state file', err);
      this.retry.arm(RETRY_MS, () => this.save());
      return false;
    }
    this.retry.clear();
    this.ctx.errors.recovered('writing the state file');
    for (const fn of this.afterWrite.splice(0)) {
      try {
        fn();
      } catch (err) {
        this.ctx.errors.report('after writing the state file', err);
      }
    }
    return true;
  }
}
