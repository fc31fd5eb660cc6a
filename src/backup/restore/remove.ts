/**
 * `bottomless rm`: one generation (every object under its prefix), or every generation created
 * before a date, fenced by the tombstone as bottomless does it (spec §4): the tombstone goes up
 * first, so a restore started meanwhile refuses those generations, and comes down after the last
 * delete. A deletion interrupted half way leaves the tombstone in place; running it again finishes.
 */
import { encodeTombstone } from '../format/objects.js';
import { generationPrefix, tombstoneKey } from '../format/layout.js';
import type { BackupStorage } from '../storage/storage.js';
import { listGenerations } from './catalog.js';
import { generationSeconds } from '../format/generation-id.js';

const DELETE_CHUNK = 1000;

export interface RemoveOptions {
  dryRun?: boolean;
  /** Called for each key as it is deleted (or would be). */
  onKey?: (key: string) => void;
}

async function keysUnder(storage: BackupStorage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of storage.list(prefix)) if (e.kind === 'object') keys.push(e.key);
  return keys;
}

async function deleteKeys(storage: BackupStorage, keys: readonly string[], opts: RemoveOptions): Promise<void> {
  for (let i = 0; i < keys.length; i += DELETE_CHUNK) {
    const chunk = keys.slice(i, i + DELETE_CHUNK);
    for (const k of chunk) opts.onKey?.(k);
    if (opts.dryRun !== true) await storage.delete(chunk);
  }
}

/** Deletes every object of generation `gen`; returns their keys. */
export async function removeGeneration(storage: BackupStorage, db: string, gen: string, opts: RemoveOptions = {}): Promise<string[]> {
  const keys = await keysUnder(storage, generationPrefix(db, gen));
  await deleteKeys(storage, keys, opts);
  return keys;
}

export interface RemovedGenerations {
  /** The tombstone's threshold (Unix seconds). */
  threshold: number;
  generations: string[];
  keys: string[];
}

/** Deletes every generation of `db` created before `before` (whole seconds). */
export async function removeOlderThan(storage: BackupStorage, db: string, before: Date, opts: RemoveOptions = {}): Promise<RemovedGenerations> {
  const threshold = Math.floor(before.getTime() / 1000);
  const tombstone = tombstoneKey(db);
  if (opts.dryRun !== true) await storage.put(tombstone, encodeTombstone(threshold));
  const generations: string[] = [];
  for await (const gen of listGenerations(storage, db)) if (generationSeconds(gen) < threshold) generations.push(gen);
  const keys: string[] = [];
  for (const gen of generations) keys.push(...(await removeGeneration(storage, db, gen, opts)));
  if (opts.dryRun !== true) await storage.delete([tombstone]);
  return { threshold, generations, keys };
}
