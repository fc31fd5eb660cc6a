/**
 * Backups built the way a server would have made them, from real SQLite files: a snapshot is a
 * database file the sqlite3 CLI wrote, batches are slices of a real `-wal` (the CLI is killed with
 * SIGKILL so nothing checkpoints it away). Objects are compressed by Debian's gzip and zstd, or
 * raw, and written with the format modules.
 */
import { randomUUID } from 'node:crypto';
import type { SnapshotDigest } from '../../../src/backup/format/digest.js';
import { newGenerationId } from '../../../src/backup/format/generation-id.js';
import { crc64GoIso } from '../../../src/engine/wal/crc64.js';
import { batchKey, changeCounterKey, type Compression, depKey, durableMarkerKey, metaKey, snapshotKey } from '../../../src/backup/format/layout.js';
import {
  changeCounterOfDbHeader,
  encodeChangeCounter,
  encodeCommitTimes,
  encodeDep,
  encodeDurableMarker,
  type DurableMarker,
  encodeMeta,
  encodeSnapshotMetadata,
  META_BATCH_COMMITS,
} from '../../../src/backup/format/objects.js';
import type { BackupStorage } from '../../../src/backup/storage/storage.js';
import { parseWalHeader, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader } from '../../../src/engine/wal/sqlite-wal-format.js';
import { sqliteCli, walOfKilledCli } from '../../helpers/sqlite-cli.js';
import { runTool } from './format-fixtures.js';

export const PAGE_SIZE = 4096;
const FRAME = WAL_FRAME_HEADER_SIZE + PAGE_SIZE;

/** A database file made by the CLI (WAL mode, checkpointed): a snapshot. */
export async function makeDb(file: string, sql: string): Promise<void> {
  await sqliteCli(file, [`PRAGMA page_size=${PAGE_SIZE};`, 'PRAGMA journal_mode=WAL;', sql]);
}

export interface CapturedWal {
  header: WalHeader;
  /** The frames, without the WAL header. */
  frames: Buffer;
  count: number;
  /** Frame numbers of the commit frames, in order. */
  commits: number[];
}

/**
 * Runs `sql` in the CLI on `file` (WAL mode, no auto-checkpoint), kills it with SIGKILL and returns
 * the `-wal` it left. Then the CLI opens the file once more, which checkpoints: `file` holds the
 * state after the WAL (the expected result of a restore).
 */
export async function captureWal(file: string, sql: string): Promise<CapturedWal> {
  const wal = await walOfKilledCli(file, `PRAGMA wal_autocheckpoint=0;\n${sql}`);
  const header = parseWalHeader(wal);
  if (header === null) throw new Error('no WAL header');
  const frames = wal.subarray(WAL_HEADER_SIZE);
  const count = frames.length / FRAME;
  if (!Number.isInteger(count) || count === 0) throw new Error(`odd WAL size ${wal.length}`);
  const commits: number[] = [];
  for (let i = 0; i < count; i++) if (frames.readUInt32BE(i * FRAME + 4) !== 0) commits.push(i + 1);
  await sqliteCli(file, ['PRAGMA wal_checkpoint(TRUNCATE);']);
  return { header, frames: Buffer.from(frames), count, commits };
}

/** `n` transactions, each inserting row k (from `firstK`) with a blob spanning a few pages. */
export function insertSql(firstK: number, n: number, blob = 6000): string {
  return Array.from({ length: n }, (_, i) => `INSERT INTO t(k, v) VALUES (${firstK + i}, randomblob(${blob}));`).join('\n');
}

export async function compressWithCli(c: Compression, buf: Buffer): Promise<Buffer> {
  if (c === 'raw') return buf;
  return c === 'gz' ? runTool('gzip', ['-c'], buf) : runTool('zstd', ['-c', '-q'], buf);
}

/** A generation id at `ms` (deterministic order: later ms → sorts first). */
/** Our snapshot digest of `bytes`, computed in one piece (the code under test computes it piece by piece). */
export function crc64Of(bytes: Uint8Array): SnapshotDigest {
  return { kind: 'crc64', hex: crc64GoIso(bytes).toString(16).padStart(16, '0') };
}

export function genAt(ms: number): string {
  return newGenerationId(ms);
}

export async function putSnapshot(storage: BackupStorage, db: string, gen: string, bytes: Buffer, c: Compression, ours = true): Promise<string> {
  const key = snapshotKey(db, gen, c);
  const metadata = ours ? encodeSnapshotMetadata({ digest: crc64Of(bytes), pageCount: bytes.length / PAGE_SIZE }) : {};
  await storage.put(key, await compressWithCli(c, bytes), { metadata });
  await storage.put(changeCounterKey(db, gen), encodeChangeCounter(changeCounterOfDbHeader(bytes)));
  return key;
}

export async function putDep(storage: BackupStorage, db: string, gen: string, parent: string): Promise<void> {
  await storage.put(depKey(db, gen), encodeDep(parent));
}

/** A durable marker; `copies`: with copies of the generation's .meta and .dep, as the uploader writes them now. */
export async function putDurable(
  storage: BackupStorage,
  db: string,
  gen: string,
  lastFrame: number,
  sealed = true,
  copies?: Pick<DurableMarker, 'meta' | 'parent'>,
): Promise<void> {
  await storage.put(durableMarkerKey(db, gen), encodeDurableMarker({ logId: randomUUID(), lastFrame, lastFrameNo: BigInt(lastFrame), sealed, at: new Date(1_700_000_000_000), ...copies }));
}

export interface BatchPlan {
  /** Frames per batch (batches are cut by count, as sqld does, so a transaction may span two). */
  frames: number;
  compression?: Compression | ((batch: number) => Compression);
  /** The `<secs>` of batch i's key (default: a fixed time). */
  secs?: (batch: number, lastFrame: number) => number;
  /** Commit time (ms) of the commit frame; with it, batches carry our libsqlctl-commits. */
  commitMs?: (commitFrame: number) => number;
  /** Batches not uploaded (a hole or a lost tail). */
  skip?: readonly number[];
  /** Changes the (uncompressed) payload of batch i before it is compressed. */
  tamper?: (batch: number, payload: Buffer) => Buffer;
}

export interface UploadedBatch {
  key: string;
  first: number;
  last: number;
}

/** `.meta` and the WAL's frames as batches; returns every batch (also the skipped ones). */
export async function putWal(storage: BackupStorage, db: string, gen: string, wal: CapturedWal, plan: BatchPlan): Promise<UploadedBatch[]> {
  await storage.put(metaKey(db, gen), encodeMeta({ pageSize: wal.header.pageSize, checksum: wal.header.checksum }));
  const out: UploadedBatch[] = [];
  for (let i = 0, first = 1; first <= wal.count; i++, first += plan.frames) {
    const last = Math.min(wal.count, first + plan.frames - 1);
    const c = typeof plan.compression === 'function' ? plan.compression(i) : (plan.compression ?? 'raw');
    const key = batchKey(db, gen, first, last, plan.secs?.(i, last) ?? 1_700_000_000, c);
    out.push({ key, first, last });
    if (plan.skip?.includes(i) === true) continue;
    let payload: Buffer = wal.frames.subarray((first - 1) * FRAME, last * FRAME);
    if (plan.tamper !== undefined) payload = plan.tamper(i, Buffer.from(payload));
    const commits = wal.commits.filter((f) => f >= first && f <= last);
    const metadata: Record<string, string> = plan.commitMs === undefined ? {} : { [META_BATCH_COMMITS]: encodeCommitTimes(commits.map((f) => ({ lastFrame: f, unixMs: plan.commitMs!(f) }))) };
    await storage.put(key, await compressWithCli(c, payload), { metadata });
  }
  return out;
}
