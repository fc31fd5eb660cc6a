/**
 * Fixtures for the engine's frame-capture / replication-log tests: namespaces in temp dirs, a logical
 * dump of a database, and rebuilding a database from the log (and its snapshots) with replay.
 */
import Database from 'better-sqlite3';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlConnection } from '../../src/engine/connection.js';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import type { FaultInjector } from '../../src/engine/faults.js';
import type { ReplicationLog } from '../../src/engine/log/replication-log.js';
import type { Logger } from '../../src/engine/logger.js';
import { NamespaceDb } from '../../src/engine/namespace-db.js';
import { PrimaryRole } from '../../src/engine/roles/primary-role.js';
import type { ExecResult, SqlValue } from '../../src/engine/values.js';
import { PAGE_SIZE, type Frame } from '../../src/engine/wal/frame.js';
import { replayIntoFile, type ReplayFrame } from '../../src/engine/wal/replay.js';
import { readSnapshot } from '../../src/engine/wal/snapshot-file.js';
import { WallogFile } from '../../src/engine/wal/wallog-file.js';

export interface NsOptions {
  /** Compaction frame budget (default: effectively never). */
  maxFrames?: bigint;
  /** Automatic checkpoint threshold (default: effectively never). */
  checkpointWalBytes?: number;
  snapshotExec?: string | null;
  /** `<db-path>` for snapshot-exec links (default: the parent of the namespace dir). */
  dbPath?: string;
  faults?: FaultInjector;
  logger?: Logger;
  /** Outside-writer poll interval (default: off). */
  outsidePollMs?: number | null;
  /** Checkpoint participants' preparation bound (default 5 s). */
  prepareTimeoutMs?: number;
}

const NEVER_FRAMES = 1n << 50n;
const NEVER_BYTES = 1 << 30;

/** Temp dirs and namespaces of one test; dispose() closes the namespaces, then removes the dirs. */
export class EngineScope {
  private readonly dirs: string[] = [];
  private readonly dbs: NamespaceDb[] = [];

  tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'libsqlctl-engine-'));
    this.dirs.push(dir);
    return dir;
  }

  /** Creates and opens a capturing namespace in `nsDir`. */
  async open(nsDir: string, opts: NsOptions = {}): Promise<NamespaceDb> {
    const ns = new NamespaceDb({
      paths: new NamespacePaths(nsDir),
      name: 'test-ns',
      txnTimeoutMs: 60_000,
      role: new PrimaryRole({
        checkpoint: { intervalMs: null, walBytes: opts.checkpointWalBytes ?? NEVER_BYTES, prepareTimeoutMs: opts.prepareTimeoutMs ?? 5000 },
        compaction: {
          maxFrames: opts.maxFrames ?? NEVER_FRAMES,
          maxDurationMs: null,
          snapshotExec: opts.snapshotExec ?? null,
          scriptBackupDir: join(opts.dbPath ?? join(nsDir, '..'), 'script_backup'),
        },
        outsidePollMs: opts.outsidePollMs ?? null,
      }),
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.faults ? { faults: opts.faults } : {}),
    });
    this.dbs.push(ns);
    await ns.open();
    return ns;
  }

  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    for (const ns of this.dbs.splice(0)) {
      try {
        if (ns.frames && !ns.frames.writeRefusal) await ns.frames.log.drain();
        await ns.close();
      } catch (err) {
        errors.push(err);
      }
    }
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'closing namespaces failed');
  }
}

export function framesOf(ns: NamespaceDb): PrimaryRole {
  const frames = ns.frames;
  if (!frames) throw new Error('namespace has no frame capture');
  return frames;
}

const EXEC_OPTS = { allowWrite: true, maxResponseBytes: 1e9, trusted: true };

/** Runs one statement with positional arguments. */
export function run(conn: SqlConnection, sql: string, positional: SqlValue[] = []): Promise<ExecResult> {
  return conn.execute(sql, { positional, named: new Map() }, EXEC_OPTS);
}

/** Deterministic pseudo-random bytes (xorshift32), so blobs fill pages with varied content. */
export function bytes(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed | 0) === 0 ? 0x9e3779b9 : seed | 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function tag(v: unknown): string {
  if (v === null) return 'n';
  if (typeof v === 'bigint') return `i${v}`;
  if (typeof v === 'number') return `r${v}`;
  if (typeof v === 'string') return `s${JSON.stringify(v)}`;
  if (v instanceof Uint8Array) return `x${Buffer.from(v).toString('hex')}`;
  throw new Error(`unexpected ${typeof v} value in a row`);
}

/** Schema (sqlite_master, rootpages included) and every table's rows ordered by rowid, values typed. */
export function dumpDb(db: Database.Database): string {
  const schema = db
    .prepare('SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY type, name')
    .safeIntegers(true)
    .raw(true)
    .all() as unknown[][];
  const out: string[] = [schema.map((r) => r.map(tag).join('|')).join('\n')];
  for (const row of schema) {
    if (row[0] !== 'table') continue;
    const name = String(row[1]);
    const rows = db
      .prepare(`SELECT rowid AS "__rowid", * FROM "${name.replaceAll('"', '""')}" ORDER BY rowid`)
      .safeIntegers(true)
      .raw(true)
      .all() as unknown[][];
    out.push(`== ${name}\n${rows.map((r) => r.map(tag).join('|')).join('\n')}`);
  }
  return out.join('\n');
}

export interface Inspection {
  dump: string;
  integrity: string;
  pageCount: bigint;
}

function inspect(db: Database.Database): Inspection {
  const integrity = db.prepare('PRAGMA integrity_check').pluck().all().map(String).join('\n');
  const pageCount = db.prepare('PRAGMA page_count').safeIntegers(true).pluck().get() as bigint;
  return { dump: dumpDb(db), integrity, pageCount };
}

/** Opens a database file read-only, inspects it, closes it. */
export function inspectFile(path: string): Inspection {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return inspect(db);
  } finally {
    db.close();
  }
}

/** What a fresh reader of the primary sees (committed data, WAL included). */
export function inspectPrimary(ns: NamespaceDb): Inspection {
  return inspectFile(ns.dbFile);
}

/**
 * Bytes of WAL frames not yet checkpointed into the database. (The `-wal` file's size says little:
 * checkpoints use RESTART, which keeps the file and lets SQLite overwrite it from the start.)
 */
export function pendingWal(ns: NamespaceDb): number {
  return framesOf(ns).pendingWalBytes();
}

const CHUNK = 200;

/**
 * Reads the log from `from` to its end in chunks, checking that frame numbers are consecutive,
 * and yields the frames. `seen` receives the frame count and the last frame number.
 */
export function* logFrames(log: ReplicationLog, from: bigint, seen: { count: number; last: bigint | null }): Generator<Frame> {
  const end = log.nextFrameNo;
  let next = from;
  for (let guard = 0; next < end; guard++) {
    if (guard > 1_000_000) throw new Error('log read does not progress');
    const frames = log.readFrames(next, CHUNK);
    if (frames.length === 0) throw new Error(`log ends at ${next}, before its nextFrameNo ${end}`);
    for (const f of frames) {
      if (f.frameNo !== next) throw new Error(`frame numbers jump: expected ${next}, got ${f.frameNo}`);
      next += 1n;
      seen.count += 1;
      seen.last = f.frameNo;
      yield f;
    }
  }
}

/** Replays the whole log (from frame 0; it must not have been compacted) into `out`. */
export function replayLog(log: ReplicationLog, out: string): { count: number; last: bigint | null } {
  const seen = { count: 0, last: null as bigint | null };
  replayIntoFile(out, logFrames(log, 0n, seen));
  return seen;
}

/**
 * Rebuilds the database from every snapshot (ascending; each snapshot's frames carry size_after 0,
 * its header holds the database size after its range) and then the log suffix. Checks that the
 * snapshots and the log cover the frame numbers from 0 without gap or overlap.
 */
export function replayWithSnapshots(log: ReplicationLog, out: string): { snapshots: number; suffixFrames: number } {
  let expectedStart = 0n;
  const snaps = log.snapshots();
  for (const s of snaps) {
    if (s.startFrameNo !== expectedStart) throw new Error(`snapshot ${s.path} starts at ${s.startFrameNo}, expected ${expectedStart}`);
    const { header, frames } = readSnapshot(s.path);
    if (header.logId !== log.logId) throw new Error(`snapshot ${s.path} has log id ${header.logId}, the log ${log.logId}`);
    if (header.startFrameNo !== s.startFrameNo || header.endFrameNo !== s.endFrameNo) {
      throw new Error(`snapshot ${s.path} header range ${header.startFrameNo}-${header.endFrameNo} differs from its name`);
    }
    const list: ReplayFrame[] = [...frames].map((f) => ({ pageNo: f.pageNo, sizeAfter: 0, page: f.page }));
    const last = list.at(-1);
    if (last) {
      last.sizeAfter = header.sizeAfter;
      replayIntoFile(out, list);
    } else {
      const fd = openSync(out, constants.O_RDWR | constants.O_CREAT, 0o644);
      try {
        ftruncateSync(fd, header.sizeAfter * PAGE_SIZE);
      } finally {
        closeSync(fd);
      }
    }
    expectedStart = s.endFrameNo + 1n;
  }
  if (log.startFrameNo !== expectedStart) throw new Error(`the log starts at ${log.startFrameNo}, the snapshots end before ${expectedStart}`);
  const seen = { count: 0, last: null as bigint | null };
  replayIntoFile(out, logFrames(log, log.startFrameNo, seen));
  return { snapshots: snaps.length, suffixFrames: seen.count };
}

/** The header of a `wallog` file on disk (opened read-only, verified, closed). */
export function wallogHeader(path: string): { logId: string; frameCount: bigint; startFrameNo: bigint } {
  const f = WallogFile.open(path, { readOnly: true });
  try {
    return { logId: f.logId, frameCount: f.frameCount, startFrameNo: f.startFrameNo };
  } finally {
    f.close();
  }
}
