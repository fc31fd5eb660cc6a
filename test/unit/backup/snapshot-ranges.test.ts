import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import { downloadSnapshot } from '../../../src/backup/restore/snapshot.js';
import type { BodyReader } from '../../../src/backup/storage/body-reader.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { S3Storage } from '../../../src/backup/storage/s3-storage.js';
import { type BackupStorage, type ByteRange, StorageError } from '../../../src/backup/storage/storage.js';
import { crc64GoIso } from '../../../src/engine/wal/crc64.js';
import { type S3TestEndpoint, startS3rver } from '../../helpers/s3rver.js';

/**
 * A big snapshot is read in parallel ranges (snapshot-input.ts): here with 64 KiB parts of a
 * 1.2 MB object, against the local store and s3rver, and through a store that answers slowly, fails
 * a part, or replaces the object half-way.
 */

const PART = 64 * 1024;
const KEY = 'ns-x:default-0/db.gz';

let dir: string;
let db: Buffer;
let gz: Buffer;
let metadata: Record<string, string>;
let local: LocalStorage;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapshot-ranges-'));
  db = randomBytes(300 * 4096);
  Buffer.from('SQLite format 3\0', 'latin1').copy(db, 0);
  db.writeUInt16BE(4096, 16);
  db.writeUInt32BE(0, 28);
  gz = zlib.gzipSync(db, { level: 1 });
  metadata = { 'libsqlctl-crc64': crc64GoIso(db).toString(16).padStart(16, '0'), 'libsqlctl-page-count': '300' };
  local = new LocalStorage({ dir, bucket: 'b' });
  await local.ensureBucket();
  await local.put(KEY, gz, { metadata });
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Call {
  range: ByteRange | undefined;
  body: { destroyed: boolean };
}

/** `inner`'s getReader, recorded, with `hook` deciding what each call's body does. */
function recording(inner: BackupStorage, hook: (range: ByteRange | undefined, n: number, body: BodyReader) => BodyReader = (_r, _n, b) => b) {
  const calls: Call[] = [];
  let open = 0;
  let maxOpen = 0;
  const storage = {
    description: 'recording',
    getStream: inner.getStream.bind(inner),
    async getReader(key: string, options: { signal?: AbortSignal; range?: ByteRange } = {}) {
      const state = { destroyed: false };
      calls.push({ range: options.range, body: state }); // in the order asked for
      const got = await inner.getReader!(key, options);
      open++;
      maxOpen = Math.max(maxOpen, open);
      const body = hook(options.range, calls.length, got.body);
      return {
        head: got.head,
        body: {
          read: (into: Buffer) => body.read(into),
          destroy() {
            if (!state.destroyed) open--;
            state.destroyed = true;
            body.destroy();
          },
        },
      };
    },
  } as unknown as BackupStorage;
  return { storage, calls, maxOpen: () => maxOpen };
}

const out = (name: string): string => path.join(dir, name);
const partsOf = (size: number): number => Math.ceil(size / PART);

describe('a snapshot in parallel ranges', () => {
  it('is read in parts, at most 4 at a time, each body released, and decodes to the same file', async () => {
    const { storage, calls, maxOpen } = recording(local);
    const progress: number[] = [];
    const got = await downloadSnapshot(storage, { key: KEY, compression: 'gz', size: gz.length }, out('a.db'), { parallel: 32, partBytes: PART, onBytes: (n) => progress.push(n) });
    expect(got).toMatchObject({ bytes: db.length, pageCount: 300, digestVerified: true });
    expect(fs.readFileSync(out('a.db')).equals(db)).toBe(true);
    expect(calls.map((c) => c.range)).toEqual(Array.from({ length: partsOf(gz.length) }, (_, i) => ({ start: i * PART, end: i === 0 ? PART - 1 : Math.min((i + 1) * PART, gz.length) - 1 })));
    expect(maxOpen()).toBeLessThanOrEqual(4);
    expect(maxOpen()).toBeGreaterThan(1);
    expect(calls.every((c) => c.body.destroyed)).toBe(true);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(gz.length);
  });

  it('one GET without a range when the object is small, the size unknown, or parallel is 1', async () => {
    for (const [size, parallel] of [
      [PART, 4],
      [undefined, 4],
      [gz.length, 1],
    ] as const) {
      const { storage, calls } = recording(local);
      await downloadSnapshot(storage, { key: KEY, compression: 'gz', ...(size === undefined ? {} : { size }) }, out('b.db'), { parallel, partBytes: PART });
      expect(calls.map((c) => c.range)).toEqual([undefined]);
      expect(fs.readFileSync(out('b.db')).equals(db)).toBe(true);
    }
  });

  it('takes the parts in order when a later one arrives first', async () => {
    let releaseFirst: () => void = () => undefined;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    const { storage, calls } = recording(local, (range, n, body) => {
      if (range?.start !== 0) {
        if (n === 4) releaseFirst(); // three later parts asked for: now part 0 may answer
        return body;
      }
      return { read: async (into) => (await firstHeld, body.read(into)), destroy: () => body.destroy() };
    });
    await downloadSnapshot(storage, { key: KEY, compression: 'gz', size: gz.length }, out('c.db'), { parallel: 4, partBytes: PART });
    expect(calls.length).toBe(partsOf(gz.length));
    expect(fs.readFileSync(out('c.db')).equals(db)).toBe(true);
  });

  it('asks again for a part whose read failed, and fails after three tries', async () => {
    const failing = (times: number) => {
      let failures = 0;
      return recording(local, (range, _n, body) =>
        range?.start === 3 * PART && failures++ < times ? { read: () => Promise.reject(new StorageError('connection reset by the test')), destroy: () => body.destroy() } : body,
      );
    };
    const once = failing(1);
    await downloadSnapshot(once.storage, { key: KEY, compression: 'gz', size: gz.length }, out('d.db'), { parallel: 4, partBytes: PART });
    expect(fs.readFileSync(out('d.db')).equals(db)).toBe(true);
    expect(once.calls.filter((c) => c.range?.start === 3 * PART)).toHaveLength(2);
    expect(once.calls).toHaveLength(partsOf(gz.length) + 1);

    const always = failing(99);
    await expect(downloadSnapshot(always.storage, { key: KEY, compression: 'gz', size: gz.length }, out('d.db'), { parallel: 4, partBytes: PART })).rejects.toThrow(/connection reset by the test/);
    expect(always.calls.filter((c) => c.range?.start === 3 * PART)).toHaveLength(3);
    expect(always.calls.every((c) => c.body.destroyed)).toBe(true);
  });

  it('refuses an object replaced between two parts (not asked again), and damaged data stops every read', async () => {
    const key = 'ns-x:default-1/db.gz';
    await local.put(key, gz, { metadata });
    // Once the first part has answered, a newer version (one byte longer) replaces the object.
    const replacing = { done: null as Promise<void> | null };
    const replaced = recording(local, (range, _n, body) => {
      if (range?.start !== 0) return body;
      replacing.done = local.put(key, Buffer.concat([gz, Buffer.alloc(1)]), { metadata });
      return { read: async (into) => (await replacing.done, body.read(into)), destroy: () => body.destroy() };
    });
    const err = await downloadSnapshot(replaced.storage, { key, compression: 'gz', size: gz.length }, out('e.db'), { parallel: 4, partBytes: PART }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/changed while it was being downloaded/);
    expect(replaced.calls.every((c) => c.body.destroyed)).toBe(true);
    const starts = replaced.calls.map((c) => c.range?.start);
    expect(new Set(starts).size, 'no part asked for twice').toBe(starts.length);

    // Random pages deflate to stored blocks (at most 64 KiB + 5 bytes each): two zeroed parts hold a
    // block header, whose lengths then disagree, so the decoder fails there, long before the end.
    const damaged = Buffer.from(gz);
    damaged.fill(0, 5 * PART, 7 * PART);
    await local.put(key, damaged, { metadata });
    const bad = recording(local);
    const err2 = await downloadSnapshot(bad.storage, { key, compression: 'gz', size: damaged.length }, out('e.db'), { parallel: 4, partBytes: PART }).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(CorruptBackupError);
    expect(bad.calls.length).toBeLessThan(partsOf(damaged.length));
    expect(bad.calls.every((c) => c.body.destroyed)).toBe(true);
  });
});

describe('a snapshot in parallel ranges from S3 (s3rver)', () => {
  let s3: S3TestEndpoint;
  beforeAll(async () => {
    s3 = await startS3rver();
  });
  afterAll(async () => {
    await s3.close();
  });

  it('reads 206 answers straight into the part buffers (signed reads and the SDK)', async () => {
    for (const signedReads of [true, false]) {
      const storage = new S3Storage({
        bucket: `ranges-${signedReads ? 'signed' : 'sdk'}`,
        endpoint: s3.endpoint,
        region: s3.region,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        maxAttempts: 3,
        signedReads,
      });
      try {
        await storage.ensureBucket();
        await storage.put(KEY, gz, { metadata });
        const { storage: rec, calls } = recording(storage);
        const got = await downloadSnapshot(rec, { key: KEY, compression: 'gz', size: gz.length }, out('s3.db'), { parallel: 4, partBytes: PART });
        expect(got).toMatchObject({ bytes: db.length, digestVerified: true });
        expect(fs.readFileSync(out('s3.db')).equals(db)).toBe(true);
        expect(calls).toHaveLength(partsOf(gz.length));
      } finally {
        await storage.delete([KEY]);
        await storage.close();
      }
    }
  });
});
