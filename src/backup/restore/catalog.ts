/**
 * What a store holds for one database: its generations (newest first, from a delimiter listing),
 * the tombstone, and everything about one generation (its small objects decoded, its snapshot's
 * head, its batches in frame order). Reads are strict: an object that is listed but cannot be
 * read is an error, never "absent" (spec §6: bottomless restored the wrong generation that way).
 */
import { generationSeconds, generationTimeMs } from '../format/generation-id.js';
import {
  type BatchName,
  type Compression,
  dbPrefix,
  generationPrefix,
  parseGenerationKey,
  parseGenerationPrefix,
  tombstoneKey,
} from '../format/layout.js';
import {
  decodeChangeCounter,
  decodeDep,
  decodeDurableMarker,
  decodeMeta,
  decodeTombstone,
  type DurableMarker,
  type GenerationMeta,
} from '../format/objects.js';
import { CorruptBackupError } from '../format/errors.js';
import { type BackupStorage, type ObjectInfo, type ObjectMetadata, ObjectNotFoundError } from '../storage/storage.js';

export interface BatchObject extends Omit<BatchName, 'kind'> {
  key: string;
  size: number;
  lastModified: Date;
}

export interface SnapshotObject {
  key: string;
  compression: Compression;
  size: number;
  lastModified: Date;
  /** Its user metadata (ours: digest and page count; none on sqld's snapshots); null when not read (readGeneration's `snapshotHead`). */
  metadata: ObjectMetadata | null;
}

export interface GenerationInfo {
  generation: string;
  createdAt: Date;
  /** Whole creation second: what times, `rm` and tombstones compare. */
  createdSecs: number;
  meta: GenerationMeta | null;
  /** The parent named by `.dep`. */
  parent: string | null;
  changeCounter: number | null;
  durable: DurableMarker | null;
  /** The snapshot restore uses (the preferred compression when there are several). */
  snapshot: SnapshotObject | null;
  /** Batches by first frame, then last frame. */
  batches: BatchObject[];
  /** Highest frame of any batch (bottomless' "consistent WAL frame", which does not check contiguity); 0 without batches. */
  lastFrame: number;
  /** Every object under the generation's prefix. */
  objectCount: number;
}

/** Generation ids of `db`, newest first (listing order). */
export async function* listGenerations(storage: BackupStorage, db: string): AsyncGenerator<string> {
  for await (const entry of storage.list(dbPrefix(db), { delimiter: '/' })) {
    if (entry.kind !== 'prefix') continue;
    const gen = parseGenerationPrefix(db, entry.prefix);
    if (gen !== null) yield gen;
  }
}

export async function newestGeneration(storage: BackupStorage, db: string): Promise<string | null> {
  for await (const gen of listGenerations(storage, db)) return gen;
  return null;
}

/** The newest generation created at or before `time` (whole seconds, as bottomless compares). */
export async function generationAtOrBefore(storage: BackupStorage, db: string, time: Date): Promise<string | null> {
  const secs = Math.floor(time.getTime() / 1000);
  for await (const gen of listGenerations(storage, db)) if (generationSeconds(gen) <= secs) return gen;
  return null;
}

/** The tombstone's threshold (Unix seconds), or null when there is none. */
export async function readTombstone(storage: BackupStorage, db: string): Promise<number | null> {
  const key = tombstoneKey(db);
  try {
    const obj = await storage.get(key);
    return decodeTombstone(obj.body, key);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return null;
    throw err;
  }
}

const SNAPSHOT_PREFERENCE: Record<Compression, readonly Compression[]> = {
  gz: ['gz', 'zstd', 'raw'],
  zstd: ['zstd', 'gz', 'raw'],
  raw: ['raw', 'zstd', 'gz'],
};

/** The snapshot a restore uses among a generation's (by compression preference), or undefined. */
function preferred<T extends { compression: Compression }>(snapshots: T[], prefer: Compression = 'gz'): T | undefined {
  const order = SNAPSHOT_PREFERENCE[prefer];
  return snapshots.sort((a, b) => order.indexOf(a.compression) - order.indexOf(b.compression))[0];
}

/** The snapshot readGeneration would choose among a generation's listed objects (without reading anything). */
export function listedSnapshot(db: string, gen: string, listed: readonly ObjectInfo[], prefer?: Compression): Omit<SnapshotObject, 'metadata'> | undefined {
  const snapshots: Omit<SnapshotObject, 'metadata'>[] = [];
  for (const entry of listed) {
    const parsed = parseGenerationKey(db, entry.key);
    if (parsed?.generation === gen && parsed.object.kind === 'snapshot') {
      snapshots.push({ key: entry.key, compression: parsed.object.compression, size: entry.size, lastModified: entry.lastModified });
    }
  }
  return preferred(snapshots, prefer);
}

async function body(storage: BackupStorage, key: string): Promise<Buffer> {
  return (await storage.get(key)).body;
}

export interface ReadGenerationOptions {
  /** The snapshot compression to prefer when there are several (default gz). */
  prefer?: Compression;
  /** The generation's objects, already listed (by a scan of the database's keys): no listing of its own. */
  listed?: readonly ObjectInfo[];
  /** false: `.changecounter` is not read (restore has no use for it); changeCounter stays null. */
  changeCounter?: boolean;
  /**
   * false: no HEAD of the snapshot; size and time are the listing's and its metadata stays null
   * (restore reads the metadata from the snapshot's own GET). Each request counts on a busy store.
   */
  snapshotHead?: boolean;
  /**
   * true: `.libsqlctl-durable` is read first, and `.meta` and `.dep` only where it carries no copy
   * of them (markers written before the copies were added, or none at all: sqld's). A restore
   * reads one small object per generation then. false (default): all are read, and a marker's
   * copies must agree with them.
   */
  markerFirst?: boolean;
}

type SmallKeys = Partial<Record<'meta' | 'dep' | 'changecounter' | 'durable', string>>;

/** `.meta`, `.dep` and `.libsqlctl-durable` of a generation (keys as listed; undefined: not there). */
async function readHeader(storage: BackupStorage, small: SmallKeys, markerFirst: boolean): Promise<{ meta: GenerationMeta | null; parent: string | null; durable: DurableMarker | null }> {
  const readMeta = (): Promise<GenerationMeta | null> => (small.meta === undefined ? Promise.resolve(null) : body(storage, small.meta).then((b) => decodeMeta(b, small.meta!)));
  const readDep = (): Promise<string | null> => (small.dep === undefined ? Promise.resolve(null) : body(storage, small.dep).then((b) => decodeDep(b, small.dep!)));
  const readMarker = (): Promise<DurableMarker | null> => (small.durable === undefined ? Promise.resolve(null) : body(storage, small.durable).then((b) => decodeDurableMarker(b, small.durable!)));
  if (markerFirst && small.durable !== undefined) {
    const durable = await readMarker();
    // The copies stand for objects that are there: a missing .meta or .dep stays missing.
    const metaCopy = small.meta !== undefined ? durable?.meta : undefined;
    const parentCopy = small.dep !== undefined && typeof durable?.parent === 'string' ? durable.parent : undefined;
    const [meta, parent] = await Promise.all([metaCopy ?? readMeta(), parentCopy ?? readDep()]);
    return { meta, parent, durable };
  }
  const [meta, parent, durable] = await Promise.all([readMeta(), readDep(), readMarker()]);
  if (durable !== null && small.durable !== undefined) {
    const m = durable.meta;
    if (m !== undefined && meta !== null && (m.pageSize !== meta.pageSize || m.checksum[0] !== meta.checksum[0] || m.checksum[1] !== meta.checksum[1])) {
      throw new CorruptBackupError(small.durable, `says page size ${m.pageSize} and checksum seed ${m.checksum.join(',')}, ${small.meta} says ${meta.pageSize} and ${meta.checksum.join(',')}`);
    }
    if (durable.parent !== undefined && durable.parent !== parent) {
      throw new CorruptBackupError(small.durable, `names parent ${durable.parent ?? 'none'}, the generation's .dep ${parent === null ? 'is not there' : `names ${parent}`}`);
    }
  }
  return { meta, parent, durable };
}

/** Lists generation `gen` of `db` (unless given its objects) and reads its small objects and its snapshot's head. */
export async function readGeneration(storage: BackupStorage, db: string, gen: string, opts: ReadGenerationOptions = {}): Promise<GenerationInfo> {
  const batches: BatchObject[] = [];
  const snapshots: Omit<SnapshotObject, 'metadata'>[] = [];
  const small: SmallKeys = {};
  let objectCount = 0;
  const take = (entry: ObjectInfo): void => {
    objectCount++;
    const parsed = parseGenerationKey(db, entry.key);
    if (parsed === null || parsed.generation !== gen) return;
    const o = parsed.object;
    if (o.kind === 'batch') {
      const { kind: _kind, ...range } = o;
      batches.push({ ...range, key: entry.key, size: entry.size, lastModified: entry.lastModified });
    } else if (o.kind === 'snapshot') {
      snapshots.push({ key: entry.key, compression: o.compression, size: entry.size, lastModified: entry.lastModified });
    } else if (o.kind !== 'other') {
      small[o.kind] = entry.key;
    }
  };
  if (opts.listed !== undefined) for (const entry of opts.listed) take(entry);
  else for await (const entry of storage.list(generationPrefix(db, gen))) if (entry.kind === 'object') take(entry);
  batches.sort((a, b) => a.first - b.first || a.last - b.last);
  const chosen = preferred(snapshots, opts.prefer);
  const counterKey = opts.changeCounter === false ? undefined : small.changecounter;
  const [{ meta, parent: dep, durable }, counter, head] = await Promise.all([
    readHeader(storage, small, opts.markerFirst === true),
    counterKey === undefined ? null : body(storage, counterKey).then((b) => decodeChangeCounter(b, counterKey)),
    chosen === undefined || opts.snapshotHead === false ? null : storage.head(chosen.key),
  ]);
  let snapshot: SnapshotObject | null = null;
  if (chosen !== undefined && opts.snapshotHead === false) snapshot = { ...chosen, metadata: null };
  else if (chosen !== undefined) {
    if (head === null) throw new ObjectNotFoundError(chosen.key, storage.description);
    snapshot = { ...chosen, size: head.size, lastModified: head.lastModified, metadata: head.metadata };
  }
  return {
    generation: gen,
    createdAt: new Date(generationTimeMs(gen)),
    createdSecs: generationSeconds(gen),
    meta,
    parent: dep,
    changeCounter: counter,
    durable,
    snapshot,
    batches,
    lastFrame: batches.reduce((m, b) => Math.max(m, b.last), 0),
    objectCount,
  };
}
