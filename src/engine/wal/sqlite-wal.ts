/**
 * Incremental reader of a SQLite `-wal` file (design.md §4): each call reads from the last
 * consumed position, accepts frames while their salts and cumulative checksum are valid, and
 * returns whole transactions only (up to and including the last commit frame). A trailing partial
 * transaction stays unconsumed for the next call. A WAL restart (new salts, or a file that shrank)
 * makes the reader start again at offset 32 of the new generation.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { WalFile } from '../files/sqlite-files.js';
import { PAGE_SIZE } from './frame.js';
import { CAPTURE_IO, nativeChecksums } from './native-checksums.js';
import type { FrameFiller } from './wallog-file.js';
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
  /** The running checksum just before the transaction's first frame. */
  checksumBefore: WalChecksum;
}

/** The identity of the WAL generation being read. */
export interface WalGeneration {
  salt1: number;
  salt2: number;
  bigEndian: boolean;
  pageSize: number;
  checkpointSeq: number;
  /** The header's own checksum (the seed of the first frame's checksum). */
  headerChecksum: WalChecksum;
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
/**
 * Frames the first read of a scan asks for: as many as the last transaction read had (a commit of
 * the same size then comes back in one read), plus the header of the frame after them, which tells
 * whether the scan can end there: at the end of the file the read comes back short (a WAL is on a
 * local file system, where a read returns less than asked only there), and after a restart the file
 * keeps its old length and the stale frames past the new ones fail the salt check. Reading a whole
 * stale frame instead of its header would copy a page for nothing.
 */
const FIRST_READ_FRAMES = 4;

/** One read at `position` (short only at the end of the file): the C pread when it is there. */
const readAt: (fd: number, buf: Uint8Array, offset: number, length: number, position: number) => number =
  nativeChecksums?.pread?.bind(nativeChecksums) ?? ((fd, buf, offset, length, position) => readSync(fd, buf, offset, length, position));

/** The native read-verify-append (native/checksums.c), or null (the capture reads frame objects then). */
const nativeCapture = nativeChecksums?.walCapture?.bind(nativeChecksums) ?? null;

function initialState(): WalReaderState {
  return { generation: null, offset: WAL_HEADER_SIZE, checksum: [0, 0] };
}

function copyState(s: WalReaderState): WalReaderState {
  const generation = s.generation === null ? null : { ...s.generation, headerChecksum: [s.generation.headerChecksum[0], s.generation.headerChecksum[1]] as WalChecksum };
  return { generation, offset: s.offset, checksum: [s.checksum[0], s.checksum[1]] };
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * A `-wal` file opened by path, for files no live SQLite connection of this process uses (tests,
 * offline tools). The engine passes SqliteFiles' long-lived WalFile instead.
 */
class PathWalFile implements WalFile {
  #fd: number | null = null;
  constructor(readonly path: string) {}
  fd(): number | null {
    if (this.#fd !== null) return this.#fd;
    try {
      this.#fd = openSync(this.path, 'r');
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    return this.#fd;
  }
  replaced(): boolean {
    if (this.#fd === null || fstatSync(this.#fd).nlink > 0) return false;
    this.close();
    return true;
  }
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

export class WalReader implements FrameFiller {
  readonly walPath: string;
  readonly #file: WalFile;
  readonly #ownsFile: PathWalFile | null;
  #state: WalReaderState;
  /** Read buffer reused across calls (pages are copied out of it). */
  #chunk: Buffer | null = null;
  /** false: pages are views into the read buffer, valid only until the next call (capture copies them at once). */
  #copyPages = true;
  /** Frames the next scan reads first (see FIRST_READ_FRAMES). */
  #firstRead = FIRST_READ_FRAMES;
  #fillMore = false;

  /** `file`: the engine's long-lived WalFile, or a path (the reader then owns its descriptor). */
  constructor(file: WalFile | string, state?: WalReaderState) {
    this.#ownsFile = typeof file === 'string' ? new PathWalFile(file) : null;
    this.#file = this.#ownsFile ?? (file as WalFile);
    this.walPath = this.#file.path;
    this.#state = state === undefined ? initialState() : copyState(state);
  }

  /**
   * The current state without copying (the reader replaces its parts rather than changing them), for
   * a `restore` after a failed capture; cheaper than `state` on the commit path.
   */
  mark(): WalReaderState {
    return { generation: this.#state.generation, offset: this.#state.offset, checksum: this.#state.checksum };
  }

  /** Goes back to a state taken earlier (a capture that failed after reading). */
  restore(state: WalReaderState): void {
    this.#state = copyState(state);
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
    let fd = this.#file.fd();
    if (fd !== null && this.#state.generation !== null) {
      // Fast path (after every commit): frames that verify against the known generation's salts
      // and running checksum cannot belong to a restarted or recreated WAL: no header, no stat.
      const transactions = this.#scan(fd, Number.MAX_SAFE_INTEGER);
      if (transactions.length > 0) return { transactions, restarted: false };
    }
    if (fd !== null && this.#file.replaced()) fd = this.#file.fd();
    if (fd === null) return { transactions: [], restarted: this.#forgetGeneration() };
    return this.#readFrom(fd);
  }

  /**
   * True when `fillFrames` can run: the native library has it, a generation is known and its pages
   * are the size of a `wallog` page (so a WAL frame and a log frame have the same size).
   */
  get canFill(): boolean {
    return nativeCapture !== null && this.#state.generation !== null && this.#state.generation.pageSize === PAGE_SIZE;
  }

  /**
   * The fast path of `readCommitted` for the capture, in one native call: the committed frames of
   * the known generation from the consumed offset are read straight into buf[offset…], verified as
   * `readCommitted` verifies them (page number, salts, checksum chain; the first that fails ends the
   * scan; whole transactions only) and rewritten in place into `wallog` frames (FrameFiller). Like
   * readCommitted's fast path it notices no restart: 0 frames means "ask readCommitted". The
   * reader's state moves on only at `commitFill`.
   */
  fillFrames(buf: Buffer, offset: number, maxFrames: number, io: Uint32Array): number {
    this.#fillMore = false;
    const gen = this.#state.generation;
    if (nativeCapture === null || gen === null || gen.pageSize !== PAGE_SIZE) return 0;
    const fd = this.#file.fd();
    if (fd === null) return 0;
    io[CAPTURE_IO.walS0] = this.#state.checksum[0];
    io[CAPTURE_IO.walS1] = this.#state.checksum[1];
    const n = nativeCapture(fd, buf, offset, maxFrames, this.#firstRead, this.#state.offset, gen.pageSize, gen.bigEndian, gen.salt1 >>> 0, gen.salt2 >>> 0, io);
    this.#fillMore = io[CAPTURE_IO.more] === 1;
    return n;
  }

  /** The frames of the last fillFrames were taken: the consumed offset and checksum move past them. */
  commitFill(frames: number, io: Uint32Array): void {
    const gen = this.#state.generation!;
    // A new state object: marks taken before stay as they were.
    this.#state = {
      generation: gen,
      offset: this.#state.offset + frames * (WAL_FRAME_HEADER_SIZE + gen.pageSize),
      checksum: [io[CAPTURE_IO.walS0]!, io[CAPTURE_IO.walS1]!],
    };
    this.#firstRead = Math.min(CHUNK_FRAMES, Math.max(1, io[CAPTURE_IO.lastTxnFrames]!));
  }

  /** The last fillFrames ran out of room while the next frame may be valid. */
  get fillMore(): boolean {
    return this.#fillMore;
  }

  /** Closes the descriptor when the reader opened it by path (the engine's WalFile stays open). */
  close(): void {
    this.#ownsFile?.close();
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
          headerChecksum: header.checksum,
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
    let transactions: WalTransaction[] = [];
    let pending: WalFrame[] = [];
    let pendingFirst = 0;
    // Checksum pairs are never changed in place (each frame's is a new one): no copy needed.
    let pendingBefore: WalChecksum = this.#state.checksum;
    let pos = this.#state.offset;
    let checksum: WalChecksum = this.#state.checksum;
    const available = Math.floor((size - pos) / frameSize);
    if (available <= 0) return transactions;
    const chunkBytes = frameSize * CHUNK_FRAMES + WAL_FRAME_HEADER_SIZE;
    if (this.#chunk === null || this.#chunk.length !== chunkBytes) this.#chunk = Buffer.allocUnsafe(chunkBytes);
    let chunk = this.#chunk;

    // Start small and grow: a commit usually adds a frame or two, and after a WAL restart the file
    // still holds stale frames of the previous generation past them, which a big read would copy.
    let batch = this.#firstRead;
    scan: while (pos + frameSize <= size) {
      const frames = Math.min(batch, Math.floor((size - pos) / frameSize));
      batch = Math.min(batch * 4, CHUNK_FRAMES);
      // One read of the frames and the next frame's header: a short one is the end of the file
      // (see FIRST_READ_FRAMES); a second read to be told so would cost a system call per commit.
      const want = frames * frameSize + WAL_FRAME_HEADER_SIZE;
      const got = readAt(fd, chunk, 0, want, pos);
      const whole = Math.min(frames, Math.floor(got / frameSize));
      if (whole === 0) break;
      for (let i = 0; i < whole; i++) {
        const at = i * frameSize;
        const next = verifyWalFrame(chunk, at, gen, checksum);
        if (next === null) break scan;
        const frameIndex = (pos - WAL_HEADER_SIZE) / frameSize + 1;
        if (pending.length === 0) {
          pendingFirst = frameIndex;
          pendingBefore = checksum;
        }
        checksum = next;
        const sizeAfter = chunk.readUInt32BE(at + 4);
        const frame: WalFrame = {
          pageNo: chunk.readUInt32BE(at),
          sizeAfter,
          page: this.#copyPages ? Buffer.from(chunk.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize)) : chunk.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize),
        };
        // Array literals for the first element: exactly sized (a push into [] reserves 17 slots).
        if (pending.length === 0) pending = [frame];
        else pending.push(frame);
        pos += frameSize;
        if (sizeAfter !== 0) {
          const txn: WalTransaction = { frames: pending, sizeAfter, firstFrameIndex: pendingFirst, checksumBefore: pendingBefore };
          if (transactions.length === 0) transactions = [txn];
          else transactions.push(txn);
          pending = [];
          this.#state.offset = pos;
          this.#state.checksum = checksum;
        }
      }
      if (got < want) break;
      // The next frame cannot be valid (verifyWalFrame checks the same first): the scan ends here.
      const peek = whole * frameSize;
      if (chunk.readUInt32BE(peek) === 0 || chunk.readUInt32BE(peek + 8) !== gen.salt1 || chunk.readUInt32BE(peek + 12) !== gen.salt2) break;
      // More to read: views into this buffer must stay valid, so later reads go to a fresh one.
      if (!this.#copyPages) {
        this.#chunk = Buffer.allocUnsafe(chunk.length);
        chunk = this.#chunk;
      }
    }
    const last = transactions.at(-1);
    if (last !== undefined) this.#firstRead = Math.min(CHUNK_FRAMES, last.frames.length);
    return transactions;
  }
}
