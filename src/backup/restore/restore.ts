/**
 * Restore (spec §3, stricter): plan the chain, download the snapshot (or start from an empty file)
 * while the batches are fetched in parallel and applied strictly in order, one whole transaction
 * at a time, verifying the checksum chain of every generation; stop at the point in time; check
 * the result with `PRAGMA integrity_check` (while it is fsynced); only then rename it into place.
 * Everything is written to a temp file beside the destination, and a failure removes it: a failed
 * restore leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDirOf } from '../../engine/wal/fs-util.js';
import { CorruptBackupError } from '../format/errors.js';
import type { DigestKind } from '../format/digest.js';
import type { Compression } from '../format/layout.js';
import type { BackupStorage } from '../storage/storage.js';
import { BackupGapError, BackupUnusableError, RestoreIntegrityError, RestoreTargetExistsError } from './errors.js';
import { applyGeneration, type ApplyState, batchFetcher, type RestoredGeneration } from './replay.js';
import { PageApplier } from './apply.js';
import { type PlannedGap, type PlannedGeneration, planGaps, planRestore, type RestorePlan } from './plan.js';
import { type DownloadedSnapshot, downloadSnapshot } from './snapshot.js';
import type { SnapshotObject } from './catalog.js';

type SqliteDatabase = typeof import('better-sqlite3');

export type { RestoredGeneration } from './replay.js';

export type RestoreProgress =
  | { phase: 'plan'; generations: number }
  | { phase: 'snapshot'; bytes: number; totalBytes: number }
  | { phase: 'batches'; done: number; total: number; frames: number }
  | { phase: 'check' };

export interface RestoreOptions {
  storage: BackupStorage;
  /** The database name (`ns-<db_id>:<namespace>`). */
  db: string;
  generation?: string;
  /** Point in time: the state after the last transaction committed at or before it. */
  time?: Date;
  /** The database file to write. */
  out: string;
  /** Replace `out` when it exists (default: refuse). */
  replace?: boolean;
  /** Restore up to the first gap instead of refusing (the gap is reported). */
  allowGaps?: boolean;
  verifyCrc?: boolean;
  /** GETs at once (`LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX`, default 32): the batches, and the snapshot's ranges (at most 4 of them). */
  parallel?: number;
  /** Snapshot compression looked for first when a generation has several. */
  prefer?: Compression;
  /** Compressed bytes fetched ahead at most (beyond the batch being applied); default 256 MiB. */
  prefetchBytes?: number;
  /** Transaction bytes held in memory before spilling to disk; default 64 MiB. */
  memoryLimit?: number;
  onProgress?: (p: RestoreProgress) => void;
  /** Read every small object of the chain and check the durable markers' copies against them (verify). */
  readEveryObject?: boolean;
  /** Runs after every check passed, right before the rename (the data-dir target invalidates the log here). */
  beforeReplace?: () => void;
}

export type CheckName = 'snapshot digest' | 'checksum chain' | 'contiguous frames' | 'durable marker' | 'commit times' | 'integrity check';

export interface RestoreCheck {
  name: CheckName;
  status: 'ok' | 'skipped' | 'failed';
  detail: string;
}

export interface RestoreReport {
  db: string;
  generation: string;
  out: string;
  /** Oldest first. */
  chain: RestoredGeneration[];
  /** digest: the one checked (null: the snapshot carries none). */
  snapshot: { generation: string; key: string; compression: Compression; bytes: number; pageCount: number; digest: DigestKind | null; digestVerified: boolean } | null;
  fromEmpty: boolean;
  pageSize: number;
  /** Pages of the restored file. */
  pageCount: number;
  batches: number;
  frames: number;
  transactions: number;
  /** Frames dropped because their transaction has no commit frame in the backup. */
  framesDiscarded: number;
  /** Commit time of the last applied transaction: exact from our commit times, else its batch's time. */
  lastCommit: { at: Date; exact: boolean } | null;
  time: Date | null;
  /** With a time: one commit (our commit times everywhere it mattered) or one batch (sqld's batches). */
  precision: 'commit' | 'batch' | null;
  /** Where the restore stopped before the end of the chain. */
  stoppedAt: { reason: 'time' | 'gap'; generation: string; frame: number } | null;
  /** Gaps stepped over with allowGaps (the restore stopped at the first). */
  gaps: PlannedGap[];
  /** Gaps after the point restored to (not needed by this restore, but the backup is incomplete). */
  laterGaps: PlannedGap[];
  checks: RestoreCheck[];
}

const DEFAULT_PREFETCH_BYTES = 256 * 1024 * 1024;
const DEFAULT_PARALLEL = 32;
/** Memory map for the integrity check (SQLite caps it at its own compile-time maximum, 2 GiB for better-sqlite3's). */
export const INTEGRITY_MMAP_BYTES = 2 ** 40;

/** A sibling temp name of `out`. */
function tempPath(out: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.restore-${randomBytes(4).toString('hex')}.tmp`);
}

function removeWithCompanions(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`, `${file}.spill`]) fs.rmSync(f, { force: true });
}

/**
 * A snapshot download started while the plan is still being made (the listing showed it first):
 * used when the plan's snapshot is the same object, else stopped and discarded.
 */
interface EarlySnapshot {
  key: string;
  download: Promise<DownloadedSnapshot>;
  stop(): Promise<void>;
  /** Progress is held back until the plan has been reported (phases come in order). */
  reportFrom(onProgress: ((p: RestoreProgress) => void) | undefined): void;
  /** Settles once the first bytes are in, or the download has ended (either way). */
  begun: Promise<void>;
}

function startEarlySnapshot(storage: BackupStorage, snapshot: Pick<SnapshotObject, 'key' | 'compression' | 'size'>, tmp: string, parallel: number): EarlySnapshot {
  const controller = new AbortController();
  let report: ((p: RestoreProgress) => void) | undefined;
  let last = 0;
  let answered: () => void = () => undefined;
  const begun = new Promise<void>((resolve) => (answered = resolve));
  const progress = (bytes: number): void => {
    answered();
    last = bytes;
    report?.({ phase: 'snapshot', bytes, totalBytes: snapshot.size });
  };
  const download = downloadSnapshot(storage, snapshot, tmp, { onBytes: progress, signal: controller.signal, parallel });
  download.then(answered, answered); // awaited by the restore, or dropped by stop()
  return {
    key: snapshot.key,
    begun,
    download,
    async stop() {
      controller.abort();
      await download.catch(() => undefined);
    },
    reportFrom(onProgress) {
      report = onProgress;
      if (last > 0) progress(last);
    },
  };
}

/** Restores a database into `opts.out`. */
export async function restoreDatabase(opts: RestoreOptions): Promise<RestoreReport> {
  if (opts.replace !== true && fs.existsSync(opts.out)) throw new RestoreTargetExistsError(opts.out);
  // SQLite is only needed for the final check: loaded while the plan waits for the store.
  const sqlite = import('better-sqlite3');
  sqlite.catch(() => undefined); // awaited by the check
  const tmp = tempPath(opts.out);
  // The snapshot may start downloading before the plan is complete, into the temp file (only where
  // its directory already exists: a failed plan must leave nothing behind, not even a directory).
  let early: EarlySnapshot | null = null;
  const canStartEarly = fs.existsSync(path.dirname(opts.out));
  let applier: PageApplier | null = null;
  try {
    const plan = await planRestore(opts.storage, opts.db, {
      ...(opts.generation === undefined ? {} : { generation: opts.generation }),
      ...(opts.time === undefined ? {} : { time: opts.time }),
      ...(opts.prefer === undefined ? {} : { prefer: opts.prefer }),
      ...(opts.readEveryObject === true ? { readEveryObject: true } : {}),
      ...(canStartEarly
        ? {
            onSnapshotListed: (snapshot: Omit<SnapshotObject, 'metadata'>) => {
              early = startEarlySnapshot(opts.storage, snapshot, tmp, opts.parallel ?? DEFAULT_PARALLEL);
              return early.begun;
            },
          }
        : {}),
    });
    opts.onProgress?.({ phase: 'plan', generations: plan.chain.length });
    const gaps = planGaps(plan);
    // Without a time every frame is needed: refuse a gap before applying anything.
    if (opts.allowGaps !== true && opts.time === undefined && gaps.length > 0) throw new BackupGapError(gaps[0]!);
    const started = early as EarlySnapshot | null;
    let download: Promise<DownloadedSnapshot> | null = null;
    if (started !== null) {
      if (started.key === plan.chain[0]!.info.snapshot?.key) {
        started.reportFrom(opts.onProgress);
        download = started.download; // still stopped by the failure path below (a no-op once it is done)
      } else {
        await started.stop();
        early = null;
      }
    }
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    const report = await restoreToTemp(plan, opts, tmp, (a) => (applier = a), download);
    await syncWhileChecking((applier as PageApplier | null)!, tmp, (await sqlite).default);
    report.checks.push({ name: 'integrity check', status: 'ok', detail: 'PRAGMA integrity_check: ok' });
    opts.beforeReplace?.();
    for (const f of [`${opts.out}-wal`, `${opts.out}-shm`, `${opts.out}-journal`]) fs.rmSync(f, { force: true });
    fs.renameSync(tmp, opts.out);
    fsyncDirOf(opts.out);
    return report;
  } catch (err) {
    await (early as EarlySnapshot | null)?.stop();
    (applier as PageApplier | null)?.destroy();
    removeWithCompanions(tmp);
    throw err;
  }
}

function pageSizeError(g: PlannedGeneration, pageSize: number): CorruptBackupError {
  return new CorruptBackupError(`${g.info.generation}/.meta`, `page size ${g.info.meta!.pageSize}, but the database has ${pageSize}-byte pages`);
}

/** The first generation with batches: its page size is the applier's (before the snapshot's is known). */
function firstWithBatches(plan: RestorePlan): number {
  return plan.chain.findIndex((g) => g.info.meta !== null && g.batches.length > 0);
}

/**
 * The error for the first generation up to the applier's (see firstWithBatches) whose page size is
 * not the snapshot's: the later ones are checked against the applier's as they are reached.
 */
function snapshotPageSizeError(plan: RestorePlan, pageSize: number): CorruptBackupError | null {
  const g = plan.chain.slice(0, firstWithBatches(plan) + 1).find((c) => c.info.meta !== null && c.info.meta.pageSize !== pageSize);
  return g === undefined ? null : pageSizeError(g, pageSize);
}

/**
 * The snapshot downloads into the temp file while the batches are fetched, decompressed, checked
 * and collected by the held applier; pages are written once the snapshot is in (or earlier, with
 * nothing else to do, when the applier's memory is full). Errors come in the order a sequential
 * restore would meet them: the snapshot's first.
 */
async function restoreToTemp(
  plan: RestorePlan,
  opts: RestoreOptions,
  tmp: string,
  setApplier: (a: PageApplier) => void,
  started: Promise<DownloadedSnapshot> | null,
): Promise<RestoreReport> {
  const oldest = plan.chain[0]!;
  const snapshotObj = oldest.info.snapshot;
  // What may be applied: up to the first gap, where the restore stops (or which it refuses).
  const gapAt = plan.chain.findIndex((g) => g.gap !== null);
  const upToGap = gapAt < 0 ? plan.chain : plan.chain.slice(0, gapAt + 1);
  const batches = batchFetcher(opts.storage, upToGap, opts.parallel ?? DEFAULT_PARALLEL, opts.prefetchBytes ?? DEFAULT_PREFETCH_BYTES);
  let download: Promise<DownloadedSnapshot> | null = started;
  if (download === null && snapshotObj !== null) {
    download = downloadSnapshot(opts.storage, snapshotObj, tmp, {
      onBytes: (bytes) => opts.onProgress?.({ phase: 'snapshot', bytes, totalBytes: snapshotObj.size }),
      parallel: opts.parallel ?? DEFAULT_PARALLEL,
    });
    download.catch(() => undefined); // awaited below, or in the failure path
  } else if (download === null) {
    fs.writeFileSync(tmp, Buffer.alloc(0), { mode: 0o644 });
  }
  try {
    return await applyChain(plan, opts, tmp, setApplier, batches, download);
  } catch (err) {
    batches.close(); // before waiting for the snapshot
    if (download !== null) {
      const first = await download.then(
        (got) => snapshotPageSizeError(plan, got.pageSize),
        (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
      );
      if (first !== null) throw first;
    }
    throw err;
  } finally {
    batches.close();
  }
}

async function applyChain(
  plan: RestorePlan,
  opts: RestoreOptions,
  tmp: string,
  setApplier: (a: PageApplier) => void,
  batches: ApplyState['batches'],
  download: Promise<DownloadedSnapshot> | null,
): Promise<RestoreReport> {
  const oldest = plan.chain[0]!;
  const withBatches = plan.chain[firstWithBatches(plan)];
  const pageSize = withBatches?.info.meta!.pageSize ?? (await download!).pageSize;
  const applier = new PageApplier(tmp, pageSize, opts.memoryLimit, { held: download !== null });
  setApplier(applier);
  // Batch progress waits for the snapshot's (one phase after the other, as the reporter expects).
  let deferred: RestoreProgress | null = null;
  const onProgress = opts.onProgress;
  const state: ApplyState = {
    applier,
    batches,
    fileReady: null,
    verifyCrc: opts.verifyCrc !== false,
    time: opts.time ?? null,
    totalBatches: plan.chain.reduce((n, g) => n + g.batches.length, 0),
    batchesDone: 0,
    lastCommit: null,
    batchPrecision: false,
    missingCommitTimes: 0,
    stopped: false,
    ...(onProgress === undefined ? {} : { onProgress: (p: RestoreProgress) => (state.fileReady === null ? onProgress(p) : (deferred = p)) }),
  };
  if (download !== null) {
    const ready = download.then((got) => {
      const mismatch = snapshotPageSizeError(plan, got.pageSize);
      if (mismatch !== null) throw mismatch;
      applier.release();
      state.fileReady = null;
      if (deferred !== null) onProgress?.(deferred);
    });
    ready.catch(() => undefined); // awaited by the apply loop or below
    state.fileReady = ready;
  }
  const chain: RestoredGeneration[] = [];
  const stepped: PlannedGap[] = [];
  let stoppedAt: RestoreReport['stoppedAt'] = null;
  let laterGaps: PlannedGap[] = [];
  for (const [i, g] of plan.chain.entries()) {
    if (g.info.meta !== null && g.info.meta.pageSize !== pageSize) throw pageSizeError(g, pageSize);
    const restored = await applyGeneration(g, state);
    chain.push(restored);
    if (plan.fromEmpty && applier.firstTransactionWrotePage1 === false) {
      throw new BackupUnusableError(`the chain of ${plan.generation} has no snapshot, and the first transaction of ${plan.chain[0]!.info.generation} does not write page 1: it does not start an empty database`);
    }
    if (state.stopped) {
      stoppedAt = { reason: 'time', generation: g.info.generation, frame: restored.lastFrame };
      laterGaps = planGaps({ ...plan, chain: plan.chain.slice(i) });
      break;
    }
    if (g.gap !== null) {
      if (opts.allowGaps !== true) throw new BackupGapError(g.gap);
      stepped.push(g.gap);
      stoppedAt = { reason: 'gap', generation: g.info.generation, frame: restored.lastFrame };
      laterGaps = planGaps({ ...plan, chain: plan.chain.slice(i + 1) });
      break;
    }
  }
  if (applier.transactions === 0 && plan.fromEmpty) throw new BackupUnusableError(`nothing to restore: the chain of ${plan.generation} has no snapshot and no committed transaction`);
  await state.fileReady;
  const got = download === null ? null : await download;
  const snapshot: RestoreReport['snapshot'] =
    got === null ? null : { generation: oldest.info.generation, key: oldest.info.snapshot!.key, compression: oldest.info.snapshot!.compression, bytes: got.bytes, pageCount: got.pageCount, digest: got.digest?.kind ?? null, digestVerified: got.digestVerified };
  applier.flush();
  opts.onProgress?.({ phase: 'check' });
  const frames = chain.reduce((n, g) => n + g.frames, 0);
  const report: RestoreReport = {
    db: plan.db,
    generation: plan.generation,
    out: opts.out,
    chain,
    snapshot,
    fromEmpty: plan.fromEmpty,
    pageSize,
    pageCount: fs.statSync(tmp).size / pageSize,
    batches: state.batchesDone,
    frames,
    transactions: applier.transactions,
    framesDiscarded: applier.framesDiscarded,
    lastCommit: state.lastCommit,
    time: opts.time ?? null,
    precision: opts.time === undefined ? null : state.batchPrecision ? 'batch' : 'commit',
    stoppedAt,
    gaps: stepped,
    laterGaps,
    checks: [],
  };
  report.checks = baseChecks(plan, report, state);
  return report;
}

function baseChecks(plan: RestorePlan, report: RestoreReport, state: ApplyState): RestoreCheck[] {
  const checks: RestoreCheck[] = [];
  if (report.snapshot === null) checks.push({ name: 'snapshot digest', status: 'skipped', detail: 'no snapshot: the chain starts from an empty database' });
  else if (report.snapshot.digestVerified) checks.push({ name: 'snapshot digest', status: 'ok', detail: `${report.snapshot.digest ?? 'digest'} and page count of ${report.snapshot.key} match` });
  else checks.push({ name: 'snapshot digest', status: 'skipped', detail: `${report.snapshot.key} carries no digest of ours (made by sqld?); its SQLite header was checked` });
  checks.push(
    state.verifyCrc
      ? { name: 'checksum chain', status: 'ok', detail: `${report.frames} frames in ${report.chain.length} generation(s)` }
      : { name: 'checksum chain', status: 'skipped', detail: 'LIBSQL_BOTTOMLESS_VERIFY_CRC is off' },
  );
  checks.push(
    report.gaps.length === 0
      ? { name: 'contiguous frames', status: 'ok', detail: `frames 1..last in every generation applied` }
      : { name: 'contiguous frames', status: 'failed', detail: `stopped at a gap: ${report.gaps[0]!.detail}` },
  );
  const without = plan.chain.filter((g) => g.info.durable === null).map((g) => g.info.generation);
  if (without.length === 0) checks.push({ name: 'durable marker', status: 'ok', detail: 'every generation reaches the frame its .libsqlctl-durable names' });
  else if (without.length === plan.chain.length) checks.push({ name: 'durable marker', status: 'skipped', detail: 'no .libsqlctl-durable (made by sqld?): a lost last batch cannot be detected' });
  else checks.push({ name: 'durable marker', status: 'ok', detail: `checked where present; no .libsqlctl-durable in ${without.join(', ')}` });
  if (report.time !== null) {
    checks.push(
      state.missingCommitTimes === 0
        ? { name: 'commit times', status: 'ok', detail: 'point in time to one commit' }
        : { name: 'commit times', status: 'skipped', detail: `${state.missingCommitTimes} batch(es) without libsqlctl-commits (made by sqld?): point in time to one batch` },
    );
  }
  return checks;
}

/**
 * fsync of the restored file (in the thread pool) while `PRAGMA integrity_check` reads it (on
 * this thread); the file is closed when both are done, the fsync's failure first.
 */
async function syncWhileChecking(applier: PageApplier, file: string, Database: SqliteDatabase): Promise<void> {
  const synced = new Promise<void>((resolve, reject) => fs.fsync(applier.descriptor!, (err) => (err === null ? resolve() : reject(err))));
  let failure: Error | null = null;
  try {
    checkIntegrity(file, Database);
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
  }
  await synced;
  applier.destroy();
  if (failure !== null) throw failure;
}

/** `PRAGMA integrity_check` on the restored file; the connection's -wal/-shm go with it. */
function checkIntegrity(file: string, Database: SqliteDatabase): void {
  let rows: string[];
  try {
    const db = new Database(file, { fileMustExist: true });
    try {
      db.pragma(`mmap_size = ${INTEGRITY_MMAP_BYTES}`); // reads the pages in place: several times faster than through the page cache
      rows = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
    } finally {
      db.close();
    }
  } catch (err) {
    throw new RestoreIntegrityError(err instanceof Error ? err.message : String(err));
  }
  if (rows.length !== 1 || rows[0] !== 'ok') throw new RestoreIntegrityError(rows.slice(0, 3).join('; ') + (rows.length > 3 ? `; … (${rows.length} problems)` : ''));
}
