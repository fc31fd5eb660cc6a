/**
 * The engine's own descriptors of the files SQLite owns: the database and its `-wal` (the `-shm` is
 * never touched). SQLite's locks are POSIX `fcntl` locks, which belong to the process: closing *any*
 * descriptor of one of these files drops *all* of the process's SQLite locks on it, and another process
 * then believes it is alone (it may checkpoint and delete the WAL under us — docs/ARCHITECTURE.md).
 *
 * So each file gets exactly one descriptor, opened once and closed only by `close()`, which the
 * namespace calls after every SQLite connection to the file is closed. A descriptor whose file was
 * unlinked behind our back is retired, not closed, until then. This module is the only place that
 * opens these files; everything else reads and writes through it.
 */
import { closeSync, constants, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, type Stats } from 'node:fs';
import type { NamespacePaths } from '../data-dir.js';
import { readFully, writeFully } from '../wal/fs-util.js';

/** The `-wal` file as the WAL reader sees it. */
export interface WalFile {
  readonly path: string;
  /** The descriptor, opened on first use; null while the file does not exist. */
  fd(): number | null;
  /**
   * True (once) when the file behind the descriptor was unlinked and another file took its name: the
   * old descriptor is retired and the next `fd()` opens the new file.
   */
  replaced(): boolean;
}

export class SqliteFiles {
  readonly dbPath: string;
  readonly wal: WalFile;
  #db: number;
  #wal: number | null = null;
  /** Descriptors of unlinked files, kept open until close() (closing them early would drop locks). */
  readonly #retired: number[] = [];
  #closed = false;

  private constructor(
    private readonly paths: NamespacePaths,
    db: number,
  ) {
    this.dbPath = paths.db;
    this.#db = db;
    this.wal = {
      path: paths.wal,
      fd: () => this.#walFd(),
      replaced: () => this.#walReplaced(),
    };
  }

  /** Opens (creating when missing) the database file; call before the first SQLite connection. */
  static open(paths: NamespacePaths): SqliteFiles {
    const fd = openSync(paths.db, constants.O_RDWR | constants.O_CREAT, 0o644);
    return new SqliteFiles(paths, fd);
  }

  /** Reads up to `length` bytes of the database file at `position` (short only at end of file). */
  readDb(buf: Uint8Array, position: number, length = buf.length): number {
    this.#check();
    return readFully(this.#db, buf, 0, length, position);
  }

  writeDb(buf: Uint8Array, position: number): void {
    this.#check();
    writeFully(this.#db, buf, position);
  }

  truncateDb(bytes: number): void {
    this.#check();
    ftruncateSync(this.#db, bytes);
  }

  /** Makes the database file's data durable (fdatasync: the size too, not the times — as SQLite syncs). */
  syncDb(): void {
    this.#check();
    fdatasyncSync(this.#db);
  }

  /** syncDb on libuv's thread pool: the event loop goes on meanwhile. Keep the files open until it settles. */
  syncDbAsync(): Promise<void> {
    this.#check();
    const fd = this.#db;
    return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  statDb(): Stats {
    this.#check();
    return fstatSync(this.#db);
  }

  /** Closes every descriptor. Only after every SQLite connection to these files is closed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of [this.#db, this.#wal, ...this.#retired]) if (fd !== null) closeSync(fd);
    this.#retired.length = 0;
    this.#wal = null;
  }

  #walFd(): number | null {
    this.#check();
    if (this.#wal !== null) return this.#wal;
    try {
      this.#wal = openSync(this.paths.wal, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return this.#wal;
  }

  #walReplaced(): boolean {
    if (this.#wal === null || fstatSync(this.#wal).nlink > 0) return false;
    this.#retired.push(this.#wal);
    this.#wal = null;
    return true;
  }

  #check(): void {
    if (this.#closed) throw new Error(`the files of ${this.paths.db} are closed`);
  }
}
