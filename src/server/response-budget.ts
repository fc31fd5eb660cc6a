import { SqlError } from '../engine/sql-error.js';

/**
 * `--max-total-response-size`: the bytes of all responses being sent at once. A response reserves its
 * size before it is written and gives it back when the write finished.
 */
export class ResponseBudget {
  private used = 0;

  constructor(private readonly maxTotal: number) {}

  /** Reserves `bytes`; returns the function that gives them back. Throws RESPONSE_TOO_LARGE when full. */
  reserve(bytes: number): () => void {
    if (this.used + bytes > this.maxTotal) throw new SqlError('RESPONSE_TOO_LARGE', 'Response is too large');
    this.used += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used -= bytes;
    };
  }

  get inUse(): number {
    return this.used;
  }
}
