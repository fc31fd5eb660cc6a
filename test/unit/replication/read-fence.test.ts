/** The replica's read fence: raised by forwarded answers, passed once the replica has applied them. */
import { describe, expect, it } from 'vitest';
import { ReadFence, type AppliedIndex } from '../../../src/server/replication/read-fence.js';

/** A replica whose applied index the test moves; waiters settle as a real replica's do. */
class FakeReplica implements AppliedIndex {
  applied: bigint | null = null;
  log: string | null = 'log-a';
  readonly #waiters = new Set<{ frameNo: bigint; resolve: () => void }>();

  replicationIndex(): bigint | null {
    return this.applied;
  }

  logId(): string | null {
    return this.log;
  }

  waitForIndex(frameNo: bigint, signal?: AbortSignal): Promise<void> {
    if (this.applied !== null && this.applied >= frameNo) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { frameNo, resolve };
      this.#waiters.add(w);
      signal?.addEventListener('abort', () => {
        this.#waiters.delete(w);
        reject(signal.reason as Error);
      });
    });
  }

  apply(frameNo: bigint): void {
    this.applied = frameNo;
    for (const w of [...this.#waiters]) {
      if (w.frameNo <= frameNo) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }
}

describe('read fence', () => {
  it('holds nothing until a forwarded answer raises it, and only what is not applied yet', async () => {
    const replica = new FakeReplica();
    const fence = new ReadFence(replica);
    expect(fence.pending()).toBeNull();
    expect(await fence.reached(10)).toBe(true);
    replica.apply(5n);
    fence.raise(5n);
    expect(fence.pending(), 'already applied').toBeNull();
    fence.raise(9n);
    fence.raise(7n); // an older answer never lowers it
    expect(fence.pending()).toBe(9n);
    expect(fence.index(), 'clients are told the highest frame they may have seen').toBe(9n);
  });

  it('a read waits until the replica applies the fence', async () => {
    const replica = new FakeReplica();
    const fence = new ReadFence(replica);
    replica.apply(1n);
    fence.raise(4n);
    const reached = fence.reached(5000);
    replica.apply(3n);
    expect(fence.pending()).toBe(4n);
    replica.apply(4n);
    expect(await reached).toBe(true);
    expect(fence.pending()).toBeNull();
    expect(fence.index()).toBe(4n);
  });

  it('reports false when the replica does not get there in time', async () => {
    const replica = new FakeReplica();
    const fence = new ReadFence(replica);
    replica.apply(1n);
    fence.raise(2n);
    expect(await fence.reached(20)).toBe(false);
    expect(fence.pending()).toBe(2n);
  });

  it('an abandoned fence holds nothing until the next forwarded answer raises it', () => {
    const replica = new FakeReplica();
    const fence = new ReadFence(replica);
    replica.apply(1n);
    fence.raise(5n);
    fence.abandon();
    expect(fence.pending()).toBeNull();
    expect(fence.index()).toBe(1n);
    fence.raise(6n);
    expect(fence.pending()).toBe(6n);
  });

  it('a fence of a log the replica no longer follows is dropped', async () => {
    const replica = new FakeReplica();
    const fence = new ReadFence(replica);
    replica.apply(100n);
    fence.raise(200n);
    replica.log = 'log-b';
    replica.applied = null;
    expect(fence.pending()).toBeNull();
    expect(await fence.reached(10)).toBe(true);
    expect(fence.index()).toBeNull();
    // raised again in the new log, it counts from there
    fence.raise(3n);
    expect(fence.pending()).toBe(3n);
  });
});
