/**
 * CRC-64/GO-ISO (polynomial 0x1B, reflected in and out, xor-out all ones) and the chained
 * variant sqld uses as the rolling checksum of replication frames (sqld-wire.md §6.8).
 *
 * The 64-bit register is kept as two unsigned 32-bit halves so that the per-byte loop runs on
 * plain numbers; bigint appears only at the API boundary. The log writer's hot path runs in C when
 * the native library built at install loads (native-checksums.ts), several times faster; this file's
 * JavaScript is the same algorithm, the fallback, and what the tests compare it with.
 */
import { nativeChecksums } from './native-checksums.js';

const U64_MASK = 0xffff_ffff_ffff_ffffn;
/** The reflected polynomial 0x1B, as used by the right-shifting table algorithm. */
const REFLECTED_POLY = 0xd800_0000_0000_0000n;

const TABLE_LO = new Uint32Array(256);
const TABLE_HI = new Uint32Array(256);

function buildTable(): void {
  const polyLo = Number(REFLECTED_POLY & 0xffff_ffffn) >>> 0;
  const polyHi = Number(REFLECTED_POLY >> 32n) >>> 0;
  for (let n = 0; n < 256; n++) {
    let lo = n;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry === 1) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    TABLE_LO[n] = lo;
    TABLE_HI[n] = hi;
  }
}
buildTable();

function reverse32(x: number): number {
  let v = x >>> 0;
  v = ((v >>> 1) & 0x5555_5555) | ((v & 0x5555_5555) << 1);
  v = ((v >>> 2) & 0x3333_3333) | ((v & 0x3333_3333) << 2);
  v = ((v >>> 4) & 0x0f0f_0f0f) | ((v & 0x0f0f_0f0f) << 4);
  v = ((v >>> 8) & 0x00ff_00ff) | ((v & 0x00ff_00ff) << 8);
  v = (v >>> 16) | (v << 16);
  return v >>> 0;
}

/** Mirrors all 64 bits of `value` (bit 0 becomes bit 63). */
export function reverseBits64(value: bigint): bigint {
  const v = BigInt.asUintN(64, value);
  const lo = Number(v & 0xffff_ffffn);
  const hi = Number(v >> 32n);
  return (BigInt(reverse32(lo)) << 32n) | BigInt(reverse32(hi));
}

/**
 * Slicing-by-8 tables: SLICE_x[k * 256 + n] is the register after byte n followed by k zero bytes.
 * Eight bytes are folded per step with sixteen 32-bit lookups instead of eight rounds of shifts.
 */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const SLICE_LO = new Uint32Array(8 * 256);
const SLICE_HI = new Uint32Array(8 * 256);

function buildSlices(): void {
  SLICE_LO.set(TABLE_LO, 0);
  SLICE_HI.set(TABLE_HI, 0);
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const lo = SLICE_LO[(k - 1) * 256 + n]!;
      const hi = SLICE_HI[(k - 1) * 256 + n]!;
      const idx = lo & 0xff;
      SLICE_LO[k * 256 + n] = (((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!) >>> 0;
      SLICE_HI[k * 256 + n] = ((hi >>> 8) ^ TABLE_HI[idx]!) >>> 0;
    }
  }
}
buildSlices();

/** Runs the reflected table algorithm over `data`, starting from register state (hi, lo). */
function update(hiIn: number, loIn: number, data: Uint8Array): [number, number] {
  let hi = hiIn;
  let lo = loIn;
  const n = data.length;
  const words = n >>> 3;
  let i = 0;
  const aligned = LITTLE_ENDIAN && data.byteOffset % 4 === 0;
  const u32 = aligned ? new Uint32Array(data.buffer, data.byteOffset, words * 2) : null;
  const view = aligned ? null : new DataView(data.buffer, data.byteOffset, n);
  for (let w = 0; w < words; w++, i += 8) {
    const a = (lo ^ (u32 ? u32[2 * w]! : view!.getUint32(i, true))) >>> 0;
    const b = (hi ^ (u32 ? u32[2 * w + 1]! : view!.getUint32(i + 4, true))) >>> 0;
    lo =
      SLICE_LO[7 * 256 + (a & 0xff)]! ^
      SLICE_LO[6 * 256 + ((a >>> 8) & 0xff)]! ^
      SLICE_LO[5 * 256 + ((a >>> 16) & 0xff)]! ^
      SLICE_LO[4 * 256 + (a >>> 24)]! ^
      SLICE_LO[3 * 256 + (b & 0xff)]! ^
      SLICE_LO[2 * 256 + ((b >>> 8) & 0xff)]! ^
      SLICE_LO[256 + ((b >>> 16) & 0xff)]! ^
      SLICE_LO[b >>> 24]!;
    hi =
      SLICE_HI[7 * 256 + (a & 0xff)]! ^
      SLICE_HI[6 * 256 + ((a >>> 8) & 0xff)]! ^
      SLICE_HI[5 * 256 + ((a >>> 16) & 0xff)]! ^
      SLICE_HI[4 * 256 + (a >>> 24)]! ^
      SLICE_HI[3 * 256 + (b & 0xff)]! ^
      SLICE_HI[2 * 256 + ((b >>> 8) & 0xff)]! ^
      SLICE_HI[256 + ((b >>> 16) & 0xff)]! ^
      SLICE_HI[b >>> 24]!;
  }
  for (; i < n; i++) {
    const idx = (lo ^ data[i]!) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!) >>> 0;
    hi = ((hi >>> 8) ^ TABLE_HI[idx]!) >>> 0;
  }
  return [hi >>> 0, lo >>> 0];
}

/** The JavaScript chained checksum on 32-bit halves (the fallback of crc64ChainWords). */
export function crc64ChainWordsJs(prevHi: number, prevLo: number, data: Uint8Array): [number, number] {
  const [hi, lo] = update(reverse32(prevLo), reverse32(prevHi), data);
  return [(hi ^ 0xffff_ffff) >>> 0, (lo ^ 0xffff_ffff) >>> 0];
}

const native = nativeChecksums;
const nativeState = new Uint32Array(2);

/**
 * The chained checksum on 32-bit halves (hot path of the log writer: no bigint per frame):
 * `prev` and the result are [high, low] words of the u64.
 */
export function crc64ChainWords(prevHi: number, prevLo: number, data: Uint8Array): [number, number] {
  if (native === null) return crc64ChainWordsJs(prevHi, prevLo, data);
  nativeState[0] = prevHi;
  nativeState[1] = prevLo;
  native.crc64Chain(nativeState, data);
  return [nativeState[0], nativeState[1]];
}

/**
 * The chained checksum of §6.8: the register starts at the bit-reverse of `prev` (the previous
 * frame's checksum, or the log's start checksum), runs over `data` and is xored with all ones.
 * With `prev` = 0xFFFF_FFFF_FFFF_FFFF this is exactly the standard CRC-64/GO-ISO.
 */
export function crc64Chain(prev: bigint, data: Uint8Array): bigint {
  if (native !== null) {
    const p = BigInt.asUintN(64, prev);
    const [hi, lo] = crc64ChainWords(Number(p >> 32n), Number(p & 0xffff_ffffn), data);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  const state = reverseBits64(prev);
  const [hi, lo] = update(Number(state >> 32n) >>> 0, Number(state & 0xffff_ffffn) >>> 0, data);
  return ((BigInt(hi) << 32n) | BigInt(lo)) ^ U64_MASK;
}

/** The standard CRC-64/GO-ISO of `data` (check value of "123456789": 0xB90956C775A41001). */
export function crc64GoIso(data: Uint8Array): bigint {
  return crc64Chain(U64_MASK, data);
}

/**
 * The standard CRC-64/GO-ISO of data given in pieces (crc64Chain does not compose that way: it
 * restarts from the bit-reverse of its `prev`). The register is carried between pieces; in C
 * where the library loads (about 10 GB/s with carry-less multiplication), else in JavaScript.
 */
export class Crc64Stream {
  /** The register, as [high, low] words; all ones to start. */
  private hi = 0xffff_ffff;
  private lo = 0xffff_ffff;

  update(data: Uint8Array): this {
    if (native !== null) {
      // The native call starts from the bit-reverse of its state and xors all ones at the end.
      nativeState[0] = reverse32(this.lo);
      nativeState[1] = reverse32(this.hi);
      native.crc64Chain(nativeState, data);
      this.hi = (nativeState[0] ^ 0xffff_ffff) >>> 0;
      this.lo = (nativeState[1] ^ 0xffff_ffff) >>> 0;
    } else {
      [this.hi, this.lo] = update(this.hi, this.lo, data);
    }
    return this;
  }

  /** The CRC of everything so far, as 16 lowercase hex digits. */
  hex(): string {
    const hex = (w: number): string => ((w ^ 0xffff_ffff) >>> 0).toString(16).padStart(8, '0');
    return hex(this.hi) + hex(this.lo);
  }
}
