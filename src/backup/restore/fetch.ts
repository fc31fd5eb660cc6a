/**
 * Bounded parallel downloads consumed strictly in order: up to `parallel` objects (and, beyond
 * the first, at most `maxBytes` of compressed bodies) are fetched ahead of the one being applied.
 * `decode` turns each object into what next() hands out; it starts for the `decodeAhead` objects
 * after the one being consumed as soon as each is fetched (decompression in the thread pool
 * overlaps the apply), so decoded data in memory stays bounded by that count.
 */
import type { BackupStorage, StoredObject } from '../storage/storage.js';

export interface FetchItem {
  key: string;
  size: number;
}

export class OrderedFetcher<T = StoredObject, I extends FetchItem = FetchItem> {
  /** One controller per request (a shared signal would collect a listener per request). */
  private readonly inFlight = new Set<AbortController>();
  private readonly pending: (Promise<StoredObject> | undefined)[] = [];
  private readonly decoded: (Promise<T> | undefined)[] = [];
  private started = 0;
  private consumed = 0;
  /** Items below this index have their decode chained. */
  private chained = 0;
  /** Bytes of bodies started and not yet released (the one handed out last counts until the next call). */
  private bytes = 0;
  private current: FetchItem | null = null;
  private readonly decode: (obj: StoredObject, item: I) => T | Promise<T>;

  constructor(
    private readonly storage: BackupStorage,
    private readonly items: readonly I[],
    private readonly parallel: number,
    private readonly maxBytes: number,
    decode?: (obj: StoredObject, item: I) => T | Promise<T>,
    private readonly decodeAhead = 0,
  ) {
    this.decode = decode ?? ((obj) => obj as T);
  }

  /** The next object in order, or null after the last. */
  async next(): Promise<T | null> {
    if (this.current !== null) {
      this.bytes -= this.current.size;
      this.current = null;
    }
    if (this.consumed >= this.items.length) return null;
    this.pump();
    const index = this.consumed++;
    this.chain();
    const promise = this.decoded[index]!;
    this.decoded[index] = undefined;
    this.current = this.items[index]!;
    const obj = await promise;
    this.pump();
    return obj;
  }

  /** Abandons what is still in flight. */
  close(): void {
    for (const c of this.inFlight) c.abort();
    this.inFlight.clear();
  }

  private pump(): void {
    while (this.started < this.items.length && this.started - this.consumed < Math.max(1, this.parallel)) {
      const item = this.items[this.started]!;
      if (this.bytes > 0 && this.bytes + item.size > this.maxBytes) break;
      const controller = new AbortController();
      this.inFlight.add(controller);
      const promise = this.storage.get(item.key, { signal: controller.signal });
      // Fetched ahead: its failure surfaces when it is consumed, never as an unhandled rejection.
      promise.then(
        () => this.inFlight.delete(controller),
        () => this.inFlight.delete(controller),
      );
      this.pending[this.started++] = promise;
      this.bytes += item.size;
    }
    this.chain();
  }

  /** Chains the decode of every started item up to `decodeAhead` past the one handed out last. */
  private chain(): void {
    const limit = Math.min(this.started, this.consumed + Math.max(0, this.decodeAhead));
    while (this.chained < limit) {
      const i = this.chained++;
      const item = this.items[i]!;
      const promise = this.pending[i]!.then((obj) => this.decode(obj, item));
      promise.catch(() => undefined);
      this.decoded[i] = promise;
      this.pending[i] = undefined;
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}
