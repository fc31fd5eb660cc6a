/**
 * The C version of the replication log's CRC-64 (native/checksums.c, built by `npm install` from
 * source), which the log writer runs over every captured page, and SQLite's WAL checksum, which the
 * capture verifies every frame it reads from `-wal` with, and the capture's read per commit. crc64.ts,
 * sqlite-wal-format.ts and sqlite-wal.ts keep their JavaScript versions as the fallback when the
 * library was not built or does not load; the tests check that it loads and that both agree.
 */
import { loadOptionalAddon, nativeLibrary } from '../native-addon.js';

export interface ChecksumsAddon {
  /** `state`: [high, low] of the previous CRC-64, replaced by the chained one over `data`. */
  crc64Chain(state: Uint32Array, data: Uint8Array): void;
  /**
   * `state`: the running WAL checksum [s0, s1], replaced by the one after `data` (a multiple of 8
   * bytes, read as words in big-endian order when `bigEndian`, little-endian otherwise). Missing from
   * libraries built before it was added.
   */
  walChecksum?(state: Uint32Array, data: Uint8Array, bigEndian: boolean): void;
  /**
   * Verifies the WAL frame at `offset` of `buf` as SQLite does (page number not 0, the salts, the
   * checksum chained from `state`); true when it verifies, and `state` then holds its checksum.
   */
  walFrameCheck?(state: Uint32Array, buf: Uint8Array, offset: number, pageSize: number, bigEndian: boolean, salt1: number, salt2: number): boolean;
  /**
   * The checksum chain of `count` frames at the start of `buf` (checksums only: no page number or
   * salt checks), chained from `state`; returns how many chained before the first that does not,
   * and `state` then holds the checksum of the last that did. Missing from libraries built before it.
   */
  walChainCheck?(state: Uint32Array, buf: Uint8Array, pageSize: number, bigEndian: boolean, count: number): number;
  /**
   * One pread(2) of up to `length` bytes at `position` into buf[offset…] (retried when interrupted):
   * fs.readSync without its argument checks, for the capture's read per commit. Throws an Error whose
   * `code` names the errno. Not on Windows, nor in libraries built before it was added.
   */
  pread?(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  /**
   * The capture's read-verify-append of a commit in one call: reads WAL frames at `position` of `fd`
   * into buf[offset…] (at most `maxFrames`, the first read `firstRead` frames plus the next header),
   * verifies each as walFrameCheck does, stopping at the first that fails, and rewrites the verified
   * headers in place into the `wallog` layout with the CRC-64 chain; only whole transactions count.
   * `io`: see CAPTURE_IO. Returns the frames taken. Not on Windows, nor in libraries built before it.
   */
  walCapture?(
    fd: number,
    buf: Uint8Array,
    offset: number,
    maxFrames: number,
    firstRead: number,
    position: number,
    pageSize: number,
    bigEndian: boolean,
    salt1: number,
    salt2: number,
    io: Uint32Array,
  ): number;
}

/** Slots of walCapture's `io` array (Uint32Array of CAPTURE_IO.length). */
export const CAPTURE_IO = {
  /** In and out: the WAL checksum [s0, s1] before the first frame / after the last frame taken. */
  walS0: 0,
  walS1: 1,
  /** In and out: the log's CRC-64 as [high, low] before / after the frames taken. */
  crcHi: 2,
  crcLo: 3,
  /** In: frame_no of the first frame, low and high 32 bits. */
  frameNoLo: 4,
  frameNoHi: 5,
  /** Out: 1 when the room ran out before the scan ended (call again with more room). */
  more: 6,
  /** Out: frames of the last transaction taken. */
  lastTxnFrames: 7,
  length: 8,
} as const;

export const CHECKSUMS_LIBRARY = nativeLibrary('checksums', import.meta.url);

/** The library, or null when it is not there (the JavaScript versions run then). */
export const nativeChecksums: ChecksumsAddon | null = loadOptionalAddon<ChecksumsAddon>(CHECKSUMS_LIBRARY, (a) => typeof a.crc64Chain === 'function');
