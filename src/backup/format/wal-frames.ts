/**
 * The payload of a bottomless batch (spec §1.6): SQLite WAL frames exactly as in the `-wal` file,
 * no header. Parsing follows the restore rules of §3.3 (data ending at or inside a frame header
 * ends the batch; inside a page it is damage); the checksum chain of §1.7 is verified with the
 * engine's WAL checksum, seeded from the generation's `.meta` and carried across its batches.
 */
import {
  encodeWalFrame,
  walChecksum,
  WAL_FRAME_HEADER_SIZE,
  type WalChecksum,
  type WalFrame,
} from '../../engine/wal/sqlite-wal-format.js';
import { nativeChecksums } from '../../engine/wal/native-checksums.js';
import { CorruptBackupError } from './errors.js';
import { parseBatchName } from './layout.js';

export interface BatchFrame {
  pageNo: number;
  /** Database size in pages after commit for a commit frame, 0 otherwise. */
  sizeAfter: number;
  salt1: number;
  salt2: number;
  /** The cumulative checksum stored in the frame header. */
  checksum: [number, number];
  /** The page image: a view into the payload, not a copy. */
  page: Buffer;
}

export interface ParsedBatch {
  frames: BatchFrame[];
  /** The payload ended with part of a frame header, which was ignored (as bottomless does). */
  truncatedHeader: boolean;
}

/** Frame number of the batch's first frame, from its key when the key is a batch key. */
function firstFrameOf(key: string): number | null {
  return parseBatchName(key.slice(key.lastIndexOf('/') + 1))?.first ?? null;
}

function frameLabel(key: string, index: number): string {
  const first = firstFrameOf(key);
  return first === null ? `frame #${index + 1} of the batch` : `frame ${first + index}`;
}

/**
 * Checks how a decompressed batch payload cuts into frames, without cutting it: frame i starts
 * at i × (24 + pageSize). Throws what parseBatchFrames throws.
 */
export function scanBatchFrames(payload: Buffer, pageSize: number, key: string): { count: number; truncatedHeader: boolean } {
  const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
  let count = 0;
  let at = 0;
  while (payload.length - at >= WAL_FRAME_HEADER_SIZE) {
    if (payload.length - at < frameSize) {
      throw new CorruptBackupError(key, `data ends inside the page of ${frameLabel(key, count)} (${payload.length - at - WAL_FRAME_HEADER_SIZE} of ${pageSize} bytes)`);
    }
    if (payload.readUInt32BE(at) === 0) throw new CorruptBackupError(key, `${frameLabel(key, count)} has page number 0`);
    count++;
    at += frameSize;
  }
  return { count, truncatedHeader: at < payload.length };
}

/** Frame `index` of a payload scanBatchFrames accepted. */
export function batchFrameAt(payload: Buffer, pageSize: number, index: number): BatchFrame {
  const at = index * (WAL_FRAME_HEADER_SIZE + pageSize);
  return {
    pageNo: payload.readUInt32BE(at),
    sizeAfter: payload.readUInt32BE(at + 4),
    salt1: payload.readUInt32BE(at + 8),
    salt2: payload.readUInt32BE(at + 12),
    checksum: [payload.readUInt32BE(at + 16), payload.readUInt32BE(at + 20)],
    page: payload.subarray(at + WAL_FRAME_HEADER_SIZE, at + WAL_FRAME_HEADER_SIZE + pageSize),
  };
}

/** Cuts a decompressed batch payload into frames. */
export function parseBatchFrames(payload: Buffer, pageSize: number, key: string): ParsedBatch {
  const { count, truncatedHeader } = scanBatchFrames(payload, pageSize, key);
  const frames = Array.from({ length: count }, (_, i) => batchFrameAt(payload, pageSize, i));
  return { frames, truncatedHeader };
}

export type ChecksumByteOrder = 'le' | 'be' | 'detect';

/** The C chain check (native/checksums.c), null without the library (or in one built before it). */
const nativeChainCheck = nativeChecksums?.walChainCheck?.bind(nativeChecksums) ?? null;
const chainState = new Uint32Array(2);

/**
 * The checksum chain of one generation. `.meta` does not record the WAL's byte order, so
 * `detect` tries little-endian on the first frame, then big-endian, and keeps what matched.
 */
export class ChecksumChain {
  private sum: [number, number];
  private order: boolean | null;
  private next: number;

  constructor(seed: WalChecksum, order: ChecksumByteOrder = 'detect', firstFrame = 1) {
    this.sum = [seed[0] >>> 0, seed[1] >>> 0];
    this.order = order === 'detect' ? null : order === 'be';
    this.next = firstFrame;
  }

  /** True for big-endian words, null while undecided. */
  get bigEndian(): boolean | null {
    return this.order;
  }

  /** The checksum after the last verified frame (the seed of the next one). */
  get checksum(): [number, number] {
    return [this.sum[0], this.sum[1]];
  }

  /** Frame number the next verified frame must have. */
  get nextFrame(): number {
    return this.next;
  }

  /** Verifies the frames of batch `key`, whose first frame is `firstFrame` (must continue the chain). */
  verifyBatch(frames: readonly BatchFrame[], key: string, firstFrame: number): void {
    if (firstFrame !== this.next) throw new RangeError(`batch ${key} starts at frame ${firstFrame}, the chain is at ${this.next}`);
    for (const frame of frames) this.verifyFrame(frame, key);
  }

  /**
   * verifyBatch over the first `count` frames of a payload scanBatchFrames accepted, without
   * cutting it into frames: in C where the library has walChainCheck (the same checks, the same
   * errors: a frame that does not chain is verified once more here, which throws).
   */
  verifyPayload(payload: Buffer, count: number, pageSize: number, key: string, firstFrame: number): void {
    if (firstFrame !== this.next) throw new RangeError(`batch ${key} starts at frame ${firstFrame}, the chain is at ${this.next}`);
    let i = 0;
    if (nativeChainCheck !== null) {
      // The first frame of a generation decides the byte order.
      if (this.order === null && count > 0) this.verifyFrame(batchFrameAt(payload, pageSize, i++), key);
      chainState[0] = this.sum[0];
      chainState[1] = this.sum[1];
      const at = i * (WAL_FRAME_HEADER_SIZE + pageSize);
      const n = count > i ? nativeChainCheck(chainState, payload.subarray(at), pageSize, this.order === true, count - i) : 0;
      this.sum = [chainState[0], chainState[1]];
      this.next += n;
      i += n;
    }
    for (; i < count; i++) this.verifyFrame(batchFrameAt(payload, pageSize, i), key);
  }

  /** Verifies the next frame of the chain (from batch `key`). */
  verifyFrame(frame: BatchFrame, key: string): void {
    const header = Buffer.allocUnsafe(8);
    header.writeUInt32BE(frame.pageNo, 0);
    header.writeUInt32BE(frame.sizeAfter, 4);
    const matches = (bigEndian: boolean): [number, number] | null => {
      const sum = walChecksum(frame.page, bigEndian, walChecksum(header, bigEndian, this.sum));
      return sum[0] === frame.checksum[0] && sum[1] === frame.checksum[1] ? sum : null;
    };
    let sum: [number, number] | null;
    if (this.order === null) {
      sum = matches(false);
      if (sum !== null) this.order = false;
      else {
        sum = matches(true);
        if (sum !== null) this.order = true;
      }
    } else {
      sum = matches(this.order);
    }
    if (sum === null) {
      const how = this.order === null ? 'in either byte order' : `(${this.order ? 'big' : 'little'}-endian words)`;
      throw new CorruptBackupError(key, `frame ${this.next} (page ${frame.pageNo}): checksum does not chain ${how}`);
    }
    this.sum = sum;
    this.next++;
  }
}

export interface EncodeBatchOptions {
  salt1: number;
  salt2: number;
  /** The WAL's checksum byte order (magic 0x377f0683). */
  bigEndian: boolean;
  /** The running checksum before the first frame: the WAL header's for frame 1. */
  checksumBefore: WalChecksum;
}

/** Rebuilds frames byte for byte as SQLite wrote them into the WAL; pages must all be one size. */
export function encodeBatchFrames(frames: readonly WalFrame[], opts: EncodeBatchOptions): { payload: Buffer; checksumAfter: [number, number] } {
  let sum: [number, number] = [opts.checksumBefore[0] >>> 0, opts.checksumBefore[1] >>> 0];
  if (frames.length === 0) return { payload: Buffer.alloc(0), checksumAfter: sum };
  const pageSize = frames[0]!.page.length;
  const header = { bigEndian: opts.bigEndian, pageSize, salt1: opts.salt1, salt2: opts.salt2 };
  const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
  const payload = Buffer.allocUnsafe(frames.length * frameSize);
  frames.forEach((frame, i) => {
    const { bytes, checksum } = encodeWalFrame(header, sum, frame);
    bytes.copy(payload, i * frameSize);
    sum = checksum;
  });
  return { payload, checksumAfter: sum };
}
