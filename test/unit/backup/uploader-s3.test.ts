/**
 * The uploader against S3 (s3rver, or the store S3_TEST_ENDPOINT names) behind a proxy that fails
 * and drops requests: the SDK does not retry (maxAttempts 1), the uploader does, and the store still
 * restores to exactly what was committed. The snapshot goes up as a multipart upload.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Storage } from '../../../src/backup/storage/s3-storage.js';
import { framesOf, inspectPrimary } from '../../helpers/engine-log.js';
import { type FaultyProxy, startFaultyProxy } from '../../helpers/faulty-proxy.js';
import { type S3TestEndpoint, startS3rver } from '../../helpers/s3rver.js';
import { DB, depOf, generationsOf, Harness, keysOf, restoredDump, snapshotOf, writeRows } from './uploader-fixtures.js';

let s3: S3TestEndpoint;
let proxy: FaultyProxy;

beforeAll(async () => {
  s3 = await startS3rver();
  proxy = await startFaultyProxy(s3.endpoint);
});

afterAll(async () => {
  await proxy?.close();
  await s3?.close();
});

describe('uploader: S3', () => {
  it('uploads through 500s and dropped connections; the store restores to the committed state', async () => {
    const storage = new S3Storage({
      bucket: `uploader-${randomUUID().slice(0, 8)}`,
      endpoint: proxy.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      maxAttempts: 1,
      multipartThresholdBytes: 5 * 1024 * 1024,
      requestTimeoutMs: 5000,
    });
    const h = new Harness(storage);
    try {
      const ns = await h.open(join(h.root, 'ns'));
      const backup = await h.attach(ns, { batchMaxFrames: 6 });
      const conn = ns.connect();
      proxy.failNext(4);
      await writeRows(conn, 6, 2, 2000);
      expect(await framesOf(ns).checkpoint()).toBe(true);
      proxy.dropNext(3);
      await writeRows(conn, 4, 2, 2000);
      await backup.flush();
      expect(backup.status()).toMatchObject({ uploadLagFrames: 0, stagedBytes: 0 });
      expect(backup.status().errors).toBeGreaterThanOrEqual(4);
      const gens = await generationsOf(h.storage, DB);
      expect(gens).toHaveLength(2);
      expect(await depOf(h.storage, DB, gens[0]!)).toBe(gens[1]);
      expect(await snapshotOf(h.storage, DB, gens[1]!)).not.toBeNull();
      expect((await keysOf(h.storage, `${DB}-`)).length).toBeGreaterThan(8);
      expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
      await backup.close({ upload: true, timeoutMs: 5000 });
    } finally {
      await h.dispose();
      const keys = await keysOf(storage, '').catch(() => []);
      await storage.delete(keys).catch(() => undefined);
      await storage.close();
    }
  });
});
