/**
 * The C versions of the two checksums on the commit and restore paths (native/checksums.c, built
 * by `npm install` from source): the replication log's CRC-64 (crc64.ts) and SQLite's WAL checksum
 * (sqlite-wal-format.ts). Both callers keep their JavaScript version as the fallback when the
 * library was not built or does not load; the tests check that it loads and that both agree.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ChecksumsAddon {
  /** `state`: [high, low] of the previous CRC-64, replaced by the chained one over `data`. */
  crc64Chain(state: Uint32Array, data: Uint8Array): void;
  /** `state`: the running [s0, s1], advanced over `data` (a multiple of 8 bytes). */
  walChecksum(state: Uint32Array, data: Uint8Array, bigEndian: boolean): void;
}

/** Where node-gyp puts the library (binding.gyp), from src/engine/wal or dist/engine/wal alike. */
export const CHECKSUMS_LIBRARY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/checksums.node');

function load(): ChecksumsAddon | null {
  try {
    const module = { exports: {} as ChecksumsAddon };
    process.dlopen(module, CHECKSUMS_LIBRARY);
    const addon = module.exports;
    return typeof addon.crc64Chain === 'function' && typeof addon.walChecksum === 'function' ? addon : null;
  } catch {
    return null;
  }
}

/** The library, or null when it is not there (the JavaScript versions run then). */
export const nativeChecksums: ChecksumsAddon | null = load();
