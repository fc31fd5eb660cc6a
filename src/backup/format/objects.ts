/**
 * Byte layouts of bottomless' small objects (spec §1.5) and the metadata we add to the others.
 *
 * - `.meta`: page size u32 BE + the WAL header's checksum words (seed of the frame chain), 12 bytes.
 * - `.dep`: the parent generation id as 16 raw UUID bytes.
 * - `.changecounter`: SQLite's file change counter (database header bytes 24..28), u32 BE.
 * - `<db>.tombstone`: i64 BE Unix seconds; generations created at or before it are deleted.
 *
 * Our additions travel as `x-amz-meta-*` (keys lower-case without the prefix, US-ASCII values) and
 * in `.libsqlctl-durable`; bottomless ignores both.
 *
 * Commit times (`libsqlctl-commits` on a batch): every transaction of the batch as
 * `<lastFrame>.<unixMs>` joined by `;`, numbers in base 36. The first entry is absolute, each
 * later one is the delta from the entry before it: frames strictly increase (delta ≥ 1), a time
 * delta may be negative (a clock stepping back) and is then written with a leading `-`.
 * Example: commits ending at frames 12, 15, 40 at 1700000000000, +3 ms, +250 ms →
 * `c.loyw3v28;3.3;p.6y`.
 *
 * A list longer than the header budget in that plain form is packed: `~` and then segments joined
 * by `,`, each the base64 of a raw deflate stream; inflated and concatenated in order they give the
 * plain form. A busy server's list (frame deltas of 1, time deltas of a few ms) packs about five to
 * one, so a batch holds thousands of transactions rather than a few hundred: fewer PUTs while
 * writing, fewer GETs when restoring. Readers before the packed form refuse it as damaged.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { isUuid } from '../../engine/wal/log-id.js';
import { DIGEST_HEX, type DigestKind, type SnapshotDigest } from './digest.js';
import { CorruptBackupError } from './errors.js';
import { generationIdFromBytes, generationIdToBytes, isGenerationId } from './generation-id.js';

export interface GenerationMeta {
  pageSize: number;
  /** WAL header bytes 24..32 as two u32: the seed of the generation's frame checksum chain. */
  checksum: readonly [number, number];
}

function validPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

function expectLength(buf: Uint8Array, size: number, key: string): Buffer {
  if (buf.length !== size) throw new CorruptBackupError(key, `expected ${size} bytes, got ${buf.length}`);
  return Buffer.from(buf.buffer, buf.byteOffset, buf.length);
}

export function encodeMeta(meta: GenerationMeta): Buffer {
  if (!validPageSize(meta.pageSize)) throw new RangeError(`invalid page size ${meta.pageSize}`);
  const out = Buffer.alloc(12);
  out.writeUInt32BE(meta.pageSize, 0);
  out.writeUInt32BE(meta.checksum[0] >>> 0, 4);
  out.writeUInt32BE(meta.checksum[1] >>> 0, 8);
  return out;
}

export function decodeMeta(buf: Uint8Array, key: string): GenerationMeta {
  const b = expectLength(buf, 12, key);
  const pageSize = b.readUInt32BE(0);
  if (!validPageSize(pageSize)) throw new CorruptBackupError(key, `invalid page size ${pageSize}`);
  return { pageSize, checksum: [b.readUInt32BE(4), b.readUInt32BE(8)] };
}

export function encodeDep(parent: string): Buffer {
  if (!isGenerationId(parent)) throw new RangeError(`not a generation id: ${parent}`);
  return generationIdToBytes(parent);
}

/** The parent generation named by a `.dep` object. */
export function decodeDep(buf: Uint8Array, key: string): string {
  const id = generationIdFromBytes(expectLength(buf, 16, key));
  if (!isGenerationId(id)) throw new CorruptBackupError(key, `${id} is not a generation id`);
  return id;
}

export function encodeChangeCounter(counter: number): Buffer {
  if (!Number.isInteger(counter) || counter < 0 || counter > 0xffff_ffff) throw new RangeError(`invalid change counter ${counter}`);
  const out = Buffer.alloc(4);
  out.writeUInt32BE(counter, 0);
  return out;
}

export function decodeChangeCounter(buf: Uint8Array, key: string): number {
  return expectLength(buf, 4, key).readUInt32BE(0);
}

/** The file change counter of a database, from (at least) the first 28 bytes of its file. */
export function changeCounterOfDbHeader(header: Uint8Array): number {
  if (header.length < 28) throw new RangeError(`a database header has at least 28 bytes, got ${header.length}`);
  return Buffer.from(header.buffer, header.byteOffset, header.length).readUInt32BE(24);
}

export function encodeTombstone(unixSecs: number): Buffer {
  if (!Number.isSafeInteger(unixSecs)) throw new RangeError(`invalid tombstone time ${unixSecs}`);
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(BigInt(unixSecs), 0);
  return out;
}

/** The tombstone's threshold in Unix seconds (values beyond ±2^53 are taken for damage). */
export function decodeTombstone(buf: Uint8Array, key: string): number {
  const v = expectLength(buf, 8, key).readBigInt64BE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new CorruptBackupError(key, `tombstone time ${v} out of range`);
  return Number(v);
}

// ---- our metadata ----------------------------------------------------------------------------

/** Snapshot: CRC-64/GO-ISO (16 hex digits) of the uncompressed database file (what we write). */
export const META_SNAPSHOT_CRC64 = 'libsqlctl-crc64';
/** Snapshot: sha256 (hex) of the uncompressed database file (snapshots made before the CRC). */
export const META_SNAPSHOT_SHA256 = 'libsqlctl-sha256';
/** Snapshot: pages in the uncompressed database file (decimal). */
export const META_SNAPSHOT_PAGES = 'libsqlctl-page-count';
/** Batch: the commit times of its transactions (format in the module comment). */
export const META_BATCH_COMMITS = 'libsqlctl-commits';

/**
 * The longest commit-times value we write. S3 allows 2 KB of user metadata per object (keys plus
 * values); this leaves room for the header name and the other fields.
 */
export const COMMIT_TIMES_BUDGET = 1800;

export interface SnapshotInfo {
  digest: SnapshotDigest;
  pageCount: number;
}

const DIGEST_META: Record<DigestKind, string> = { crc64: META_SNAPSHOT_CRC64, sha256: META_SNAPSHOT_SHA256 };

export function encodeSnapshotMetadata(info: SnapshotInfo): Record<string, string> {
  const { kind, hex } = info.digest;
  if (!DIGEST_HEX[kind].test(hex)) throw new RangeError(`not a ${kind} hex digest: ${hex}`);
  if (!Number.isSafeInteger(info.pageCount) || info.pageCount < 0) throw new RangeError(`invalid page count ${info.pageCount}`);
  return { [DIGEST_META[kind]]: hex, [META_SNAPSHOT_PAGES]: String(info.pageCount) };
}

/** Our snapshot fields, or null when the snapshot has none (written by sqld). With both digests, the CRC is the one checked. */
export function decodeSnapshotMetadata(meta: Readonly<Record<string, string>>, key: string): SnapshotInfo | null {
  const crc64 = meta[META_SNAPSHOT_CRC64];
  const sha256 = meta[META_SNAPSHOT_SHA256];
  const pages = meta[META_SNAPSHOT_PAGES];
  if (crc64 === undefined && sha256 === undefined && pages === undefined) return null;
  const kind: DigestKind = crc64 !== undefined || sha256 === undefined ? 'crc64' : 'sha256';
  const hex = kind === 'crc64' ? crc64 : sha256;
  if (hex === undefined || !DIGEST_HEX[kind].test(hex)) throw new CorruptBackupError(key, `bad ${DIGEST_META[kind]} metadata ${JSON.stringify(hex)}`);
  if (pages === undefined || !/^\d{1,15}$/.test(pages)) throw new CorruptBackupError(key, `bad ${META_SNAPSHOT_PAGES} metadata ${JSON.stringify(pages)}`);
  return { digest: { kind, hex }, pageCount: Number(pages) };
}

export interface CommitTime {
  /** Frame number (in its generation) of the transaction's commit frame. */
  lastFrame: number;
  unixMs: number;
}

/** Plain text per packed segment, at most (a segment is packed once it holds this much). */
const SEGMENT_PLAIN = 4096;
/** Marks the packed form (the plain form never holds it). */
const PACKED_PREFIX = '~';
/** Plain text a packed value may unpack to, at most (far above what a batch holds). */
const MAX_UNPACKED = 4 * 1024 * 1024;

/** zlib's bound on raw deflate output for `n` input bytes (default window and memory level). */
function deflateBound(n: number): number {
  return n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 7;
}

function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

function packSegment(plain: string): string {
  return deflateRawSync(Buffer.from(plain, 'latin1'), { level: 9 }).toString('base64');
}

/**
 * Builds a commit-times value entry by entry, knowing at every step whether one more fits (the
 * batcher cuts with it). The plain text is kept whole; past the budget the value is the packed
 * form, whose segments are packed as they fill (each plain character once), and whose open segment
 * counts at zlib's worst case until it is packed.
 */
export class CommitTimesWriter {
  private plain = '';
  private prev: CommitTime | null = null;
  private readonly packed: string[] = [];
  private packedLength = 0;
  /** Plain text after the last packed segment. */
  private open = '';
  private value: string | null = '';

  /** Whether `c` can be appended within `budget` (may pack what is held: the value stays the same). */
  canAdd(c: CommitTime, budget = COMMIT_TIMES_BUDGET): boolean {
    return this.fits(this.entry(c).length, budget);
  }

  /** Appends `c` unless the value would outgrow `budget`; says whether it did. */
  tryAdd(c: CommitTime, budget = COMMIT_TIMES_BUDGET): boolean {
    const entry = this.entry(c);
    if (!this.fits(entry.length, budget)) return false;
    this.plain += entry;
    this.open += entry;
    this.prev = c;
    this.value = null;
    if (this.open.length >= SEGMENT_PLAIN) this.packOpen();
    return true;
  }

  /** The value: the plain form while it is within COMMIT_TIMES_BUDGET, else the packed form. */
  toString(): string {
    if (this.value !== null) return this.value;
    if (this.plain.length <= COMMIT_TIMES_BUDGET) this.value = this.plain;
    else this.value = PACKED_PREFIX + [...this.packed, ...(this.open === '' ? [] : [packSegment(this.open)])].join(',');
    return this.value;
  }

  private fits(extra: number, budget: number): boolean {
    if (this.plain.length + extra <= budget || this.packedBound(extra) <= budget) return true;
    if (this.open === '') return false;
    this.packOpen();
    return this.packedBound(extra) <= budget;
  }

  /** The packed form's length at most, with `extra` more plain characters. */
  private packedBound(extra: number): number {
    return PACKED_PREFIX.length + this.packedLength + this.packed.length + base64Length(deflateBound(this.open.length + extra));
  }

  private packOpen(): void {
    const segment = packSegment(this.open);
    this.packed.push(segment);
    this.packedLength += segment.length;
    this.open = '';
  }

  private entry(c: CommitTime): string {
    if (!Number.isSafeInteger(c.lastFrame) || c.lastFrame < 1) throw new RangeError(`invalid commit frame ${c.lastFrame}`);
    if (!Number.isSafeInteger(c.unixMs) || c.unixMs < 0) throw new RangeError(`invalid commit time ${c.unixMs}`);
    const prev = this.prev;
    if (prev === null) return `${c.lastFrame.toString(36)}.${c.unixMs.toString(36)}`;
    if (c.lastFrame <= prev.lastFrame) throw new RangeError(`commit frames must increase: ${c.lastFrame} after ${prev.lastFrame}`);
    return `;${(c.lastFrame - prev.lastFrame).toString(36)}.${(c.unixMs - prev.unixMs).toString(36)}`;
  }
}

/** The value for `commits` (with no budget: packed when the plain form is longer than the budget). */
export function encodeCommitTimes(commits: readonly CommitTime[]): string {
  const w = new CommitTimesWriter();
  for (const c of commits) w.tryAdd(c, Number.POSITIVE_INFINITY);
  return w.toString();
}

/** Whether the commit times of `commits` fit in one batch's metadata. */
export function commitTimesFit(commits: readonly CommitTime[]): boolean {
  return encodeCommitTimes(commits).length <= COMMIT_TIMES_BUDGET;
}

const PACKED = /^~[A-Za-z0-9+/]+={0,2}(,[A-Za-z0-9+/]+={0,2})*$/;

/** The plain form of a value (a packed one unpacked). */
function plainCommitTimes(s: string, key: string): string {
  if (!s.startsWith(PACKED_PREFIX)) return s;
  if (!PACKED.test(s)) throw new CorruptBackupError(key, `bad packed ${META_BATCH_COMMITS} value`);
  try {
    return s
      .slice(PACKED_PREFIX.length)
      .split(',')
      .map((segment) => inflateRawSync(Buffer.from(segment, 'base64'), { maxOutputLength: MAX_UNPACKED }).toString('latin1'))
      .join('');
  } catch (err) {
    throw new CorruptBackupError(key, `packed ${META_BATCH_COMMITS} does not inflate: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * The base-36 number (an optional `-`, then 1 to 11 of `0-9a-z`) in `s` from `start` to `end`, or
 * NaN when that is not one.
 */
function base36(s: string, start: number, end: number): number {
  const negative = start < end && s.charCodeAt(start) === 0x2d;
  const from = negative ? start + 1 : start;
  if (end - from < 1 || end - from > 11) return Number.NaN;
  let v = 0;
  for (let i = from; i < end; i++) {
    const c = s.charCodeAt(i);
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x7a ? c - 0x61 + 10 : -1;
    if (d < 0) return Number.NaN;
    v = v * 36 + d;
  }
  return negative ? -v : v;
}

/**
 * Decodes a batch's commit times; `firstFrame` (and `lastFrame` when given) is the batch's range
 * from its key, which every commit frame must lie in. One pass over the text (a batch of 20 000
 * commits is read on the restore's critical path).
 */
export function decodeCommitTimes(value: string, firstFrame: number, key: string, lastFrame?: number): CommitTime[] {
  const s = plainCommitTimes(value, key);
  if (s === '') return [];
  const out: CommitTime[] = [];
  let prev: CommitTime | null = null;
  for (let start = 0; start <= s.length; ) {
    let end = s.indexOf(';', start);
    if (end < 0) end = s.length;
    // One `.` in the entry: frame, then time.
    const dot = s.indexOf('.', start);
    const one = dot >= 0 && dot < end && s.lastIndexOf('.', end - 1) === dot;
    const f = one ? base36(s, start, dot) : Number.NaN;
    const t = one ? base36(s, dot + 1, end) : Number.NaN;
    if (Number.isNaN(f) || Number.isNaN(t)) throw new CorruptBackupError(key, `bad ${META_BATCH_COMMITS} entry ${JSON.stringify(s.slice(start, end))}`);
    const c: CommitTime = prev === null ? { lastFrame: f, unixMs: t } : { lastFrame: prev.lastFrame + f, unixMs: prev.unixMs + t };
    const bad =
      !Number.isSafeInteger(c.lastFrame) ||
      !Number.isSafeInteger(c.unixMs) ||
      c.unixMs < 0 ||
      (prev === null ? c.lastFrame < firstFrame : f < 1) ||
      (lastFrame !== undefined && c.lastFrame > lastFrame);
    if (bad) throw new CorruptBackupError(key, `${META_BATCH_COMMITS} entry ${JSON.stringify(s.slice(start, end))} is out of range`);
    out.push(c);
    prev = c;
    start = end + 1;
  }
  return out;
}

// ---- the durable marker ----------------------------------------------------------------------

/** `<db>-<gen>/.libsqlctl-durable`: every frame of the generation up to `lastFrame` is in the store. */
export interface DurableMarker {
  /** The engine's replication log id. */
  logId: string;
  /** Last frame number (within the generation) known to be stored; 0 = none yet. */
  lastFrame: number;
  /** The replication log's frame number of that frame. */
  lastFrameNo: bigint;
  /** The generation ended: no frame will be added to it. */
  sealed: boolean;
  at: Date;
  /**
   * Copies of what the generation's `.meta` and `.dep` hold (fixed when it starts), so that a
   * restore reads one small object per generation instead of three. Absent from markers written
   * before they were added; `parent` null: no `.dep`.
   */
  meta?: GenerationMeta;
  parent?: string | null;
}

export function encodeDurableMarker(m: DurableMarker): Buffer {
  if (!isUuid(m.logId)) throw new RangeError(`not a log id: ${m.logId}`);
  if (!Number.isSafeInteger(m.lastFrame) || m.lastFrame < 0) throw new RangeError(`invalid last frame ${m.lastFrame}`);
  if (m.lastFrameNo < 0n) throw new RangeError(`invalid frame number ${m.lastFrameNo}`);
  if (Number.isNaN(m.at.getTime())) throw new RangeError('invalid marker time');
  const json: Record<string, unknown> = { logId: m.logId, lastFrame: m.lastFrame, lastFrameNo: m.lastFrameNo.toString(), sealed: m.sealed, at: m.at.toISOString() };
  if (m.meta !== undefined) {
    encodeMeta(m.meta); // the same checks as .meta's
    json.pageSize = m.meta.pageSize;
    json.seed = [m.meta.checksum[0] >>> 0, m.meta.checksum[1] >>> 0];
  }
  if (m.parent !== undefined) {
    if (m.parent !== null && !isGenerationId(m.parent)) throw new RangeError(`not a generation id: ${m.parent}`);
    json.parent = m.parent;
  }
  return Buffer.from(JSON.stringify(json), 'utf8');
}

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function decodeDurableMarker(buf: Uint8Array, key: string): DurableMarker {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8'));
  } catch (e) {
    throw new CorruptBackupError(key, 'not JSON', { cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CorruptBackupError(key, 'not a JSON object');
  const o = v as Record<string, unknown>;
  const { logId, lastFrame, lastFrameNo, sealed, at } = o;
  if (typeof logId !== 'string' || !isUuid(logId)) throw new CorruptBackupError(key, 'bad logId');
  if (typeof lastFrame !== 'number' || !Number.isSafeInteger(lastFrame) || lastFrame < 0) throw new CorruptBackupError(key, 'bad lastFrame');
  if (typeof lastFrameNo !== 'string' || !/^(0|[1-9]\d*)$/.test(lastFrameNo)) throw new CorruptBackupError(key, 'bad lastFrameNo');
  if (typeof sealed !== 'boolean') throw new CorruptBackupError(key, 'bad sealed');
  const when = typeof at === 'string' ? new Date(at) : null;
  if (when === null || Number.isNaN(when.getTime())) throw new CorruptBackupError(key, 'bad at');
  const marker: DurableMarker = { logId, lastFrame, lastFrameNo: BigInt(lastFrameNo), sealed, at: when };
  const { pageSize, seed, parent } = o;
  if (pageSize !== undefined || seed !== undefined) {
    if (typeof pageSize !== 'number' || !validPageSize(pageSize)) throw new CorruptBackupError(key, 'bad pageSize');
    if (!Array.isArray(seed) || seed.length !== 2 || !isU32(seed[0]) || !isU32(seed[1])) throw new CorruptBackupError(key, 'bad seed');
    marker.meta = { pageSize, checksum: [seed[0], seed[1]] };
  }
  if (parent !== undefined) {
    if (parent !== null && (typeof parent !== 'string' || !isGenerationId(parent))) throw new CorruptBackupError(key, 'bad parent');
    marker.parent = parent;
  }
  return marker;
}
