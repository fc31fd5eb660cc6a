/**
 * Zstandard for backup objects. Encoding: @bokuweb/zstd-wasm's one-shot compressor (one frame,
 * default level); we then set the frame's content-checksum flag and append the checksum (low 32
 * bits of XXH64 of the content), so damage to our own objects is detected like the zstd CLI's.
 *
 * Decoding: fzstd's streaming decoder, one instance per frame, behind our own walk of the frame
 * structure (RFC 8878 §3.1): magic, frame header, block headers, optional checksum. The walk is
 * what finds a truncated input (fzstd alone accepts a missing checksum), lets any number of frames
 * and skippable frames follow each other, and checks the declared content size and the checksum.
 * Every problem is a ZstdFormatError; codec.ts turns it into CorruptBackupError.
 */
import { compress as wasmCompress, init as wasmInit } from '@bokuweb/zstd-wasm';
import { Decompress } from 'fzstd';
import { Xxh64, xxh64 } from './xxh64.js';

export class ZstdFormatError extends Error {}

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50;
const MAX_BLOCK_SIZE = 128 * 1024;
/** The wasm heap stops at 2 GiB and holds input and output at once. */
export const ZSTD_MAX_INPUT = 768 * 1024 * 1024;

let ready: Promise<void> | null = null;

/** Loads the wasm encoder once. */
function encoderReady(): Promise<void> {
  ready ??= wasmInit().catch((e: unknown) => {
    ready = null;
    throw e;
  });
  return ready;
}

/** One zstd frame of `data` at the library's default level, with a content checksum. */
export async function zstdCompress(data: Uint8Array): Promise<Buffer> {
  if (data.length > ZSTD_MAX_INPUT) {
    throw new RangeError(`zstd compression is limited to ${ZSTD_MAX_INPUT} bytes here (got ${data.length}); use gz`);
  }
  await encoderReady();
  const frame = wasmCompress(data);
  const out = Buffer.allocUnsafe(frame.length + 4);
  out.set(frame, 0);
  if (out.readUInt32LE(0) !== FRAME_MAGIC || (out[4]! & 0x04) !== 0) throw new Error('unexpected zstd encoder output');
  out[4] = out[4]! | 0x04;
  out.writeUInt32LE(Number(xxh64(data) & 0xffff_ffffn), frame.length);
  return out;
}

type State = 'magic' | 'header' | 'skippableHeader' | 'skip' | 'blockHeader' | 'blockBody' | 'checksum';

/** A push decoder of concatenated zstd frames; `onData` receives the content in order. */
export class ZstdDecoder {
  private state: State = 'magic';
  /** Collects magic, headers and checksums (at most 18 bytes). */
  private readonly small = Buffer.alloc(18);
  private have = 0;
  private need = 4;
  /** Bytes left of a block's body or of a skippable frame. */
  private remaining = 0;
  private lastBlock = false;
  private frames = 0;
  private inner: Decompress | null = null;
  private hash: Xxh64 | null = null;
  private contentSize: number | null = null;
  private produced = 0;

  constructor(private readonly onData: (chunk: Uint8Array) => void) {}

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'skip' || this.state === 'blockBody') {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.state === 'blockBody') this.feed(chunk.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          if (this.state === 'skip') this.expect('magic', 4);
          else this.afterBlock();
        }
        continue;
      }
      const n = Math.min(this.need - this.have, chunk.length - i);
      this.small.set(chunk.subarray(i, i + n), this.have);
      this.have += n;
      i += n;
      if (this.have === this.need) this.onSmall();
    }
  }

  /** The input ended: it must end between frames, after at least one frame. */
  end(): void {
    if (this.state !== 'magic' || this.have !== 0) throw new ZstdFormatError(`input ends inside a frame (${this.state})`);
    if (this.frames === 0) throw new ZstdFormatError('no zstd frame in the input');
  }

  private expect(state: State, need: number): void {
    this.state = state;
    this.need = need;
    this.have = 0;
  }

  private feed(bytes: Uint8Array): void {
    // fzstd keeps references to pushed chunks: never hand it the reused `small` buffer itself.
    this.inner!.push(bytes);
  }

  private onSmall(): void {
    const b = this.small;
    switch (this.state) {
      case 'magic': {
        const magic = b.readUInt32LE(0);
        if (magic === FRAME_MAGIC) {
          this.state = 'header';
          this.need = 5;
        } else if ((magic & 0xffff_fff0) >>> 0 === SKIPPABLE_MAGIC) {
          this.state = 'skippableHeader';
          this.need = 8;
        } else {
          throw new ZstdFormatError(`not a zstd frame (magic 0x${magic.toString(16).padStart(8, '0')})`);
        }
        return;
      }
      case 'skippableHeader':
        this.remaining = b.readUInt32LE(4);
        if (this.remaining === 0) this.expect('magic', 4);
        else this.state = 'skip';
        return;
      case 'header':
        if (this.need === 5) {
          this.need = frameHeaderSize(b[4]!);
          return;
        }
        this.startFrame();
        return;
      case 'blockHeader': {
        const v = b[0]! | (b[1]! << 8) | (b[2]! << 16);
        const type = (v >> 1) & 3;
        const size = v >>> 3;
        if (type === 3) throw new ZstdFormatError('reserved block type');
        if (size > MAX_BLOCK_SIZE) throw new ZstdFormatError(`block of ${size} bytes exceeds the maximum`);
        this.lastBlock = (v & 1) === 1;
        this.feed(copyOf(b, 3));
        this.remaining = type === 1 ? 1 : size;
        this.state = 'blockBody';
        if (this.remaining === 0) this.afterBlock();
        return;
      }
      case 'checksum':
        this.feed(copyOf(b, 4));
        this.finishFrame(b.readUInt32LE(0));
        return;
      default:
        throw new ZstdFormatError(`unexpected decoder state ${this.state}`);
    }
  }

  private startFrame(): void {
    const b = this.small;
    const fhd = b[4]!;
    const singleSegment = (fhd & 0x20) !== 0;
    const dictBytes = [0, 1, 2, 4][fhd & 3]!;
    let at = 5 + (singleSegment ? 0 : 1);
    const dictId = dictBytes === 0 ? 0 : b.readUIntLE(at, dictBytes);
    if (dictId !== 0) throw new ZstdFormatError(`frame needs dictionary ${dictId}`);
    at += dictBytes;
    const fcsBytes = this.need - at;
    if (fcsBytes === 0) this.contentSize = null;
    else if (fcsBytes === 1) this.contentSize = b[at]!;
    else if (fcsBytes === 2) this.contentSize = b.readUInt16LE(at) + 256;
    else if (fcsBytes === 4) this.contentSize = b.readUInt32LE(at);
    else this.contentSize = b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 2 ** 32;
    this.hash = (fhd & 0x04) !== 0 ? new Xxh64() : null;
    this.produced = 0;
    this.inner = new Decompress((data) => {
      if (data.length === 0) return;
      this.produced += data.length;
      this.hash?.update(data);
      this.onData(data);
    });
    this.feed(copyOf(b, this.need));
    this.expect('blockHeader', 3);
  }

  private afterBlock(): void {
    if (!this.lastBlock) this.expect('blockHeader', 3);
    else if (this.hash !== null) this.expect('checksum', 4);
    else this.finishFrame(null);
  }

  private finishFrame(stored: number | null): void {
    this.inner!.push(new Uint8Array(0), true);
    this.inner = null;
    if (this.contentSize !== null && this.produced !== this.contentSize) {
      throw new ZstdFormatError(`frame declares ${this.contentSize} bytes of content but holds ${this.produced}`);
    }
    if (stored !== null) {
      const actual = Number(this.hash!.digest() & 0xffff_ffffn);
      if (actual !== stored) throw new ZstdFormatError(`content checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`);
    }
    this.hash = null;
    this.frames++;
    this.expect('magic', 4);
  }
}

/** A copy of the first `n` bytes (Buffer#slice would be a view). */
function copyOf(b: Buffer, n: number): Uint8Array {
  return new Uint8Array(b.subarray(0, n));
}

/** Frame header size (magic included) from its descriptor byte. */
function frameHeaderSize(fhd: number): number {
  if ((fhd & 0x08) !== 0) throw new ZstdFormatError('reserved bit set in the frame header');
  const singleSegment = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  return 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + fcsBytes;
}
