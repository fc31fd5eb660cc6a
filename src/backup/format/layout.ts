/**
 * Every bottomless object key, built and parsed in one place (spec §1.2, §1.3):
 *
 *   <db>.tombstone
 *   <db>-<gen>/.changecounter  .dep  .meta  db.<ext>  <first:012>-<last:012>-<secs>.<ext>
 *   <db>-<gen>/.libsqlctl-durable   (ours; bottomless ignores it)
 *
 * `<db>` is the database name (`ns-<db_id>:<namespace>` inside the server), `<gen>` a generation
 * id (generation-id.ts). Parsers return null for keys of other databases, including databases
 * whose name merely starts with ours.
 */
import { isGenerationId } from './generation-id.js';

export type Compression = 'raw' | 'gz' | 'zstd';

export const COMPRESSIONS: readonly Compression[] = ['raw', 'gz', 'zstd'];

/** The extension a compression is written with (the same word). */
export function compressionExt(c: Compression): string {
  return c;
}

/** An extension as bottomless reads it: `gzip` is gz and the empty string raw; null for anything else. */
export function parseCompression(ext: string): Compression | null {
  switch (ext) {
    case 'raw':
    case '':
      return 'raw';
    case 'gz':
    case 'gzip':
      return 'gz';
    case 'zstd':
      return 'zstd';
    default:
      return null;
  }
}

/** The database name sqld uses for a namespace (`ns-<db_id>:<namespace>`; an empty id is allowed). */
export function sqldDbName(dbId: string, namespace: string): string {
  return `ns-${dbId}:${namespace}`;
}

/** The prefix of every generation of `db` (a listing of it yields the newest generation first). */
export function dbPrefix(db: string): string {
  return `${db}-`;
}

export function generationPrefix(db: string, gen: string): string {
  if (!isGenerationId(gen)) throw new RangeError(`not a generation id: ${gen}`);
  return `${db}-${gen}/`;
}

export const META_NAME = '.meta';
export const DEP_NAME = '.dep';
export const CHANGE_COUNTER_NAME = '.changecounter';
export const DURABLE_MARKER_NAME = '.libsqlctl-durable';

export function metaKey(db: string, gen: string): string {
  return generationPrefix(db, gen) + META_NAME;
}

export function depKey(db: string, gen: string): string {
  return generationPrefix(db, gen) + DEP_NAME;
}

export function changeCounterKey(db: string, gen: string): string {
  return generationPrefix(db, gen) + CHANGE_COUNTER_NAME;
}

/** Ours: how far this generation is known to be in the store (objects.ts, DurableMarker). */
export function durableMarkerKey(db: string, gen: string): string {
  return generationPrefix(db, gen) + DURABLE_MARKER_NAME;
}

export function snapshotKey(db: string, gen: string, c: Compression): string {
  return `${generationPrefix(db, gen)}db.${compressionExt(c)}`;
}

export function tombstoneKey(db: string): string {
  return `${db}.tombstone`;
}

const MAX_FRAME = 999_999_999_999;

/** The name of a batch of frames `first..last` (inclusive, 1-based) flushed at `unixSecs`. */
export function batchName(first: number, last: number, unixSecs: number, c: Compression): string {
  if (!Number.isSafeInteger(first) || first < 1 || !Number.isSafeInteger(last) || last < first || last > MAX_FRAME) {
    throw new RangeError(`invalid batch frame range ${first}..${last}`);
  }
  if (!Number.isSafeInteger(unixSecs) || unixSecs < 0) throw new RangeError(`invalid batch time ${unixSecs}`);
  return `${String(first).padStart(12, '0')}-${String(last).padStart(12, '0')}-${unixSecs}.${compressionExt(c)}`;
}

export function batchKey(db: string, gen: string, first: number, last: number, unixSecs: number, c: Compression): string {
  return generationPrefix(db, gen) + batchName(first, last, unixSecs, c);
}

export interface BatchName {
  kind: 'batch';
  first: number;
  last: number;
  unixSecs: number;
  compression: Compression;
}

export type GenerationObject =
  | BatchName
  | { kind: 'snapshot'; compression: Compression }
  | { kind: 'meta' | 'dep' | 'changecounter' | 'durable' }
  | { kind: 'other'; name: string };

const DIGITS = /^\d+$/;

function decimal(s: string): number | null {
  if (!DIGITS.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Parses a batch name the way bottomless does (§1.3): extension after the last `.`, time between
 * the last `-` and that `.`, LAST between the two last `-`, FIRST before them. Stricter in that
 * the numbers must be plain decimal digits, FIRST ≥ 1 and FIRST ≤ LAST; null otherwise.
 */
export function parseBatchName(name: string): BatchName | null {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return null;
  const compression = parseCompression(name.slice(dot + 1));
  if (compression === null) return null;
  const dash1 = name.lastIndexOf('-', dot - 1);
  if (dash1 <= 0) return null;
  const dash2 = name.lastIndexOf('-', dash1 - 1);
  if (dash2 < 0) return null;
  const first = decimal(name.slice(0, dash2));
  const last = decimal(name.slice(dash2 + 1, dash1));
  const unixSecs = decimal(name.slice(dash1 + 1, dot));
  if (first === null || last === null || unixSecs === null || first < 1 || last < first) return null;
  return { kind: 'batch', first, last, unixSecs, compression };
}

/** The generation id of a listing's common prefix `<db>-<gen>/`, or null (another db, not an id). */
export function parseGenerationPrefix(db: string, prefix: string): string | null {
  const head = dbPrefix(db);
  if (!prefix.startsWith(head) || prefix.length !== head.length + 37 || !prefix.endsWith('/')) return null;
  const gen = prefix.slice(head.length, -1);
  return isGenerationId(gen) ? gen : null;
}

/**
 * Splits a key below a generation of `db` into the generation and what the object is; null for a
 * key of another database or outside any generation. A name with a further `/` is `other`.
 */
export function parseGenerationKey(db: string, key: string): { generation: string; object: GenerationObject } | null {
  const head = dbPrefix(db);
  if (!key.startsWith(head)) return null;
  const slash = head.length + 36;
  if (key.length <= slash || key[slash] !== '/') return null;
  const generation = key.slice(head.length, slash);
  if (!isGenerationId(generation)) return null;
  return { generation, object: parseObjectName(key.slice(slash + 1)) };
}

function parseObjectName(name: string): GenerationObject {
  switch (name) {
    case META_NAME:
      return { kind: 'meta' };
    case DEP_NAME:
      return { kind: 'dep' };
    case CHANGE_COUNTER_NAME:
      return { kind: 'changecounter' };
    case DURABLE_MARKER_NAME:
      return { kind: 'durable' };
  }
  if (name.includes('/')) return { kind: 'other', name };
  // Snapshots only under the names bottomless looks for (db.raw, db.gz, db.zstd).
  if (name === 'db.raw' || name === 'db.gz' || name === 'db.zstd') {
    return { kind: 'snapshot', compression: name.slice(3) as Compression };
  }
  return parseBatchName(name) ?? { kind: 'other', name };
}
