/**
 * Real page-level transactions for replica tests: a primary database (better-sqlite3, rollback
 * mode, 4096-byte pages) in a temp dir whose changed pages after each SQL transaction become a
 * `LoggedTransaction` (frame_no numbered from 0, page 1 marked as a WAL-mode primary's), and an
 * in-memory FrameSource over such transactions (live appends, compaction into snapshots, new logs).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { NamespacePaths } from '../../src/engine/data-dir.js';
import type { FrameSource, SnapshotRef } from '../../src/engine/pipeline/frame-source.js';
import { inspectRedo } from '../../src/engine/replica/redo-file.js';
import type { LoggedTransaction } from '../../src/engine/pipeline/transactions.js';
import { encodeFrame, FRAME_SIZE, PAGE_SIZE, type Frame } from '../../src/engine/wal/frame.js';
import { newLogId } from '../../src/engine/wal/log-id.js';

const dirs: string[] = [];

/** A fresh temporary directory; `removeTempDirs()` (in afterEach) deletes it. */
export function tempDir(prefix = 'libsqlctl-replica-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A logical dump of every table and index definition and every table's rows (blobs in hex). */
/** Redo files of a replica that hold a batch beyond `applied`: none once every batch is applied. */
export function unappliedRedo(paths: NamespacePaths, applied: bigint | null): string[] {
  return paths.replicaRedoSlots.filter((path) => {
    const r = inspectRedo(path);
    return r.state === 'invalid' || (r.state === 'valid' && (applied === null || r.header.lastFrameNo > applied));
  });
}

/** The redo file holding the batch that ends at `frameNo`. */
export function redoOf(paths: NamespacePaths, frameNo: bigint): string {
  const found = paths.replicaRedoSlots.find((path) => {
    const r = inspectRedo(path);
    return r.state === 'valid' && r.header.lastFrameNo === frameNo;
  });
  if (found === undefined) throw new Error(`no redo file holds the batch ending at frame ${frameNo}`);
  return found;
}

export function dumpDb(db: Database.Database): string {
  const objects = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as {
    type: string;
    name: string;
    sql: string | null;
  }[];
  const out: unknown[] = [];
  for (const o of objects) {
    if (o.type !== 'table') {
      out.push(o);
      continue;
    }
    const rows = db.prepare(`SELECT * FROM "${o.name}"`).raw().all() as unknown[][];
    const text = rows.map((r) => JSON.stringify(r.map((v) => (Buffer.isBuffer(v) ? `x'${v.toString('hex')}'` : typeof v === 'bigint' ? v.toString() : v))));
    out.push({ ...o, rows: text.sort() });
  }
  return JSON.stringify(out);
}

/** Opens `file` read-only in a fresh connection, dumps it and checks its integrity. */
export function inspectDb(file: string): { dump: string; integrity: string; journalMode: string } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
    return { dump: dumpDb(db), integrity, journalMode: String(db.pragma('journal_mode', { simple: true })) };
  } finally {
    db.close();
  }
}

/** Page 1 changed only in its change counter: a WAL-mode primary would not have written it. */
function onlyCounterDiffers(a: Buffer, b: Buffer): boolean {
  const mask = (page: Buffer): Buffer => {
    const copy = Buffer.from(page);
    copy.fill(0, 24, 28);
    copy.fill(0, 92, 96);
    return copy;
  };
  return mask(a).equals(mask(b));
}

/** A primary database whose SQL transactions are turned into page-level log transactions. */
export class PagePrimary {
  readonly path: string;
  readonly db: Database.Database;
  readonly transactions: LoggedTransaction[] = [];
  /** The primary's dump after each transaction, by its last frame_no. */
  readonly dumps = new Map<bigint, string>();
  #image: Buffer = Buffer.alloc(0);
  #nextFrameNo = 0n;

  constructor(dir = tempDir()) {
    this.path = join(dir, 'primary.db');
    this.db = new Database(this.path);
    this.db.pragma('page_size = 4096');
    this.db.pragma('journal_mode = DELETE');
  }

  /** Runs `sql` (or `fn`) as one transaction and returns the transaction of its changed pages. */
  run(work: string | ((db: Database.Database) => void)): LoggedTransaction {
    if (typeof work === 'string') this.db.exec(work);
    else this.db.transaction(() => work(this.db))();
    return this.capture();
  }

  /** Runs `sql` outside a transaction (VACUUM) and captures it. */
  runBare(sql: string): LoggedTransaction {
    this.db.exec(sql);
    return this.capture();
  }

  /** The changed pages since the last capture (the connection is idle: no lock, file complete). */
  capture(): LoggedTransaction {
    const image = readFileSync(this.path);
    if (image.length % PAGE_SIZE !== 0) throw new Error(`primary file size ${image.length} is not whole pages`);
    const sizeAfter = image.length / PAGE_SIZE;
    const frames: Frame[] = [];
    for (let p = 1; p <= sizeAfter; p++) {
      const page = image.subarray((p - 1) * PAGE_SIZE, p * PAGE_SIZE);
      const old = this.#image.subarray((p - 1) * PAGE_SIZE, p * PAGE_SIZE);
      if (old.length === PAGE_SIZE && (old.equals(page) || (p === 1 && onlyCounterDiffers(old, page)))) continue;
      const copy = Buffer.from(page);
      if (p === 1) copy[18] = copy[19] = 2; // as a WAL-mode primary's page 1
      const frameNo = this.#nextFrameNo++;
      frames.push({ frameNo, checksum: frameNo * 0x9e37_79b9n + BigInt(p), pageNo: p, sizeAfter: 0, page: copy });
    }
    if (frames.length === 0) throw new Error('the transaction changed no page');
    const last = frames[frames.length - 1];
    if (last) last.sizeAfter = sizeAfter;
    this.#image = image;
    const txn: LoggedTransaction = { firstFrameNo: frames[0]?.frameNo ?? 0n, lastFrameNo: last?.frameNo ?? 0n, sizeAfter, frames };
    this.transactions.push(txn);
    this.dumps.set(txn.lastFrameNo, dumpDb(this.db));
    return txn;
  }

  close(): void {
    this.db.close();
  }
}

/** A standard workload: tables, blobs, an index, updates, deletes, a drop and a VACUUM (shrinks). */
export function standardWorkload(primary: PagePrimary): void {
  primary.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB); CREATE TABLE junk (x BLOB)');
  primary.run((db) => {
    const ins = db.prepare('INSERT INTO t (v, b) VALUES (?, randomblob(?))');
    for (let i = 0; i < 30; i++) ins.run(`row-${i}`, 1500);
  });
  primary.run((db) => {
    const ins = db.prepare('INSERT INTO junk VALUES (randomblob(?))');
    for (let i = 0; i < 40; i++) ins.run(3000);
  });
  primary.run("UPDATE t SET v = v || '-updated' WHERE id % 3 = 0");
  primary.run('CREATE INDEX t_v ON t (v)');
  primary.run('DELETE FROM t WHERE id % 5 = 0; DROP TABLE junk');
  primary.runBare('VACUUM');
  primary.run((db) => {
    const ins = db.prepare('INSERT INTO t (v, b) VALUES (?, randomblob(?))');
    for (let i = 0; i < 10; i++) ins.run(`late-${i}`, 700);
  });
}

/** Writes transactions' frames in sqld's 4120-byte frame format, one after another. */
export function writeFrameFile(path: string, txns: readonly LoggedTransaction[]): void {
  const frames = txns.flatMap((t) => t.frames);
  const buf = Buffer.alloc(frames.length * FRAME_SIZE);
  frames.forEach((f, i) => encodeFrame(f, buf, i * FRAME_SIZE));
  writeFileSync(path, buf);
}

/** An error with a `code`, as the engine's NeedSnapshotError / LogChangedError carry. */
export class CodedError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface StoredSnapshot {
  ref: SnapshotRef;
  frames: Frame[];
}

/** An in-memory FrameSource: appends wake iterators; `compact` moves the start into a snapshot. */
export class MemoryFrameSource implements FrameSource {
  #logId: string;
  #txns: LoggedTransaction[] = [];
  #start = 0n;
  #snapshots: StoredSnapshot[] = [];
  #wake = new Set<() => void>();
  #generation = 0;

  constructor(txns: readonly LoggedTransaction[] = [], logId = newLogId()) {
    this.#logId = logId;
    this.#txns = [...txns];
  }

  get logId(): string {
    return this.#logId;
  }

  replicationIndex(): bigint | null {
    return this.#txns.at(-1)?.lastFrameNo ?? null;
  }

  startFrameNo(): bigint {
    return this.#start;
  }

  append(...txns: LoggedTransaction[]): void {
    this.#txns.push(...txns);
    this.#signal();
  }

  /** Compacts every transaction ending at or before `upTo` into one snapshot. */
  compact(upTo: bigint): SnapshotRef {
    const range = this.#txns.filter((t) => t.firstFrameNo >= this.#start && t.lastFrameNo <= upTo);
    const last = range.at(-1);
    if (last === undefined) throw new Error('nothing to compact');
    const newest = new Map<number, Frame>();
    for (const f of range.flatMap((t) => t.frames)) newest.set(f.pageNo, f);
    const frames = [...newest.values()].filter((f) => f.pageNo <= last.sizeAfter).map((f) => ({ ...f, sizeAfter: 0 }));
    frames.sort((a, b) => (a.frameNo > b.frameNo ? -1 : 1));
    const ref: SnapshotRef = { startFrameNo: this.#start, endFrameNo: last.lastFrameNo, sizeAfter: last.sizeAfter, frameCount: BigInt(frames.length) };
    this.#snapshots.push({ ref, frames });
    this.#start = last.lastFrameNo + 1n;
    return ref;
  }

  /** Replaces the log with a new one (new log_id): running iterators fail with LOG_CHANGED. */
  newLog(txns: readonly LoggedTransaction[], logId = newLogId()): void {
    this.#logId = logId;
    this.#txns = [...txns];
    this.#start = 0n;
    this.#snapshots = [];
    this.#generation += 1;
    this.#signal();
  }

  async *transactions(from: bigint, signal?: AbortSignal): AsyncIterable<LoggedTransaction> {
    const generation = this.#generation;
    if (from < this.#start) throw new CodedError('NEED_SNAPSHOT', `frame ${from} is before the log start ${this.#start}`);
    let next = from;
    for (;;) {
      if (this.#generation !== generation) throw new CodedError('LOG_CHANGED', 'a new log replaced this one');
      const txn = this.#txns.find((t) => t.firstFrameNo === next);
      if (txn) {
        next = txn.lastFrameNo + 1n;
        yield txn;
        continue;
      }
      if (this.#txns.some((t) => t.firstFrameNo > next)) throw new Error(`frame ${next} is not a transaction start`);
      await this.#changed(signal);
    }
  }

  snapshotFor(frameNo: bigint): SnapshotRef | null {
    return this.#snapshots.find((s) => s.ref.startFrameNo <= frameNo && frameNo <= s.ref.endFrameNo)?.ref ?? null;
  }

  snapshotFrames(ref: SnapshotRef): Iterable<Frame> {
    const found = this.#snapshots.find((s) => s.ref === ref);
    if (!found) throw new Error('unknown snapshot');
    return found.frames;
  }

  /** How many iterators wait for an append (no leaked waiters). */
  get waiting(): number {
    return this.#wake.size;
  }

  #changed(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.#wake.delete(done);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.#wake.delete(done);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      if (signal?.aborted === true) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#wake.add(done);
    });
  }

  #signal(): void {
    for (const wake of [...this.#wake]) wake();
  }
}
