/**
 * Applies replication frames to a replica database on stock SQLite (design.md §5). The database
 * file stays in rollback-journal mode; a batch of whole transactions is applied as one unit:
 *
 * 1. the newest image of every page goes into the redo file, which is fsynced;
 * 2. `BEGIN EXCLUSIVE` on the applier's own connection (skipped while the file holds no database yet:
 *    SQLite would write a fresh page 1 over ours at COMMIT) — our own read transactions get
 *    `readGraceMs`, then are rolled back; locks of other processes are waited out with a backoff;
 * 3. the pages are written at `(pageNo - 1) * 4096` through the engine's one database descriptor
 *    (never a descriptor of our own: closing it would drop every SQLite lock of the process), page 1
 *    last and patched (rollback mode, change counter + 1 so readers drop their page cache, in-header
 *    size), the file is truncated to the new size and fsynced, then `COMMIT`;
 * 4. `client_wal_index` records the batch's last frame_no, and the redo file is removed.
 *
 * A crash between 1 and 4 leaves a valid redo file: `open()` applies it again (idempotent).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { NamespacePaths } from '../data-dir.js';
import type { SqliteFiles } from '../files/sqlite-files.js';
import { errorMessage, type Logger } from '../logger.js';
import type { SnapshotRef } from '../pipeline/frame-source.js';
import type { LoggedTransaction } from '../pipeline/transactions.js';
import type { OpenTransaction } from '../roles/role.js';
import { SqlError } from '../sql-error.js';
import { PAGE_SIZE, type Frame } from '../wal/frame.js';
import { ClientWalIndexFile, readClientWalIndex, type ClientWalIndex } from './client-wal-index.js';
import type { ApplierCrashPoint } from './crash-points.js';
import { inspectRedo, readRedoPages, RedoSlot, removeRedo, type RedoHeader } from './redo-file.js';

export interface FrameApplierOptions {
  /** `db`, `clientWalIndex` and `replicaRedo` of the namespace. */
  paths: NamespacePaths;
  /** The engine's descriptors of the database file: every page write goes through them. */
  files: SqliteFiles;
  logger: Logger;
  /** Client connections inside a transaction (RoleHost.openTransactions); none when omitted. */
  openTransactions?: () => Iterable<OpenTransaction>;
  /** How long an open read transaction may hold up an apply before it is rolled back (ms, 200). */
  readGraceMs?: number;
  /** Tests only: called at each crash point of every applied batch (not during recovery). */
  crashHook?: (point: ApplierCrashPoint) => void;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const MAX_BACKOFF_MS = 50;
const WARN_EVERY_MS = 5000;

/** Sleeps `ms`; an abort rejects with the signal's reason. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** Page-1 fields SQLite reads: rollback journal mode, change counter (+ version-valid-for), size. */
function patchPage1(page: Buffer, changeCounter: number, sizeAfter: number): void {
  page[18] = 1;
  page[19] = 1;
  page.writeUInt32BE(changeCounter, 24);
  page.writeUInt32BE(sizeAfter, 28);
  page.writeUInt32BE(changeCounter, 92);
}

export class FrameApplier {
  readonly #paths: NamespacePaths;
  readonly #files: SqliteFiles;
  readonly #logger: Logger;
  readonly #openTransactions: () => Iterable<OpenTransaction>;
  readonly #graceMs: number;
  readonly #crashHook: ((point: ApplierCrashPoint) => void) | undefined;
  readonly #conn: Database.Database;
  #index: ClientWalIndex | null;
  readonly #slots: readonly [RedoSlot, RedoSlot];
  readonly #indexFile: ClientWalIndexFile;
  /** The background sync of the database after the last batch (see #syncDbInBackground). */
  #dbSync: Promise<void> | null = null;
  #dbSyncPending = false;
  /** The redo slot (0 or 1) holding the last applied batch, or null; the next batch uses the other. */
  #lastSlot: 0 | 1 | null = null;
  /** Set when a batch failed halfway: the exclusive lock stays held, only a restart recovers. */
  #broken: unknown = null;
  /** Change counter of the database a reset removed: the next one's page 1 continues from it. */
  #counterFloor = 0;
  #closed = false;
  /** Operations run one after another. */
  #queue: Promise<void> = Promise.resolve();

  private constructor(opts: FrameApplierOptions) {
    this.#paths = opts.paths;
    this.#files = opts.files;
    this.#logger = opts.logger;
    this.#openTransactions = opts.openTransactions ?? (() => []);
    this.#graceMs = opts.readGraceMs ?? 200;
    this.#crashHook = opts.crashHook;
    this.#index = readClientWalIndex(opts.paths.clientWalIndex);
    this.#slots = [new RedoSlot(opts.paths.replicaRedoSlots[0]), new RedoSlot(opts.paths.replicaRedoSlots[1])];
    this.#indexFile = new ClientWalIndexFile(opts.paths.clientWalIndex);
    this.#conn = new Database(opts.paths.db, { timeout: 0 });
    this.#conn.defaultSafeIntegers(true);
  }

  /** Opens the applier and finishes a batch a crash interrupted (a valid redo file). */
  static async open(opts: FrameApplierOptions, signal?: AbortSignal): Promise<FrameApplier> {
    const applier = new FrameApplier(opts);
    try {
      await applier.#recover(signal);
    } catch (err) {
      applier.close();
      throw err;
    }
    return applier;
  }

  /** The log the replica follows; null until the first `reset`. */
  get logId(): string | null {
    return this.#index?.logId ?? null;
  }

  /** frame_no of the last applied frame, null when nothing is applied. */
  get appliedFrameNo(): bigint | null {
    return this.#index?.committedFrameNo ?? null;
  }

  /** The first frame still to apply. */
  get nextFrameNo(): bigint {
    const applied = this.appliedFrameNo;
    return applied === null ? 0n : applied + 1n;
  }

  /**
   * Applies whole transactions (ascending, the first one starting at `nextFrameNo`) as one unit: the
   * newest image of each page, the size of the last one, the index of its last frame.
   */
  apply(txns: readonly LoggedTransaction[], signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      const index = this.#ready();
      if (txns.length === 0) return;
      const unit = mergeTransactions(txns, this.nextFrameNo);
      if (!unit.pages.has(1) && !this.#hasDatabase()) throw new RangeError('the first batch of a replica must contain page 1');
      await this.#settleDbSync();
      const slot = this.#nextSlot();
      const writer = this.#slots[slot].writer({ logId: index.logId, lastFrameNo: unit.lastFrameNo, sizeAfter: unit.sizeAfter });
      const order = [...unit.pages.keys()].sort((a, b) => a - b);
      try {
        for (const pageNo of order) writer.add(pageNo, unit.pages.get(pageNo) ?? zeroPage());
      } catch (err) {
        writer.abandon();
        throw err;
      }
      // The pages are still in memory: write them from there rather than reading the redo file back.
      const pages: PageSource = (each) => {
        for (const pageNo of order) each(pageNo, unit.pages.get(pageNo) ?? zeroPage());
      };
      await this.#applyRedo(slot, await writer.finish(), signal, false, pages);
    });
  }

  /**
   * Applies a snapshot (the newest image of every page changed in its range, descending frame_no):
   * afterwards the replica is at `ref.endFrameNo`. It must start at or before `nextFrameNo`; one that
   * ends before it is already applied and skipped.
   */
  applySnapshot(ref: SnapshotRef, frames: Iterable<Frame>, signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      const index = this.#ready();
      const next = this.nextFrameNo;
      if (ref.endFrameNo < next) return;
      if (ref.startFrameNo > next) throw new RangeError(`snapshot ${ref.startFrameNo}..${ref.endFrameNo} leaves a gap after frame ${next - 1n}`);
      await this.#settleDbSync();
      const slot = this.#nextSlot();
      const writer = this.#slots[slot].writer({ logId: index.logId, lastFrameNo: ref.endFrameNo, sizeAfter: ref.sizeAfter });
      const seen = new Set<number>();
      try {
        let previous: bigint | null = null;
        for (const f of frames) {
          if (previous !== null && f.frameNo >= previous) throw new RangeError(`snapshot frames must descend: ${f.frameNo} after ${previous}`);
          if (f.frameNo < ref.startFrameNo || f.frameNo > ref.endFrameNo) throw new RangeError(`snapshot frame ${f.frameNo} is outside its range`);
          previous = f.frameNo;
          if (seen.has(f.pageNo)) continue; // an older image of a page already written
          seen.add(f.pageNo);
          if (f.pageNo <= ref.sizeAfter) writer.add(f.pageNo, f.page);
        }
        if (!seen.has(1) && !this.#hasDatabase()) throw new RangeError('a snapshot applied to an empty replica must contain page 1');
      } catch (err) {
        writer.abandon();
        throw err;
      }
      await this.#applyRedo(slot, await writer.finish(), signal, false);
    });
  }

  /** Starts over for a new log: empties the database and records `logId` with nothing applied. */
  reset(logId: string, signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      this.#usable();
      await this.#settleDbSync();
      for (const slot of this.#slots) slot.clear();
      this.#lastSlot = null;
      if (this.#files.statDb().size > 0) {
        const locked = this.#hasDatabase();
        await this.#acquire(locked, signal);
        // the next database's counter continues from this one's (a reader's cache must never match)
        if (locked) this.#counterFloor = this.#changeCounter();
        this.#critical(() => {
          this.#files.truncateDb(0);
          this.#files.syncDb();
          if (locked) this.#conn.exec('COMMIT');
        });
      }
      const index: ClientWalIndex = { logId, committedFrameNo: null };
      this.#indexFile.write(index, { durable: true });
      this.#index = index;
      this.#logger.info({ logId }, 'replica reset for a new log');
    });
  }

  /** Closes the applier's connection (rolling back a half-applied batch's lock: restart recovers). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#dbSyncPending && this.#broken === null) {
      try {
        this.#files.syncDb();
      } catch (err) {
        this.#logger.error({ err }, `syncing the replica database at close failed: ${errorMessage(err)}`);
      }
    }
    this.#conn.close();
    for (const slot of this.#slots) slot.close();
    this.#indexFile.close();
  }

  #serial(op: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #usable(): void {
    if (this.#closed) throw new Error('the frame applier is closed');
    if (this.#broken !== null) {
      throw new Error(`the replica database is inconsistent after a failed apply (${errorMessage(this.#broken)}); reopen it to recover from the redo file`, { cause: this.#broken });
    }
  }

  #ready(): ClientWalIndex {
    this.#usable();
    if (this.#index === null) throw new Error('the replica has no log yet: reset(logId) first');
    return this.#index;
  }

  async #recover(signal: AbortSignal | undefined): Promise<void> {
    const head = Buffer.alloc(20);
    if (this.#hasDatabase() && this.#files.readDb(head, 0) === head.length && (head[18] !== 1 || head[19] !== 1)) {
      // pages written into the file would bypass the WAL's newer versions of them
      throw new Error(`the replica database ${this.#paths.db} is in WAL mode; switch it to journal_mode=DELETE before applying frames`);
    }
    // The newest valid batch of the two slots is the one that may not be in the database yet.
    const index = this.#index;
    const applied = index?.committedFrameNo ?? null;
    let newest: { slot: 0 | 1; header: RedoHeader } | null = null;
    for (const slot of [0, 1] as const) {
      const path = this.#paths.replicaRedoSlots[slot];
      const redo = inspectRedo(path);
      if (redo.state === 'missing') continue;
      if (redo.state === 'invalid') {
        this.#logger.warn({ reason: redo.reason }, 'discarding an incomplete replica redo file (its batch never reached the database)');
        removeRedo(path);
        continue;
      }
      if (index?.logId !== redo.header.logId) {
        this.#logger.warn({ redoFrameNo: redo.header.lastFrameNo.toString(), appliedFrameNo: applied?.toString() ?? null }, 'discarding a replica redo file of another log');
        removeRedo(path);
        continue;
      }
      if (newest === null || redo.header.lastFrameNo > newest.header.lastFrameNo) newest = { slot, header: redo.header };
    }
    if (newest === null) return;
    this.#lastSlot = newest.slot;
    const { header } = newest;
    if (applied !== null && header.lastFrameNo < applied) {
      // never happens by design (a batch's redo file is synced before its index is written); an older batch must not be written over newer pages
      this.#logger.warn({ redoFrameNo: header.lastFrameNo.toString(), appliedFrameNo: applied.toString() }, 'ignoring a replica redo file older than the index');
      return;
    }
    // Applied again even when the index names it: the database is synced only after the index is written.
    if (applied === null || header.lastFrameNo > applied) {
      this.#logger.info({ frameNo: header.lastFrameNo.toString(), pages: header.pageCount }, 're-applying an interrupted replica batch');
    }
    await this.#applyRedo(newest.slot, header, signal, true);
    await this.#settleDbSync();
  }

  #nextSlot(): 0 | 1 {
    return this.#lastSlot === 0 ? 1 : 0;
  }

  async #applyRedo(slot: 0 | 1, header: RedoHeader, signal: AbortSignal | undefined, recovering: boolean, pages?: PageSource): Promise<void> {
    const path = this.#paths.replicaRedoSlots[slot];
    const crash = recovering ? undefined : this.#crashHook;
    crash?.('after-redo');
    const locked = this.#hasDatabase();
    try {
      await this.#acquire(locked, signal);
    } catch (err) {
      if (!recovering) this.#slots[slot].clear(); // the database was not touched
      throw err;
    }
    this.#critical(() => this.#writeBatch(header, locked, crash, pages ?? ((each) => readRedoPages(path, header, each))));
    this.#syncDbInBackground();
    crash?.('before-index');
    const index: ClientWalIndex = { logId: header.logId, committedFrameNo: header.lastFrameNo };
    this.#indexFile.write(index, { durable: false });
    this.#index = index;
    this.#lastSlot = slot;
  }

  /** Runs the part that leaves a torn database when it fails: then keep the lock, refuse more. */
  #critical(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#broken = err;
      this.#logger.error({ err }, `applying frames failed halfway: ${errorMessage(err)}`);
      throw err;
    }
  }

  #writeBatch(header: RedoHeader, locked: boolean, crash: ((point: ApplierCrashPoint) => void) | undefined, pages: PageSource): void {
    const files = this.#files;
    const counter = locked ? this.#changeCounter() : this.#counterFloor;
    const half = Math.ceil(header.pageCount / 2);
    const held: { page1: Buffer | null } = { page1: null };
    let done = 0;
    pages((pageNo, page) => {
      if (pageNo === 1) held.page1 = Buffer.from(page); // written last, patched
      else files.writeDb(page, (pageNo - 1) * PAGE_SIZE);
      done += 1;
      if (done === half) crash?.('during-pages');
    });
    if (half === 0) crash?.('during-pages');
    const first = held.page1 ?? Buffer.alloc(PAGE_SIZE);
    if (held.page1 === null && files.readDb(first, 0) !== PAGE_SIZE) throw new Error('the replica database has no page 1');
    patchPage1(first, (counter + 1) >>> 0, header.sizeAfter);
    files.writeDb(first, 0);
    const size = header.sizeAfter * PAGE_SIZE;
    // a truncate to the same size still changes the inode's times, which makes the sync dearer
    if (files.statDb().size !== size) files.truncateDb(size);
    if (locked) this.#conn.exec('COMMIT');
  }

  /**
   * The database is synced after COMMIT in the background (readers and waiters need not wait for
   * it); the next batch awaits it before it overwrites a redo slot, so the batch in the other slot
   * is always durable or re-appliable.
   */
  #syncDbInBackground(): void {
    const previous = this.#dbSync ?? Promise.resolve();
    const sync = previous.then(() => this.#files.syncDbAsync());
    this.#dbSync = sync;
    this.#dbSyncPending = true;
    sync.then(
      () => {
        if (this.#dbSync === sync) this.#dbSyncPending = false;
      },
      (err: unknown) => {
        this.#broken ??= err;
        this.#logger.error({ err }, `syncing the replica database failed: ${errorMessage(err)}`);
      },
    );
  }

  async #settleDbSync(): Promise<void> {
    const sync = this.#dbSync;
    if (sync === null) return;
    await sync;
    if (this.#dbSync === sync) this.#dbSync = null;
  }

  /** Waits until everything applied is durable (clean shutdown). */
  flush(): Promise<void> {
    return this.#serial(() => this.#settleDbSync());
  }

  /** True when the file starts with a SQLite header (else there is nothing SQLite could lock). */
  #hasDatabase(): boolean {
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    return this.#files.readDb(head, 0) === head.length && head.equals(SQLITE_MAGIC);
  }

  #changeCounter(): number {
    const head = Buffer.alloc(28);
    return this.#files.readDb(head, 0) === head.length ? head.readUInt32BE(24) : 0;
  }

  /**
   * Takes SQLite's exclusive lock (`lock`) or, while there is no database yet, waits until none of
   * our connections is inside a transaction. Our own read transactions are rolled back once they
   * have been in the way for the grace period; other processes are waited out with a backoff.
   */
  async #acquire(lock: boolean, signal: AbortSignal | undefined): Promise<void> {
    const firstSeen = new Map<OpenTransaction, number>();
    const started = performance.now();
    let delay = 1;
    let warned = started;
    let loggedBusy = false;
    for (;;) {
      signal?.throwIfAborted();
      this.#usable();
      const untilGrace = this.#rollBackStaleReaders(firstSeen);
      if (lock ? this.#tryBeginExclusive() : firstSeen.size === 0) return;
      const now = performance.now();
      if (!loggedBusy) {
        loggedBusy = true;
        this.#logger.debug('replica apply waits for readers holding the database lock');
      }
      if (now - warned >= WARN_EVERY_MS) {
        warned = now;
        this.#logger.warn({ waitedMs: Math.round(now - started) }, 'replica apply is still waiting for the database lock (a reader in another process?)');
      }
      await pause(Math.max(1, Math.min(delay, untilGrace)), signal);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }

  #tryBeginExclusive(): boolean {
    try {
      this.#conn.exec('BEGIN EXCLUSIVE');
      return true;
    } catch (err) {
      if (this.#conn.inTransaction) this.#conn.exec('ROLLBACK');
      if (isBusy(err)) return false;
      throw err;
    }
  }

  /** Rolls back open transactions seen for the grace period; returns ms until the next one is due. */
  #rollBackStaleReaders(firstSeen: Map<OpenTransaction, number>): number {
    const now = performance.now();
    const open = new Set(this.#openTransactions());
    for (const txn of firstSeen.keys()) if (!open.has(txn)) firstSeen.delete(txn);
    let next = Infinity;
    for (const txn of open) {
      const since = firstSeen.get(txn);
      if (since === undefined) {
        firstSeen.set(txn, now);
        next = Math.min(next, this.#graceMs);
      } else if (now - since >= this.#graceMs) {
        firstSeen.delete(txn);
        txn.abortTransaction(this.#readerTimeout());
        next = 0;
      } else {
        next = Math.min(next, this.#graceMs - (now - since));
      }
    }
    return next;
  }

  #readerTimeout(): SqlError {
    return new SqlError(
      'TRANSACTION_TIMEOUT',
      `Transaction timed out: this replica had to apply new frames from the primary, and the read transaction was rolled back after holding them up for ${this.#graceMs} ms`,
    );
  }
}

/** Calls `each` with the pages of a batch, page 1 among them or not, in file order. */
type PageSource = (each: (pageNo: number, page: Buffer) => void) => void;

interface MergedUnit {
  lastFrameNo: bigint;
  sizeAfter: number;
  /** Page images to write; a page without an image (null) is zeroed. */
  pages: Map<number, Buffer | null>;
}

function zeroPage(): Buffer {
  return Buffer.alloc(PAGE_SIZE);
}

/**
 * The net effect of consecutive transactions: the newest image of each page. A page cut off by one
 * transaction's smaller size and not written again afterwards is zero when the database grows back
 * (as applying them one by one would leave it).
 */
function mergeTransactions(txns: readonly LoggedTransaction[], expectedFirst: bigint): MergedUnit {
  const pages = new Map<number, Buffer | null>();
  let next = expectedFirst;
  let minSize = Infinity;
  for (const txn of txns) {
    if (txn.firstFrameNo !== next) throw new RangeError(`transaction at frame ${txn.firstFrameNo} does not follow frame ${next - 1n}`);
    if (txn.frames.length === 0 || txn.lastFrameNo < txn.firstFrameNo) throw new RangeError(`transaction at frame ${txn.firstFrameNo} has no frames`);
    if (!Number.isInteger(txn.sizeAfter) || txn.sizeAfter < 1) throw new RangeError(`transaction at frame ${txn.firstFrameNo} has size ${txn.sizeAfter}`);
    let frameNo = txn.firstFrameNo - 1n;
    for (const f of txn.frames) {
      if (f.frameNo <= frameNo || f.frameNo > txn.lastFrameNo) throw new RangeError(`frame ${f.frameNo} is out of order in its transaction`);
      frameNo = f.frameNo;
      pages.set(f.pageNo, f.page);
    }
    for (const pageNo of pages.keys()) if (pageNo > txn.sizeAfter) pages.delete(pageNo);
    minSize = Math.min(minSize, txn.sizeAfter);
    next = txn.lastFrameNo + 1n;
  }
  const last = txns[txns.length - 1];
  if (last === undefined) throw new RangeError('no transactions');
  for (let p = minSize + 1; p <= last.sizeAfter; p++) if (!pages.has(p)) pages.set(p, null);
  return { lastFrameNo: last.lastFrameNo, sizeAfter: last.sizeAfter, pages };
}
