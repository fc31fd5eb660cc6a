/**
 * The replica's redo files (`replica-redo`, `replica-redo-b`; batches alternate between them): the
 * page images of a batch, written and synced before any page touches the database file. A crash
 * while the pages are being written leaves a valid redo file; the next open applies it again (page
 * writes are idempotent). A torn or otherwise invalid file was never complete, so the database was
 * never touched for it: it is discarded. A file whose magic is zero is empty.
 *
 * Our own format, all integers little-endian:
 *
 * ```
 * header   0  8  magic "LSQLREDO"
 *          8  4  version (1)
 *         12  4  page size (4096)
 *         16 16  log_id u128 (as in client_wal_index)
 *         32  8  last frame_no of the batch (the index to record)
 *         40  4  database size in pages after the batch
 *         44  4  page count n
 * entries 48 + i*4100: page_no u32, page image (4096 bytes); a page appears at most once
 * trailer 48 + n*4100: sha256(header || sha256(entries)), 32 bytes
 * ```
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, existsSync, fdatasync, fdatasyncSync, fstatSync, openSync, rmSync } from 'node:fs';
import { fsyncDirOf, readFully, writeFully } from '../wal/fs-util.js';
import { PAGE_SIZE } from '../wal/frame.js';
import { readLogId, writeLogId } from '../wal/log-id.js';

const MAGIC = Buffer.from('LSQLREDO', 'latin1');
/** A slot marked empty (cleared, or a batch abandoned or being written). */
const EMPTY_MAGIC = Buffer.alloc(MAGIC.length);
const VERSION = 1;
export const REDO_HEADER_SIZE = 48;
export const REDO_ENTRY_SIZE = 4 + PAGE_SIZE;
const DIGEST_SIZE = 32;
/** Entries per read or write call (about 1 MB). */
const CHUNK_ENTRIES = 256;
/** A writer's first buffer holds this many entries; it doubles up to CHUNK_ENTRIES for larger batches. */
const FIRST_CHUNK_ENTRIES = 8;

export interface RedoHeader {
  logId: string;
  lastFrameNo: bigint;
  sizeAfter: number;
  pageCount: number;
}

export type RedoState =
  | { state: 'missing' }
  | { state: 'invalid'; reason: string }
  | { state: 'valid'; header: RedoHeader };

function encodeHeader(h: RedoHeader): Buffer {
  const buf = Buffer.alloc(REDO_HEADER_SIZE);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE(PAGE_SIZE, 12);
  writeLogId(h.logId, buf, 16);
  buf.writeBigUInt64LE(h.lastFrameNo, 32);
  buf.writeUInt32LE(h.sizeAfter, 40);
  buf.writeUInt32LE(h.pageCount, 44);
  return buf;
}

function digestOf(header: Buffer, entries: Hash): Buffer {
  return createHash('sha256').update(header).update(entries.digest()).digest();
}

/**
 * One of the replica's two redo files (`replica-redo`, `replica-redo-b`), kept open and rewritten in
 * place: no new inode, no truncation and no directory fsync per batch, so `finish()` costs one
 * fdatasync of the data. A file longer than its current batch keeps old bytes after the checksum,
 * which readers ignore.
 */
export class RedoSlot {
  #fd: number | null = null;
  #created = false;

  constructor(readonly path: string) {}

  /** Starts writing a batch into this slot (its previous batch is invalid from the first page on). */
  writer(head: Omit<RedoHeader, 'pageCount'>): RedoWriter {
    if (!Number.isInteger(head.sizeAfter) || head.sizeAfter < 1 || head.sizeAfter > 0xffff_ffff) {
      throw new RangeError(`database size after the batch must be at least one page, got ${head.sizeAfter}`);
    }
    encodeHeader({ ...head, pageCount: 0 }); // validates the log id and frame_no before touching the file
    if (this.#fd === null) {
      this.#created = !existsSync(this.path);
      this.#fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    }
    return new RedoWriter(this, this.#fd, head);
  }

  /** Marks the slot empty (zero magic), e.g. when the replica starts over for a new log. */
  clear(): void {
    if (this.#fd === null && !existsSync(this.path)) return;
    this.#fd ??= openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    writeFully(this.#fd, Buffer.alloc(MAGIC.length), 0);
    fdatasyncSync(this.#fd);
  }

  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }

  /** Called by a finished writer: a new file's directory entry is made durable once. */
  synced(): void {
    if (!this.#created) return;
    this.#created = false;
    fsyncDirOf(this.path);
  }
}

/** Streams a batch's pages into a redo slot; `finish()` makes it valid and durable. */
export class RedoWriter {
  readonly #slot: RedoSlot;
  readonly #fd: number;
  readonly #head: Omit<RedoHeader, 'pageCount'>;
  readonly #hash = createHash('sha256');
  /** Small batches (the usual live transaction) do not pay for a 1 MB buffer. */
  #chunk = Buffer.allocUnsafe(FIRST_CHUNK_ENTRIES * REDO_ENTRY_SIZE);
  #inChunk = 0;
  #count = 0;
  #done = false;

  constructor(slot: RedoSlot, fd: number, head: Omit<RedoHeader, 'pageCount'>) {
    this.#slot = slot;
    this.#fd = fd;
    this.#head = head;
    // The slot's old batch must not look valid with some of the new pages in it.
    writeFully(fd, Buffer.alloc(MAGIC.length), 0);
  }

  get pageCount(): number {
    return this.#count;
  }

  /** Adds one page image (copied). */
  add(pageNo: number, page: Uint8Array): void {
    if (!Number.isInteger(pageNo) || pageNo < 1 || pageNo > this.#head.sizeAfter) {
      throw new RangeError(`page ${pageNo} is outside the database (${this.#head.sizeAfter} pages)`);
    }
    if (page.length !== PAGE_SIZE) throw new RangeError(`a page must be ${PAGE_SIZE} bytes, got ${page.length}`);
    const at = this.#inChunk * REDO_ENTRY_SIZE;
    this.#chunk.writeUInt32LE(pageNo, at);
    this.#chunk.set(page, at + 4);
    this.#inChunk += 1;
    this.#count += 1;
    if (this.#inChunk * REDO_ENTRY_SIZE < this.#chunk.length) return;
    this.#flush();
    const entries = this.#chunk.length / REDO_ENTRY_SIZE;
    if (entries < CHUNK_ENTRIES) this.#chunk = Buffer.allocUnsafe(Math.min(entries * 2, CHUNK_ENTRIES) * REDO_ENTRY_SIZE);
  }

  /**
   * Writes the header and checksum and syncs the data (the directory too for a new file); the sync
   * runs on libuv's thread pool, so the event loop goes on meanwhile.
   */
  async finish(): Promise<RedoHeader> {
    this.#flush();
    const header: RedoHeader = { ...this.#head, pageCount: this.#count };
    const encoded = encodeHeader(header);
    writeFully(this.#fd, digestOf(encoded, this.#hash), REDO_HEADER_SIZE + this.#count * REDO_ENTRY_SIZE);
    writeFully(this.#fd, encoded, 0);
    this.#done = true;
    const fd = this.#fd;
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    this.#slot.synced();
    return header;
  }

  /** Leaves the slot empty (an unfinished batch must never be applied). */
  abandon(): void {
    if (this.#done) return;
    this.#done = true;
    writeFully(this.#fd, Buffer.alloc(MAGIC.length), 0);
  }

  #flush(): void {
    if (this.#inChunk === 0) return;
    const bytes = this.#chunk.subarray(0, this.#inChunk * REDO_ENTRY_SIZE);
    this.#hash.update(bytes);
    writeFully(this.#fd, bytes, REDO_HEADER_SIZE + (this.#count - this.#inChunk) * REDO_ENTRY_SIZE);
    this.#inChunk = 0;
  }
}

function parseHeader(buf: Buffer): RedoHeader | string {
  if (!buf.subarray(0, 8).equals(MAGIC)) return 'bad magic';
  if (buf.readUInt32LE(8) !== VERSION) return `unknown version ${buf.readUInt32LE(8)}`;
  if (buf.readUInt32LE(12) !== PAGE_SIZE) return `page size ${buf.readUInt32LE(12)}`;
  const header = {
    logId: readLogId(buf, 16),
    lastFrameNo: buf.readBigUInt64LE(32),
    sizeAfter: buf.readUInt32LE(40),
    pageCount: buf.readUInt32LE(44),
  };
  return header.sizeAfter === 0 ? 'database size 0' : header;
}

/** Calls `each` with the entries of the open redo file, chunk by chunk (a reused buffer). */
function forEachChunk(fd: number, count: number, each: (chunk: Buffer, entries: number) => void): void {
  const chunk = Buffer.allocUnsafe(Math.min(count, CHUNK_ENTRIES) * REDO_ENTRY_SIZE);
  for (let first = 0; first < count; first += CHUNK_ENTRIES) {
    const n = Math.min(CHUNK_ENTRIES, count - first);
    const bytes = n * REDO_ENTRY_SIZE;
    if (readFully(fd, chunk, 0, bytes, REDO_HEADER_SIZE + first * REDO_ENTRY_SIZE) !== bytes) {
      throw new Error('the redo file is shorter than its header says');
    }
    each(chunk.subarray(0, bytes), n);
  }
}

/** Checks the redo file at `path` completely (size, header, every page number, checksum). */
export function inspectRedo(path: string): RedoState {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(REDO_HEADER_SIZE);
    if (readFully(fd, head, 0, REDO_HEADER_SIZE, 0) !== REDO_HEADER_SIZE) return { state: 'invalid', reason: `only ${size} bytes` };
    if (head.subarray(0, MAGIC.length).equals(EMPTY_MAGIC)) return { state: 'missing' };
    const header = parseHeader(head);
    if (typeof header === 'string') return { state: 'invalid', reason: header };
    const expected = REDO_HEADER_SIZE + header.pageCount * REDO_ENTRY_SIZE + DIGEST_SIZE;
    if (size < expected) return { state: 'invalid', reason: `${size} bytes, expected at least ${expected}` };
    const hash = createHash('sha256');
    const bad: { pageNo: number | null } = { pageNo: null };
    forEachChunk(fd, header.pageCount, (chunk, n) => {
      hash.update(chunk);
      for (let i = 0; i < n; i++) {
        const pageNo = chunk.readUInt32LE(i * REDO_ENTRY_SIZE);
        if (pageNo < 1 || pageNo > header.sizeAfter) bad.pageNo ??= pageNo;
      }
    });
    if (bad.pageNo !== null) return { state: 'invalid', reason: `page ${bad.pageNo} outside the database` };
    const stored = Buffer.alloc(DIGEST_SIZE);
    readFully(fd, stored, 0, DIGEST_SIZE, expected - DIGEST_SIZE);
    if (!digestOf(head, hash).equals(stored)) return { state: 'invalid', reason: 'checksum mismatch' };
    return { state: 'valid', header };
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `each` for every page of a redo file already found valid (`inspectRedo` or a finished
 * writer), in file order. The page is a view into a reused buffer: copy it to keep it.
 */
export function readRedoPages(path: string, header: RedoHeader, each: (pageNo: number, page: Buffer) => void): void {
  const fd = openSync(path, 'r');
  try {
    forEachChunk(fd, header.pageCount, (chunk, n) => {
      for (let i = 0; i < n; i++) {
        const at = i * REDO_ENTRY_SIZE;
        each(chunk.readUInt32LE(at), chunk.subarray(at + 4, at + REDO_ENTRY_SIZE));
      }
    });
  } finally {
    closeSync(fd);
  }
}

export function removeRedo(path: string): void {
  rmSync(path, { force: true });
}
