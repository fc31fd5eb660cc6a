/**
 * What `bottomless ls` shows: the generations of a database (filtered by creation date, newest
 * first) and, verbosely, each one's fields as bottomless-cli prints them plus ours.
 */
import { generationSeconds, generationTimeMs } from '../format/generation-id.js';
import type { DigestKind } from '../format/digest.js';
import { decodeSnapshotMetadata } from '../format/objects.js';
import type { BackupStorage } from '../storage/storage.js';
import { type GenerationInfo, listGenerations, readGeneration } from './catalog.js';

const DAY_SECS = 86_400;

export interface GenerationDetails {
  generation: string;
  createdAt: Date;
  /** SQLite's file change counter from `.changecounter`. */
  changeCounter: number | null;
  /** Highest frame of any batch (bottomless' "consistent WAL frame"). */
  consistentWalFrame: number;
  pageSize: number | null;
  /** The `.meta` checksum seed as bottomless prints it: `HEX1-HEX2`. */
  walFrameChecksum: string | null;
  previousGeneration: string | null;
  /** digest: the one our metadata carries (null: none, made by sqld, or not readable). */
  snapshot: { key: string; objectSize: number; lastModified: Date; digest: DigestKind | null } | null;
  durable: { lastFrame: number; sealed: boolean; at: Date } | null;
  batches: number;
  /** Objects under the generation's prefix. */
  objects: number;
  /** Set when the generation could not be read. */
  error?: string;
}

export interface GenerationFilter {
  limit?: number;
  /** Created on or before this UTC date (its midnight). */
  olderThan?: Date;
  /** Created on or after this UTC date. */
  newerThan?: Date;
}

/** Generation ids, newest first, that pass the filter (the limit counts those that pass). */
export async function selectGenerations(storage: BackupStorage, db: string, f: GenerationFilter = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const gen of listGenerations(storage, db)) {
    const secs = generationSeconds(gen);
    if (f.olderThan !== undefined && secs >= f.olderThan.getTime() / 1000 + DAY_SECS) continue;
    if (f.newerThan !== undefined && secs < f.newerThan.getTime() / 1000) continue;
    out.push(gen);
    if (f.limit !== undefined && out.length >= f.limit) break;
  }
  return out;
}

function fromInfo(info: GenerationInfo): GenerationDetails {
  const snap = info.snapshot;
  let digest: DigestKind | null = null;
  if (snap !== null && snap.metadata !== null) {
    try {
      digest = decodeSnapshotMetadata(snap.metadata, snap.key)?.digest.kind ?? null;
    } catch {
      digest = null;
    }
  }
  return {
    generation: info.generation,
    createdAt: info.createdAt,
    changeCounter: info.changeCounter,
    consistentWalFrame: info.lastFrame,
    pageSize: info.meta?.pageSize ?? null,
    walFrameChecksum: info.meta === null ? null : info.meta.checksum.map((w) => w.toString(16).toUpperCase()).join('-'),
    previousGeneration: info.parent,
    snapshot: snap === null ? null : { key: snap.key, objectSize: snap.size, lastModified: snap.lastModified, digest },
    durable: info.durable === null ? null : { lastFrame: info.durable.lastFrame, sealed: info.durable.sealed, at: info.durable.at },
    batches: info.batches.length,
    objects: info.objectCount,
  };
}

/** One generation in detail; a generation that cannot be read comes back with `error` set. */
export async function describeGeneration(storage: BackupStorage, db: string, gen: string): Promise<GenerationDetails> {
  try {
    return fromInfo(await readGeneration(storage, db, gen));
  } catch (err) {
    return {
      generation: gen,
      createdAt: new Date(generationTimeMs(gen)),
      changeCounter: null,
      consistentWalFrame: 0,
      pageSize: null,
      walFrameChecksum: null,
      previousGeneration: null,
      snapshot: null,
      durable: null,
      batches: 0,
      objects: 0,
      error: err instanceof Error ? err.message : String(err),
    };
  }
}
