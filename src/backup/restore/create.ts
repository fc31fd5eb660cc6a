/**
 * `bottomless create`: a local SQLite file becomes a new generation with a snapshot and nothing
 * else (no `.dep`: it starts a chain of its own). The source is never read as raw files: it is
 * opened read-only through SQLite and copied with `VACUUM INTO`, so a live WAL database gives a
 * consistent copy. The copy is uploaded compressed with our digest and page count, then
 * `.changecounter`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream';
import Database from 'better-sqlite3';
import { ConfigError } from '../../errors.js';
import { compressStream } from '../format/codec.js';
import { createHasher, SNAPSHOT_DIGEST, type SnapshotDigest } from '../format/digest.js';
import { newGenerationId } from '../format/generation-id.js';
import { changeCounterKey, type Compression, snapshotKey } from '../format/layout.js';
import { changeCounterOfDbHeader, encodeChangeCounter, encodeSnapshotMetadata } from '../format/objects.js';
import type { BackupStorage } from '../storage/storage.js';
import { fileHeader } from './snapshot.js';

export interface CreatedGeneration {
  generation: string;
  key: string;
  /** Uncompressed size of the snapshot. */
  bytes: number;
  pageCount: number;
  digest: SnapshotDigest;
  changeCounter: number;
}

function copyOf(source: string, dest: string): void {
  if (!fs.existsSync(source)) throw new ConfigError('CONFIG_BOTTOMLESS_SOURCE', `-s ${source}: no such file`, { hint: 'name an existing SQLite database file' });
  try {
    const db = new Database(source, { readonly: true, fileMustExist: true });
    try {
      db.prepare('VACUUM INTO ?').run(dest);
    } finally {
      db.close();
    }
  } catch (err) {
    throw new ConfigError('CONFIG_BOTTOMLESS_SOURCE', `-s ${source}: cannot copy it as a SQLite database: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
      hint: 'name a readable, unencrypted SQLite database file',
    });
  }
}

async function digestOf(file: string): Promise<SnapshotDigest> {
  const hash = createHasher(SNAPSHOT_DIGEST);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return { kind: SNAPSHOT_DIGEST, hex: hash.hex() };
}

export async function createGenerationFromFile(opts: { storage: BackupStorage; db: string; source: string; compression: Compression }): Promise<CreatedGeneration> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-create-'));
  try {
    const copy = path.join(dir, 'db');
    copyOf(opts.source, copy);
    const header = fileHeader(copy);
    const raw = header.readUInt16BE(16);
    const pageSize = raw === 1 ? 65536 : raw;
    const bytes = fs.statSync(copy).size;
    const info = { digest: await digestOf(copy), pageCount: bytes / pageSize };
    const changeCounter = changeCounterOfDbHeader(header);
    const generation = newGenerationId();
    const key = snapshotKey(opts.db, generation, opts.compression);
    await opts.storage.ensureBucket();
    await opts.storage.put(
      key,
      () => {
        const z = compressStream(opts.compression);
        pipeline(fs.createReadStream(copy), z, () => undefined);
        return z;
      },
      { metadata: encodeSnapshotMetadata(info), ...(opts.compression === 'raw' ? { contentLength: bytes } : {}) },
    );
    await opts.storage.put(changeCounterKey(opts.db, generation), encodeChangeCounter(changeCounter));
    return { generation, key, bytes, pageCount: info.pageCount, digest: info.digest, changeCounter };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
