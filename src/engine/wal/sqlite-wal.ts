/**
 * Incremental reader of a SQLite `-wal` file (design.md §4): each call reads from the last
 * consumed position, accepts frames while their salts and cumulative checksum are valid, and
 * returns whole transactions only (up to and including the last commit frame). A trailing partial
 * transaction stays unconsumed for the next call. A WAL restart (new salts, or a file that shrank)
 * makes the reader start again at offset 32 of the new generation.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readFully } from './fs-util.js';
import {
  parseWalHeader,
  verifyWalFrame,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalChecksum,
  type WalFrame,
} from './sqlite-wal-format.js';

export {
  encodeWalFrame,
  encodeWalHeader,
  parseWalHeader,
  verifyWalFrame,
  walChecksum,
  WAL_FORMAT_VERSION,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
} from './sqlite-wal-format.js';
export type { WalChecksum, WalFrame, WalHeader } from './sqlite-wal-format.js';

/** Frames up to and including one commit frame. */
export interface WalTransaction {
  frames: WalFrame[];
  /** Database size in pages after this transaction (the commit frame's size). */
  sizeAfter: number;
  /** 1-based index, within its WAL generation, of the transaction's first frame. */
  firstFrameIndex: number;
}

/** The identity of the WAL generation being read. */
export interface WalGeneration {
  salt1: number;
  salt2: number;
  bigEndian: boolean;
  pageSize: number;
  checkpointSeq: number;
}

/** Everything needed to resume reading where the previous reader stopped (plain data). */
export interface WalReaderState {
  /** null until a valid header has been seen (or after the WAL was truncated below its header). */
  generation: WalGeneration | null;
  /** Byte offset just past the last consumed commit frame (32 when nothing is consumed). */
  offset: number;
  /** Cumulative checksum at `offset`. */
  checksum: WalChecksum;
}

export interface WalReadResult {
  transactions: WalTransaction[];
  /** True when this call noticed that the WAL restarted since the previous call. */
  restarted: boolean;
}

const CHUNK_FRAMES = 64;
const FIRST_READ_FRAMES = 2;

function initialState(): WalReaderState {
  return { generation: null, offset: WAL_HEADER_SIZE, checksum: [0, 0] };
}

function copyState(s: WalReaderState): WalReaderState {
  const generation = s.generation === null ? null : { ...s.generation };
  return { generation, offset: s.offset, checksum: [s.checksum[0], s.checksum[1]] };
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

export class WalReader {
  readonly walPath: string;
  #state: WalReaderState;
  #fd: number | null = null;
  /** Read buffer reused across calls (pages are copied out of it). */
  #chunk: Buffer | null = null;
  /** false: pages are views into the read buffer, valid only until the next call (capture copies them at once). */
  #copyPages = true;

  constructor(walPath: string, state?: WalReaderState) {
    this.walPath = walPath;
    this.#state = state === undefined ? initialState() : copyState(state);
  }

  /** A copy of the resumable state. */
  get state(): WalReaderState {
    return copyState(this.#state);
  }

  /** Byte offset just past the last consumed commit frame (no copy, unlike `state`). */
  get offset(): number {
    return this.#state.offset;
  }

  /** The salts of the generation being read, or null (no copy, unlike `state`). */
  get salts(): { salt1: number; salt2: number } | null {
    return this.#state.generation;
  }

  /** Number of frames of the current generation consumed so far. */
  get framesConsumed(): number {
    const gen = this.#state.generation;
    if (gen === null) return 0;
    return (this.#state.offset - WAL_HEADER_SIZE) / (WAL_FRAME_HEADER_SIZE + gen.pageSize);
  }

  /**
   * Reads the committed transactions written since the previous call. The file stays open between
   * calls (capture runs after every commit); it is reopened if SQLite deleted and recreated it.
   */
  readCommitted(options: { copyPages?: boolean } = {}): WalReadResult {
    this.#copyPages = options.copyPages ?? true;
    let fd = this.#fd;
    if (fd !== null && this.#state.generation !== null) {
      // Fast path (after every commit): frames that verify against the known generation's salts
      // and running checksum cannot belong to a restarted or recreated WAL: no header, no stat.
      const transactions = this.#scan(fd, Number.MAX_SAFE_INTEGER);
      if (transactions.length > 0) return { transactions, restarted: false };
    }
    if (fd !== null && fstatSync(fd).nlink === 0) {
      this.close();
      fd = null;
    }
    if (fd === null) {
      try {
        fd = openSync(this.walPath, 'r');
      } catch (err) {
        if (isNotFound(err)) return { transactions: [], restarted: this.#forgetGeneration() };
        throw err;
      }
      this.#fd = fd;
    }
    return this.#readFrom(fd);
  }

  /** Closes the file handle (a later read reopens it). */
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  /** The WAL is gone or has no valid header: a later header starts a new generation. */
  #forgetGeneration(): boolean {
    const had = this.#state.generation !== null;
    if (had) this.#state = initialState();
    return had;
  }

  #readFrom(fd: number): WalReadResult {
    const size = fstatSync(fd).size;
    const headerBuf = Buffer.alloc(WAL_HEADER_SIZE);
    const got = size >= WAL_HEADER_SIZE ? readSync(fd, headerBuf, 0, WAL_HEADER_SIZE, 0) : 0;
    const header = got === WAL_HEADER_SIZE ? parseWalHeader(headerBuf) : null;
    if (header === null) return { transactions: [], restarted: this.#forgetGeneration() };

    let restarted = false;
    const gen = this.#state.generation;
    if (gen !== null && (gen.salt1 !== header.salt1 || gen.salt2 !== header.salt2 || size < this.#state.offset)) {
      restarted = true;
    }
    if (gen === null || restarted) {
      this.#state = {
        generation: {
          salt1: header.salt1,
          salt2: header.salt2,
          bigEndian: header.bigEndian,
          pageSize: header.pageSize,
          checkpointSeq: header.checkpointSeq,
        },
        offset: WAL_HEADER_SIZE,
        checksum: header.checksum,
      };
    }
    return { transactions: this.#scan(fd, size), restarted };
  }

  /** Scans valid frames from the consumed offset and advances past the last commit frame. */
  #scan(fd: number, size: number): WalTransaction[] {
    const gen = this.#state.generation;
    if (gen === null) return [];
    const frameSize = WAL_FRAME_HEADER_SIZE + gen.pageSize;
    const transactions: WalTransaction[] = [];
    let pending: WalFrame[] = [];
    let pendingFirst = 0;
    let pos = this.#state.offset;
    let checksum: WalChecksum = this.#state.checksum;
    const available = Math.floor((size - pos) / frameSize);
    if (available <= 0) return transactions;
    if (this.#chunk === null || this.#chunk.length !== frameSize * CHUNK_FRAMES) this.#chunk = Buffer.allocUnsafe(frameSize * CHUNK_FRAMES);
    let chunk = this.#chunk;

    // Start small and grow: a commit usually adds a frame or two, and after a WAL restart the file
    // still holds stale frames of the previous generation past them, which a big read would copy.
    let batch = FIRST_READ_FRAMES;
    scan: while (pos + frameSize <= size) {
      const want = Math.min(batch, Math.floor((size - pos) / frameSize)) * frameSize;
      batch = Math.min(batch * 4, CHUNK_FRAMES);
      const got = readFully(fd, chunk, 0, want, pos);
      const whole = Math.floor(got / frameSize);
      if (whole === 0) break;
      for (let i = 0; i < whole; i++) {
        const at = i * frameSize;
        const next = verifyWalFrame(chunk, at, gen, checksum);
        if (next === null) break scan;
        checksum = next;
        const frameIndex = (pos - WAL_HEADER_SIZE) / frameSize + 1;
        if (pending.length === 0) pendingFirst = frameIndex;
        const sizeAfter = chunk.readUInt32BE(at + 4);
        pending.push({
          pageNo: chunk.readUInt32BE(at),
          sizeAfter,
          page: this.#copyPages ? Buffer.from(chunk.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize)) : chunk.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize),
        });
        pos += frameSize;
        if (sizeAfter !== 0) {
          transactions.push({ frames: pending, sizeAfter, firstFrameIndex: pendingFirst });
          pending = [];
          this.#state.offset = pos;
          this.#state.checksum = checksum;
        }
      }
      if (got < want) break;
      // More to read: views into this buffer must stay valid, so later reads go to a fresh one.
      if (!this.#copyPages) {
        this.#chunk = Buffer.allocUnsafe(chunk.length);
        chunk = this.#chunk;
      }
    }
    return transactions;
  }
}
