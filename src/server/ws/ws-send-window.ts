/**
 * The bytes one WebSocket connection handed to its socket that have not been written out yet (what
 * `ws.bufferedAmount` reports, counted through the send callbacks so a drain can be awaited). While
 * more than `limit` are pending, no new work starts: a client that does not read holds at most
 * about `limit` bytes of the server's memory and of `--max-total-response-size`, plus the answers
 * already being computed. Waiters wake once half the window drained, so work resumes in batches
 * rather than one answer per completed write.
 */
export class SendWindow {
  private unsent = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly limit: number) {}

  get pending(): number {
    return this.unsent;
  }

  /** Counts `bytes` as unsent; the returned function (call it once the write finished) gives them back. */
  add(bytes: number): () => void {
    this.unsent += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.unsent -= bytes;
      if (this.waiters.length > 0 && this.unsent <= this.limit / 2) this.wake();
    };
  }

  /** null while there is room; else a promise that settles once there is (or the connection ended). */
  wait(): Promise<void> | null {
    if (this.closed || this.unsent <= this.limit) return null;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The connection ended: nobody waits any more. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
