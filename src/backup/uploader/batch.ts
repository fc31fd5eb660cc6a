/**
 * A batch: whole transactions of one generation, consecutive frames, with the commit time of each
 * (`libsqlctl-commits`). Open while the batcher adds to it, then cut and handed to the stager, which
 * encodes it (WAL frames with the generation's salts and checksum chain, encoded strictly in order),
 * compresses and stages it.
 */
import type { WalFrame } from '../../engine/wal/sqlite-wal-format.js';
import { compress } from '../format/codec.js';
import { gzipSegmentsSync } from '../format/gzip-segments.js';
import { batchName, type Compression } from '../format/layout.js';
import { CommitTimesWriter, META_BATCH_COMMITS } from '../format/objects.js';
import { encodeBatchFrames } from '../format/wal-frames.js';
import { ZSTD_MAX_INPUT } from '../format/zstd.js';
import type { Generation } from './generation.js';

export interface TxnEntry {
  frames: readonly WalFrame[];
  firstFrameNo: bigint;
  lastFrameNo: bigint;
  /** Index (in the generation) of the transaction's commit frame. */
  lastIndex: number;
  commitMs: number;
}

export type BatchState = 'open' | 'queued' | 'writing' | 'placed' | 'staged' | 'dropped';

export class BatchItem {
  private txns: TxnEntry[] = [];
  private readonly commits = new CommitTimesWriter();
  frames = 0;
  state: BatchState = 'open';
  firstIndex = 0;
  lastIndex = 0;
  firstFrameNo = 0n;
  lastFrameNo = 0n;
  lastCommitMs = 0;
  /** Encoded WAL frames (set once encoded; released once staged). */
  payload: Buffer | null = null;
  checksumAfter: [number, number] = [0, 0];
  /** The object name it was staged under, and its size on disk. */
  name: string | null = null;
  bytes = 0;

  constructor(
    readonly gen: Generation,
    /** Clock time of the batch's first transaction (the interval counts from it). */
    readonly startedAt: number,
  ) {}

  get empty(): boolean {
    return this.txns.length === 0;
  }

  /** Bytes of page data held in memory (frames × page size). */
  get memoryBytes(): number {
    return this.payload?.length ?? this.frames * (this.gen.coords?.pageSize ?? 4096);
  }

  /** Whether the commit-time list can take one more commit (at `lastIndex`, `commitMs`). */
  commitsFit(lastIndex: number, commitMs: number): boolean {
    return this.commits.canAdd({ lastFrame: lastIndex, unixMs: commitMs });
  }

  add(t: TxnEntry): void {
    if (this.txns.length === 0) {
      this.firstIndex = t.lastIndex - t.frames.length + 1;
      this.firstFrameNo = t.firstFrameNo;
    }
    this.txns.push(t);
    this.frames += t.frames.length;
    this.lastIndex = t.lastIndex;
    this.lastFrameNo = t.lastFrameNo;
    this.lastCommitMs = t.commitMs;
    if (!this.commits.tryAdd({ lastFrame: t.lastIndex, unixMs: t.commitMs })) {
      // Callers cut before this happens; a single commit always fits.
      throw new RangeError('commit-time list overflow');
    }
  }

  /** The object's user metadata. */
  get metadata(): Record<string, string> {
    return { [META_BATCH_COMMITS]: this.commits.toString() };
  }

  /**
   * Encodes the frames, continuing the generation's checksum chain; must run in index order
   * (the stager encodes its queue from the head).
   */
  encode(): Buffer {
    if (this.payload) return this.payload;
    const gen = this.gen;
    const coords = gen.coords;
    if (!coords) throw new Error(`generation ${gen.id} has no WAL coordinates`);
    if (gen.encodedIndex + 1 !== this.firstIndex) throw new Error(`batch ${this.firstIndex}-${this.lastIndex} of ${gen.id} encoded out of order (chain at ${gen.encodedIndex})`);
    const frames: WalFrame[] = [];
    for (const t of this.txns) for (const f of t.frames) frames.push(f);
    const { payload, checksumAfter } = encodeBatchFrames(frames, {
      salt1: coords.salt1,
      salt2: coords.salt2,
      bigEndian: coords.bigEndian,
      checksumBefore: gen.encodeChecksum,
    });
    gen.encodeChecksum = checksumAfter;
    gen.encodedIndex = this.lastIndex;
    this.payload = payload;
    this.checksumAfter = checksumAfter;
    this.txns = [];
    return payload;
  }

  /** The object name for compression `c` (`<first>-<last>-<secs of the last commit>.<ext>`). */
  objectName(c: Compression): string {
    return batchName(this.firstIndex, this.lastIndex, Math.floor(this.lastCommitMs / 1000), c);
  }

  /** The compression this batch is staged with: zstd's encoder here stops at ZSTD_MAX_INPUT, gz then. */
  compressionFor(c: Compression): Compression {
    return c === 'zstd' && this.encode().length > ZSTD_MAX_INPUT ? 'gz' : c;
  }

  /** Compressed bytes, off the event loop where the codec allows. */
  async compressed(c: Compression): Promise<Buffer> {
    return compress(c, this.encode());
  }

  /**
   * Compressed bytes, synchronously (checkpoint hand-over, under the write lock). zstd has no
   * synchronous encoder here, so such a batch is staged raw (`.raw`: bottomless reads every kind).
   */
  compressedSync(c: Compression): { data: Buffer; compression: Compression } {
    const payload = this.encode();
    if (c === 'gz') return { data: gzipSegmentsSync(payload), compression: 'gz' };
    return { data: payload, compression: 'raw' };
  }
}
