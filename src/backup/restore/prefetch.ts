/**
 * A restore's first two requests sent before the restore's own modules are loaded: the listing
 * its plan starts with (key-scan.ts) and the tombstone. The CLI wraps the store with
 * prefetchRestore as soon as the store is open and only then imports the restore (some 20 ms of
 * module loading on a small machine), so that the listing, which a store may take tens of
 * milliseconds to answer, is under way meanwhile.
 *
 * The wrapper hands the first matching list() the iterator already started and the first get() of
 * the tombstone the answer already asked for (errors included, as they came); every other call,
 * and any later one, goes to the store unchanged.
 */
import { tombstoneKey } from '../format/layout.js';
import type { BackupStorage, ListEntry, ListOptions, StoredObject } from '../storage/storage.js';
import { scanListing } from './key-scan.js';

const sameListing = (a: ListOptions | undefined, b: ListOptions): boolean => a?.delimiter === b.delimiter && a?.startAfter === b.startAfter;

/** `storage` with the listing of a scan of `db` from `from` (null: the newest) and its tombstone already asked for. */
export function prefetchRestore(storage: BackupStorage, db: string, from: string | null): BackupStorage {
  const listing = scanListing(db, from);
  const iterator = storage.list(listing.prefix, listing.options)[Symbol.asyncIterator]();
  let firstPage: Promise<IteratorResult<ListEntry>> | null = iterator.next();
  firstPage.catch(() => undefined); // met by whoever takes the listing
  const tombstone = tombstoneKey(db);
  let tombstoneAnswer: Promise<StoredObject> | null = storage.get(tombstone);
  tombstoneAnswer.catch(() => undefined);
  let listingTaken = false;

  const started: AsyncIterable<ListEntry> = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        const first = firstPage;
        firstPage = null;
        return first ?? iterator.next();
      },
      return: async () => (await iterator.return?.()) ?? { done: true, value: undefined },
    }),
  };

  const wrapper: BackupStorage = {
    description: storage.description,
    ensureBucket: () => storage.ensureBucket(),
    put: (key, body, options) => storage.put(key, body, options),
    get(key, options) {
      if (tombstoneAnswer !== null && key === tombstone && options?.range === undefined) {
        const answer = tombstoneAnswer;
        tombstoneAnswer = null;
        return options?.signal?.aborted === true ? storage.get(key, options) : answer;
      }
      return storage.get(key, options);
    },
    getStream: (key, options) => storage.getStream(key, options),
    head: (key) => storage.head(key),
    list(prefix, options) {
      if (!listingTaken && prefix === listing.prefix && sameListing(options, listing.options)) {
        listingTaken = true;
        return started;
      }
      return storage.list(prefix, options);
    },
    delete: (keys) => storage.delete(keys),
    close: () => storage.close(),
  };
  if (storage.getReader !== undefined) wrapper.getReader = (key, options) => storage.getReader!(key, options);
  return wrapper;
}
