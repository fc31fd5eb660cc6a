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
import { ChecksumChain, scanBatchFrames } from '../format/wal-frames.js';
import type { BackupStorage, ObjectMetadata, StoredObject } from '../storage/storage.js';
import type { PageApplier } from './apply.js';
import type { BatchObject } from './catalog.js';
import { BufferPool } from './buffer-pool.js';
import { decodeObject, gunzipInto } from './decode.js';
import { nativeRestore } from './native-gunzip.js';
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
  /** The payload is no longer read (nothing refers to it): its buffer may serve the next batch. */
  release(): void;
}

/**
 * Batches decompressed ahead of the one being applied (their fetches go further ahead). One is
 * enough to keep the applier busy; more only crowd the thread pool the snapshot's decoder runs on
 * (4 measured about 25 ms more CPU per restore than 1 on a 2-core machine, for the same wall time
 * at best), and touch a buffer of their own each.
 */
const DECODE_AHEAD = 1;

/**
 * A gz batch's frames, decoded into a buffer of `pool` when the native decoder is there (a
 * payload that does not fit its name's frame count is decoded by node:zlib, whose result the
 * frame count check then refuses); the buffer goes back to the pool at release().
 */
function pooledGunzip(pool: BufferPool, body: Buffer, b: BatchObject, bytes: number): { payload: Promise<Buffer>; release(): void } {
  let buf: Buffer | null = pool.take(bytes + 1);
  const payload = gunzipInto(nativeRestore!, body, buf, b.key).then((n) => (n === null ? decodeObject('gz', body, b.key, bytes) : buf!.subarray(0, n)));
  let released = false;
  return {
    payload,
    release() {
      if (released) return;
      released = true;
      // Given back once the decoder is done with it, whatever its outcome.
      void payload.then(
        () => {
          pool.give(buf!);
          buf = null;
        },
        () => undefined,
      );
    },
  };
}

/** One fetcher for the batches of every generation in `chain`, in order. */
export function batchFetcher(storage: BackupStorage, chain: readonly PlannedGeneration[], parallel: number, prefetchBytes: number): OrderedFetcher<FetchedBatch, BatchObject> {
  const items = chain.flatMap((g) => (g.info.meta === null ? [] : g.batches.map((b) => ({ b, pageSize: g.info.meta!.pageSize }))));
  const frameBytes = new Map(items.map(({ b, pageSize }) => [b, (b.last - b.first + 1) * (WAL_FRAME_HEADER_SIZE + pageSize)]));
  // The batch being applied, those decoded ahead of it, and one more.
  const pool = new BufferPool(DECODE_AHEAD + 2);
  const decode = (obj: StoredObject, b: BatchObject): FetchedBatch => {
    const bytes = frameBytes.get(b)!;
    const decoded = b.compression === 'gz' && nativeRestore !== null ? pooledGunzip(pool, obj.body, b, bytes) : { payload: decodeObject(b.compression, obj.body, b.key, bytes), release: () => undefined };
    decoded.payload.catch(() => undefined); // a batch after the point in time is never awaited
    return { metadata: obj.metadata, ...decoded };
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

/**
 * Checks that `commits` (ascending, as decoded) names exactly the batch's commit frames, in
 * order: the k-th commit frame of the batch then has the k-th commit time.
 */
function checkCommitTimes(commits: readonly CommitTime[], payload: Buffer, count: number, frameSize: number, b: BatchObject): void {
  let k = 0;
  for (let i = 0; i < count; i++) {
    const no = b.first + i;
    const isCommit = payload.readUInt32BE(i * frameSize + 4) !== 0;
    const listed = k < commits.length && commits[k]!.lastFrame === no;
    if (isCommit !== listed) {
      const what = isCommit ? `frame ${no} commits a transaction ${META_BATCH_COMMITS} does not list` : `${META_BATCH_COMMITS} lists frame ${no}, which is not a commit frame`;
      throw new CorruptBackupError(b.key, what);
    }
    if (listed) k++;
  }
  if (k < commits.length) throw new CorruptBackupError(b.key, `${META_BATCH_COMMITS} lists frame ${commits[k]!.lastFrame}, which is not a commit frame`);
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
  const frameSize = WAL_FRAME_HEADER_SIZE + meta.pageSize;
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
    // The payload is read in place (frame i at i × frameSize): no object per frame.
    const payload = await obj.payload;
    const { count } = scanBatchFrames(payload, meta.pageSize, b.key);
    const expected = b.last - b.first + 1;
    if (count !== expected) throw new CorruptBackupError(b.key, `holds ${count} frames, its name says ${expected}`);
    chain?.verifyPayload(payload, count, meta.pageSize, b.key, b.first);
    salts ??= [payload.readUInt32BE(8), payload.readUInt32BE(12)];
    for (let i = 0; i < count; i++) {
      const at = i * frameSize;
      if (payload.readUInt32BE(at + 8) !== salts[0] || payload.readUInt32BE(at + 12) !== salts[1]) {
        throw new CorruptBackupError(b.key, `frame ${b.first + i} has other WAL salts than frame 1 of its generation`);
      }
    }
    if (commits !== null) checkCommitTimes(commits, payload, count, frameSize, b);
    let take = count;
    if (limitMs !== null && commits !== null && commits.some((c) => c.unixMs > limitMs)) {
      const lastOk = commits.filter((c) => c.unixMs <= limitMs).at(-1)?.lastFrame ?? b.first - 1;
      take = lastOk - b.first + 1;
      st.stopped = true;
    }
    let committed = 0;
    let lastCommitted = -1;
    for (let i = 0; i < take; i++) {
      if (st.fileReady !== null && applier.full) await st.fileReady;
      if (!applier.addFrame(payload, i * frameSize)) continue;
      committed++;
      lastCommitted = i;
    }
    if (lastCommitted >= 0) {
      // The batch's last commit applied (its time: the k-th commit time for the k-th commit frame).
      const ms = commits?.[committed - 1]?.unixMs;
      st.lastCommit = ms === undefined ? { at: new Date(b.unixSecs * 1000), exact: false } : { at: new Date(ms), exact: true };
      out.lastFrame = b.first + lastCommitted;
    }
    // The open transaction's pages are copied out of the payload, which then serves a later batch.
    applier.ownPending();
    obj.release();
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
