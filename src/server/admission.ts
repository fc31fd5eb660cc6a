import { LibsqlctlError } from '../errors.js';

/** Too many requests or connections; answered with 429 (spec §4.10). */
export class ThrottledError extends LibsqlctlError {}

/**
 * Connection slots across all namespaces (`--max-concurrent-connections`). A request that needs a new
 * SQLite connection waits for a slot up to `--connection-creation-timeout-sec`; while more than
 * `--max-concurrent-requests` already wait, it is refused at once.
 */
export class ConnectionSlots {
  private used = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly opts: { max: number; maxQueued: number; timeoutMs: number }) {}

  get inUse(): number {
    return this.used;
  }

  /** A free slot at once (nobody waits for one), or null. */
  tryAcquire(): (() => void) | null {
    if (this.used >= this.opts.max || this.waiters.length > 0) return null;
    this.used++;
    return this.releaser();
  }

  async acquire(): Promise<() => void> {
    const free = this.tryAcquire();
    if (free) return free;
    if (this.waiters.length >= this.opts.maxQueued) {
      throw new ThrottledError('TOO_MANY_REQUESTS', 'Too many concurrent requests');
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new ThrottledError('CONNECTION_TIMEOUT', 'Timed out while opening database connection'));
      }, this.opts.timeoutMs);
      this.waiters.push(grant);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.used--;
    };
  }
}
