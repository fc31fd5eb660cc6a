/**
 * Read-your-writes on a replica (docs/REPLICATION.md, write forwarding). Every program the primary
 * answers for this namespace raises the fence to the primary's frame after it; a program that is
 * about to run on the local copy first waits until the replica has applied the fence. A forwarded
 * write is therefore answered as soon as the primary answers — the apply overlaps the answer's way
 * back to the client — and every later read on this replica, on any connection, still sees it.
 *
 * sqld waits the same way, but per connection (spec §7.1); ours is per namespace, so a client that
 * reads on a new connection right after its write (as `@libsql/client` over HTTP does) sees it too.
 */

/** What the fence needs of the replica: its applied index and log, and a way to wait for an index. */
export interface AppliedIndex {
  replicationIndex(): bigint | null;
  logId(): string | null;
  waitForIndex(frameNo: bigint, signal?: AbortSignal): Promise<void>;
}

export class ReadFence {
  readonly #replica: AppliedIndex;
  /** The highest frame the primary reported, in log `#logId` (the replica's log when it was raised). */
  #frameNo: bigint | null = null;
  #logId: string | null = null;

  constructor(replica: AppliedIndex) {
    this.#replica = replica;
  }

  /** A forwarded program was answered: the primary was at `frameNo` after it. */
  raise(frameNo: bigint): void {
    const logId = this.#replica.logId();
    if (this.#frameNo === null || this.#logId !== logId || frameNo > this.#frameNo) {
      this.#frameNo = frameNo;
      this.#logId = logId;
    }
  }

  /**
   * The frame a local read still has to wait for, or null. A fence of another log than the
   * replica's (it started over for a new primary log) no longer means anything.
   */
  pending(): bigint | null {
    const target = this.#frameNo;
    if (target === null) return null;
    if (this.#logId !== this.#replica.logId()) {
      this.#frameNo = null;
      return null;
    }
    const applied = this.#replica.replicationIndex();
    return applied !== null && applied >= target ? null : target;
  }

  /** Forgets the fence (the primary cannot answer the reads that wait for it). */
  abandon(): void {
    this.#frameNo = null;
  }

  /** Resolves true once the local copy has reached the fence, false if `waitMs` passed first. */
  async reached(waitMs: number): Promise<boolean> {
    const target = this.pending();
    if (target === null) return true;
    try {
      await this.#replica.waitForIndex(target, AbortSignal.timeout(waitMs));
      return true;
    } catch {
      // timed out, or the replica is closing: the local copy is not known to be current
      return this.pending() === null;
    }
  }

  /** The index a client of this namespace has seen: the applied one, or the fence when higher. */
  index(): bigint | null {
    const applied = this.#replica.replicationIndex();
    const target = this.pending();
    return target !== null && (applied === null || target > applied) ? target : applied;
  }
}
