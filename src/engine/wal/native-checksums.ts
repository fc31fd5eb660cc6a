/**
 * The C version of the replication log's CRC-64 (native/checksums.c, built by `npm install` from
 * source), which the log writer runs over every captured page. crc64.ts keeps its JavaScript
 * version as the fallback when the library was not built or does not load; the tests check that it
 * loads and that both agree. (SQLite's WAL checksum stays in JavaScript: V8 runs its word loop as
 * fast as C does, measured.)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ChecksumsAddon {
  /** `state`: [high, low] of the previous CRC-64, replaced by the chained one over `data`. */
  crc64Chain(state: Uint32Array, data: Uint8Array): void;
}

/** Where node-gyp puts the library (binding.gyp), from src/engine/wal or dist/engine/wal alike. */
export const CHECKSUMS_LIBRARY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/checksums.node');

function load(): ChecksumsAddon | null {
  try {
    const module = { exports: {} as ChecksumsAddon };
    process.dlopen(module, CHECKSUMS_LIBRARY);
    const addon = module.exports;
    return typeof addon.crc64Chain === 'function' ? addon : null;
  } catch {
    return null;
  }
}

/** The library, or null when it is not there (the JavaScript versions run then). */
export const nativeChecksums: ChecksumsAddon | null = load();
