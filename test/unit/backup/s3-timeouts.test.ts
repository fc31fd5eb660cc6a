/**
 * The S3 client gives up on a store that stops answering (a black-holed connection) instead of
 * waiting forever: the request fails with a timeout, and the same client works once the store answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Storage } from '../../../src/backup/storage/s3-storage.js';
import { startFaultyProxy, type FaultyProxy } from '../../helpers/faulty-proxy.js';
import { type S3TestEndpoint, startS3rver } from '../../helpers/s3rver.js';

let s3: S3TestEndpoint;
let proxy: FaultyProxy;
let storage: S3Storage;

beforeAll(async () => {
  s3 = await startS3rver();
  proxy = await startFaultyProxy(s3.endpoint);
  storage = new S3Storage({
    bucket: 'timeouts',
    endpoint: proxy.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 1,
    requestTimeoutMs: 300,
  });
  await storage.ensureBucket();
});

afterAll(async () => {
  await storage?.close();
  await proxy?.close();
  await s3?.close();
});

describe('S3 client timeouts', () => {
  it('a put the store never answers fails instead of hanging; the next one succeeds once it answers', async () => {
    proxy.setDelay(60_000);
    await expect(storage.put('held', Buffer.from('x'))).rejects.toThrow(/time|socket|abort/i);
    proxy.reset();
    await storage.put('answered', Buffer.from('y'));
    expect((await storage.get('answered')).body.toString()).toBe('y');
  });

  it('so does a read (signed, without the SDK) and a listing', async () => {
    proxy.setDelay(60_000);
    await expect(storage.get('answered')).rejects.toMatchObject({ code: 'BACKUP_STORAGE_FAILED', message: expect.stringMatching(/TimeoutError/) as unknown });
    const listing = (async () => {
      for await (const _ of storage.list('')) break;
    })();
    await expect(listing).rejects.toMatchObject({ code: 'BACKUP_STORAGE_FAILED', message: expect.stringMatching(/TimeoutError/) as unknown });
    proxy.reset();
    expect((await storage.get('answered')).body.toString()).toBe('y');
  });
});
