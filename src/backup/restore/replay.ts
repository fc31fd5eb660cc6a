/**
 * Applies one generation of a plan: its batches (fetched and decompressed ahead by one fetcher
 * for the whole chain) cut into frames strictly in order, checked (frame count against the key,
 * the checksum chain from `.meta`, one salt pair, commit times against commit frames) and fed to
 * the page applier. With a point in time, a batch with our commit times is cut after its last
 * commit at or before that time; a batch without them (sqld's) is taken whole while its key's
 * time is not later.
 */
import { WAL_FRAME_HEADER_SIZE } from '../../engine/wal/sqlite-wal-format.js';
import { CorruptBackupError } from '../format/errors.js';
import { type CommitTime, decodeCommitTimes, META_BATCH_COMMITS } from '../format/objects.js';
import { type BatchFrame, ChecksumChain, parseBatchFrames } from '../format/wal-frames.js';
import type { BackupStorage, ObjectMetadata, StoredObject } from '../storage/storage.js';
import type { PageApplier } from './apply.js';
import type { BatchObject } from './catalog.js';
import { decodeObject } from './decode.js';
import { OrderedFetcher } from './fetch.js';
import type { PlannedGeneration } from './plan.js';
import type { RestoreProgress } from './restore.js';

export interface RestoredGeneration {
  generation: string;
  createdAt: Date;
  /** The restore started from this generation's snapshot. */
  snapshot: boolean;
  batches: number;
  /** Frames of applied transactions. */
  frames: number;
  transactions: number;
  /** Commit frame of the last applied transaction (0: none). */
  lastFrame: number;
}

/** A fetched batch: its metadata, and its payload being decompressed (awaited only when it is applied). */
export interface FetchedBatch {
  metadata: ObjectMetadata;
  payload: Promise<Buffer>;
}

/** Batches decompressed ahead of the one being applied. */
const DECODE_AHEAD = 4;

/** One fetcher for the batches of every generation in `chain`, in order. */
export function batchFetcher(storage: BackupStorage, chain: readonly PlannedGeneration[], parallel: number, prefetchBytes: number): OrderedFetcher<FetchedBatch, BatchObject> {
  const items = chain.flatMap((g) => (g.info.meta === null ? [] : g.batches.map((b) => ({ b, pageSize: g.info.meta!.pageSize }))));
  const frameBytes = new Map(items.map(({ b, pageSize }) => [b, (b.last - b.first + 1) * (WAL_FRAME_HEADER_SIZE + pageSize)]));
  const decode = (obj: StoredObject, b: BatchObject): FetchedBatch => {
    const payload = decodeObject(b.compression, obj.body, b.key, frameBytes.get(b)!);
    payload.catch(() => undefined); // a batch after the point in time is never awaited
    return { metadata: obj.metadata, payload };
  };
  return new OrderedFetcher(storage, items.map((i) => i.b), parallel, prefetchBytes, decode, DECODE_AHEAD);
}

/** What runs across the generations of one restore. */
export interface ApplyState {
  applier: PageApplier;
  /** The batches of the chain, in order (applyGeneration takes those of its generation). */
  batches: OrderedFetcher<FetchedBatch, BatchObject>;
  /** While the applier is held (the snapshot is downloading): settles once it is released. */
  fileReady: Promise<unknown> | null;
  verifyCrc: boolean;
  time: Date | null;
  totalBatches: number;
  batchesDone: number;
  lastCommit: { at: Date; exact: boolean } | null;
  /** A batch without commit times decided where a point-in-time restore ends (or was applied before it). */
  batchPrecision: boolean;
  /** Batches consulted for a point in time that had no commit times. */
  missingCommitTimes: number;
  /** The point in time was reached: nothing after it is applied. */
  stopped: boolean;
  onProgress?: (p: RestoreProgress) => void;
}

/** Commit frame → commit time, after checking the list names exactly the batch's commit frames. */
function commitTimesOf(commits: readonly CommitTime[], frames: readonly BatchFrame[], b: BatchObject): Map<number, number> {
  const byFrame = new Map(commits.map((c) => [c.lastFrame, c.unixMs]));
  frames.forEach((f, i) => {
    const no = b.first + i;
    const isCommit = f.sizeAfter !== 0;
    if (isCommit !== byFrame.has(no)) {
      const what = isCommit ? `frame ${no} commits a transaction ${META_BATCH_COMMITS} does not list` : `${META_BATCH_COMMITS} lists frame ${no}, which is not a commit frame`;
      throw new CorruptBackupError(b.key, what);
    }
  });
  return byFrame;
}

export async function applyGeneration(g: PlannedGeneration, st: ApplyState): Promise<RestoredGeneration> {
  const { info } = g;
  const out: RestoredGeneration = { generation: info.generation, createdAt: info.createdAt, snapshot: info.snapshot !== null, batches: 0, frames: 0, transactions: 0, lastFrame: 0 };
  const meta = info.meta;
  if (meta === null || g.batches.length === 0) return out;
  const applier = st.applier;
  const chain = st.verifyCrc ? new ChecksumChain(meta.checksum) : null;
  const limitMs = st.time?.getTime() ?? null;
  const limitSecs = limitMs === null ? null : Math.floor(limitMs / 1000);
  const framesBefore = applier.framesApplied;
  const txBefore = applier.transactions;
  let salts: readonly [number, number] | null = null;
  for (const b of g.batches) {
    const obj = (await st.batches.next())!;
    const text = obj.metadata[META_BATCH_COMMITS];
    const commits = text === undefined ? null : decodeCommitTimes(text, b.first, b.key, b.last);
    if (limitMs !== null && commits === null) {
      st.batchPrecision = true;
      st.missingCommitTimes++;
      if (b.unixSecs > limitSecs!) {
        st.stopped = true;
        break;
      }
    }
    const { frames } = parseBatchFrames(await obj.payload, meta.pageSize, b.key);
    const expected = b.last - b.first + 1;
    if (frames.length !== expected) throw new CorruptBackupError(b.key, `holds ${frames.length} frames, its name says ${expected}`);
    chain?.verifyBatch(frames, b.key, b.first);
    salts ??= [frames[0]!.salt1, frames[0]!.salt2];
    frames.forEach((f, i) => {
      if (f.salt1 !== salts![0] || f.salt2 !== salts![1]) throw new CorruptBackupError(b.key, `frame ${b.first + i} has other WAL salts than frame 1 of its generation`);
    });
    const times = commits === null ? null : commitTimesOf(commits, frames, b);
    let take = frames.length;
    if (limitMs !== null && commits !== null && commits.some((c) => c.unixMs > limitMs)) {
      const lastOk = commits.filter((c) => c.unixMs <= limitMs).at(-1)?.lastFrame ?? b.first - 1;
      take = lastOk - b.first + 1;
      st.stopped = true;
    }
    for (let i = 0; i < take; i++) {
      if (st.fileReady !== null && applier.full) await st.fileReady;
      if (!applier.add(frames[i]!)) continue;
      const no = b.first + i;
      const ms = times?.get(no);
      st.lastCommit = ms === undefined ? { at: new Date(b.unixSecs * 1000), exact: false } : { at: new Date(ms), exact: true };
      out.lastFrame = no;
    }
    out.batches++;
    st.batchesDone++;
    st.onProgress?.({ phase: 'batches', done: st.batchesDone, total: st.totalBatches, frames: applier.framesApplied });
    if (st.stopped) break;
  }
  // A generation ends at a checkpoint: frames after its last commit belong to no transaction.
  // At a point in time they belong to one committed after it.
  applier.discardPending(!st.stopped);
  out.frames = applier.framesApplied - framesBefore;
  out.transactions = applier.transactions - txBefore;
  return out;
}
