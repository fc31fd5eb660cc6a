/**
 * The snapshot decoder of native/restore.c (built by `npm install` from source): node:zlib's own
 * zlib, run on the thread pool into output buffers the caller reuses. snapshot.ts uses it for gz
 * snapshots when the library loads, and node:zlib's stream otherwise; both decode the same bytes
 * with the same checks (the tests check that the library loads and that both agree). The members'
 * CRC-32 is the library's own (carry-less multiplication), a fraction of zlib's table loop.
 */
import { loadOptionalAddon, nativeLibrary } from '../../engine/native-addon.js';
import type { DigestKind } from '../format/digest.js';

/** 0: all input consumed, more needed; 1: the output buffer is full; 2: the stream ended. */
export type GunzipStatus = 0 | 1 | 2;

export interface RestoreAddon {
  /** digest: also compute that digest of what it decodes, on the thread pool ('sha256' only when canHash). */
  createGunzip(digest: 'none' | DigestKind): object;
  /** The digest of everything decoded (SHA-256: 32 bytes; CRC-64: 8, most significant first), once, after the last call answered. */
  digest(decoder: object): Buffer;
  /** Whether the library found Node's OpenSSL to compute SHA-256 with. */
  readonly canHash: boolean;
  /** The gzip CRC-32 of `data`, continuing from `value` (node:zlib's crc32): the one the decoder checks members with. */
  crc32(data: Uint8Array, value?: number): number;
  gunzip(decoder: object, input: Uint8Array | null, out: Uint8Array, final: boolean, callback: (error: string | null, status: GunzipStatus, produced: number) => void): void;
}

export const RESTORE_LIBRARY = nativeLibrary('restore', import.meta.url);

/** The library, or null when it is not there (node:zlib's stream decodes then). */
export const nativeRestore: RestoreAddon | null = loadOptionalAddon<RestoreAddon>(RESTORE_LIBRARY, (a) => typeof a.createGunzip === 'function' && typeof a.gunzip === 'function' && typeof a.digest === 'function');

/** A gzip decoder writing into the caller's buffers; one call at a time. */
export class NativeGunzip {
  private readonly handle: object;

  /** digest: the decoder also computes it over what it decodes, off the main thread (SHA-256 needs `addon.canHash`). */
  constructor(
    private readonly addon: RestoreAddon,
    readonly digest: DigestKind | null,
  ) {
    this.handle = addon.createGunzip(digest ?? 'none');
  }

  /** The digest (hex) of everything decoded; once, when the stream ended, for a decoder made with one. */
  hex(): string {
    return this.addon.digest(this.handle).toString('hex');
  }

  /**
   * Decodes into `out` from `input` (null: the rest of the previous input, which must stay
   * untouched until a call answers 0). Rejects with zlib's message on damaged data.
   */
  run(input: Uint8Array | null, out: Uint8Array, final: boolean): Promise<{ status: GunzipStatus; produced: number }> {
    return new Promise((resolve, reject) => {
      this.addon.gunzip(this.handle, input, out, final, (error, status, produced) => {
        if (error !== null) reject(new GunzipError(error));
        else resolve({ status, produced });
      });
    });
  }
}

/** Damaged or truncated gzip data, with zlib's message (as node:zlib's errors carry it). */
export class GunzipError extends Error {
  readonly code = 'Z_DATA_ERROR';
}
