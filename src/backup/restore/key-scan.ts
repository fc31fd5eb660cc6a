/**
 * One listing of a database's keys, from a generation on (or from the start: the newest
 * generation first), grouped by generation as the pages come in. Generation ids sort newest
 * first, so a restore's chain (the chosen generation, then its parents along `.dep`) is normally
 * the first groups of this listing: a page of 1000 keys covers dozens of generations, where
 * listing each generation's prefix costs a request apiece. The scan reads only as far as someone
 * has asked; a failed page fails every later question (never "the listing ended").
 *
 * Keys under the database's prefix that belong to no generation of it (another database whose name
 * extends this one's, spec §3.1) are skipped.
 */
import { dbPrefix, parseGenerationKey } from '../format/layout.js';
import { type BackupStorage, compareKeys, type ListEntry, type ListOptions, type ObjectInfo } from '../storage/storage.js';

/** The listing a scan of `db` from generation `from` (null: from the start) makes. */
export function scanListing(db: string, from: string | null): { prefix: string; options: ListOptions } {
  // Every key of `from` sorts after `<prefix><from>` (they continue with `/`).
  const prefix = dbPrefix(db);
  return { prefix, options: from === null ? {} : { startAfter: `${prefix}${from}` } };
}

export class KeyScan {
  private readonly iterator: AsyncIterator<ListEntry>;
  private readonly groups = new Map<string, ObjectInfo[]>();
  /** Generations in listing order (newest first). */
  private readonly order: string[] = [];
  private done = false;
  private failure: Error | null = null;
  private step: Promise<void> | null = null;

  constructor(
    storage: BackupStorage,
    private readonly db: string,
    /** The scan starts with this generation's keys; null: from the first key (the newest generation). */
    private readonly from: string | null,
    /** Called with each generation's objects once they are all listed, in listing order. */
    private readonly onGroup?: (gen: string, objects: readonly ObjectInfo[]) => void,
  ) {
    const { prefix, options } = scanListing(db, from);
    this.iterator = storage.list(prefix, options)[Symbol.asyncIterator]();
  }

  /** Generations listed so far. */
  get listed(): number {
    return this.order.length;
  }

  /** The first generation of the scan (from the start: the newest), or null when there is none. */
  async first(): Promise<string | null> {
    await this.until(() => this.order.length > 0);
    return this.order[0] ?? null;
  }

  /** Lists on until `enough()` holds or the listing ends. */
  async extend(enough: () => boolean): Promise<void> {
    await this.until(enough);
  }

  /**
   * The objects of `gen`, or undefined when the scan cannot tell: `gen` sorts before where it
   * started (a `.dep` naming a newer generation), so it has to be listed by itself.
   */
  async objectsOf(gen: string): Promise<ObjectInfo[] | undefined> {
    if (this.from !== null && gen !== this.from && compareKeys(gen, this.from) < 0) return undefined;
    // Complete once a later generation has begun, or the listing has ended.
    await this.until(() => (this.groups.has(gen) ? this.order.at(-1) !== gen : this.passed(gen)));
    return this.groups.get(gen) ?? [];
  }

  /** Up to `n` generations after `gen` in listing order (older ones), as far as the scan reaches. */
  async after(gen: string, n: number): Promise<string[]> {
    const at = (): number => this.order.indexOf(gen);
    await this.until(() => (at() >= 0 ? this.order.length > at() + n : this.passed(gen)));
    const i = at();
    return i < 0 ? [] : this.order.slice(i + 1, i + 1 + n);
  }

  /** Stops listing (the rest of the pages are not read). */
  async close(): Promise<void> {
    this.done = true;
    await this.step?.catch(() => undefined);
    await this.iterator.return?.();
  }

  private completed(gen: string | undefined): void {
    if (gen !== undefined) this.onGroup?.(gen, this.groups.get(gen)!);
  }

  /** The listing is past `gen` without having met it. */
  private passed(gen: string): boolean {
    const last = this.order.at(-1);
    return last !== undefined && compareKeys(last, gen) > 0;
  }

  private async until(enough: () => boolean): Promise<void> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      if (this.done || enough()) return;
      this.step ??= this.advance().then(
        () => {
          this.step = null;
        },
        (err: unknown) => {
          this.failure ??= err instanceof Error ? err : new Error(String(err));
          this.step = null;
        },
      );
      await this.step;
    }
  }

  /** Reads entries until a new generation begins (or the listing ends). */
  private async advance(): Promise<void> {
    const before = this.order.length;
    while (this.order.length === before) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.done = true;
        this.completed(this.order.at(-1));
        return;
      }
      const entry = next.value;
      if (entry.kind !== 'object') continue;
      const parsed = parseGenerationKey(this.db, entry.key);
      if (parsed === null) continue;
      let group = this.groups.get(parsed.generation);
      if (group === undefined) {
        this.completed(this.order.at(-1));
        group = [];
        this.groups.set(parsed.generation, group);
        this.order.push(parsed.generation);
      }
      group.push({ key: entry.key, size: entry.size, lastModified: entry.lastModified });
    }
  }
}
