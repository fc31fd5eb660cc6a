import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tombstoneKey } from '../../../src/backup/format/layout.js';
import { prefetchRestore } from '../../../src/backup/restore/prefetch.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { type BackupStorage, type ListEntry, type ListOptions, StorageError } from '../../../src/backup/storage/storage.js';

/**
 * prefetch.ts: the listing a restore's plan starts with, and the tombstone, asked for at once; the
 * first matching calls get those answers, everything else goes to the store.
 */

const DB = 'ns-x:default';
let dir: string;
let local: LocalStorage;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'restore-prefetch-'));
  local = new LocalStorage({ dir, bucket: 'b' });
  await local.ensureBucket();
  for (const k of ['a/.meta', 'a/.dep', 'b/.meta']) await local.put(`${DB}-${k}`, Buffer.from(k));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `inner` with every list() and get() recorded (list: when its first page is asked for). */
function recorded(inner: BackupStorage, failTombstone = false) {
  const log: string[] = [];
  const storage = {
    description: inner.description,
    getReader: inner.getReader!.bind(inner),
    get: (key: string, options?: Parameters<BackupStorage['get']>[1]) => {
      log.push(`get ${key}`);
      return failTombstone && key === tombstoneKey(DB) ? Promise.reject(new StorageError('store down (test)')) : inner.get(key, options);
    },
    list: (prefix: string, options?: ListOptions): AsyncIterable<ListEntry> => {
      const it = inner.list(prefix, options)[Symbol.asyncIterator]();
      return {
        [Symbol.asyncIterator]: () => ({
          next: () => {
            log.push(`page ${prefix} ${options?.startAfter ?? ''}`);
            return it.next();
          },
        }),
      };
    },
  } as BackupStorage;
  return { storage, log };
}

async function keys(iterable: AsyncIterable<ListEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of iterable) if (e.kind === 'object') out.push(e.key);
  return out;
}

describe('prefetchRestore', () => {
  it('asks for the listing and the tombstone at once and hands each over once', async () => {
    const { storage, log } = recorded(local);
    const wrapped = prefetchRestore(storage, DB, null);
    expect(log).toEqual([`page ${DB}- `, `get ${tombstoneKey(DB)}`]);
    const listed = await keys(wrapped.list(`${DB}-`, {}));
    expect(listed).toEqual(await keys(local.list(`${DB}-`)));
    await expect(wrapped.get(tombstoneKey(DB))).rejects.toMatchObject({ code: 'BACKUP_OBJECT_NOT_FOUND' });
    expect(log.filter((l) => l.startsWith('get'))).toHaveLength(1);
    // Later calls, and other listings, go to the store.
    await keys(wrapped.list(`${DB}-`, {}));
    await keys(wrapped.list(`${DB}-`, { delimiter: '/' }));
    await wrapped.get(tombstoneKey(DB)).catch(() => undefined);
    expect(log.filter((l) => l.startsWith('page')).length).toBeGreaterThan(2);
    expect(log.filter((l) => l.startsWith('get'))).toHaveLength(2);
    expect(typeof wrapped.getReader).toBe('function');
  });

  it('from a generation: the listing after it; a failed answer is met by whoever takes it', async () => {
    const { storage, log } = recorded(local, true);
    const wrapped = prefetchRestore(storage, DB, 'a');
    expect(log[0]).toBe(`page ${DB}- ${DB}-a`);
    // The generation's own keys sort after its id (they go on with `/`).
    expect(await keys(wrapped.list(`${DB}-`, { startAfter: `${DB}-a` }))).toEqual([`${DB}-a/.dep`, `${DB}-a/.meta`, `${DB}-b/.meta`]);
    await expect(wrapped.get(tombstoneKey(DB))).rejects.toThrow('store down (test)');
  });
});
