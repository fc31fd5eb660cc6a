import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import { openStorage, parseEndpoint } from '../../../src/backup/storage/open-storage.js';
import { S3Storage } from '../../../src/backup/storage/s3-storage.js';
import { type BackupStorage, type ListEntry, type ListOptions, ObjectNotFoundError, StorageError } from '../../../src/backup/storage/storage.js';
import { ConfigError } from '../../../src/errors.js';
import { startFaultyProxy } from '../../helpers/faulty-proxy.js';
import { type S3TestEndpoint, startS3rver } from '../../helpers/s3rver.js';

/**
 * One contract, two backends: every case runs against a local directory and against S3 (s3rver, or
 * the store S3_TEST_ENDPOINT names), there with our signed reads and with the SDK's. S3 lists with pages of 2 keys, so paging is exercised everywhere.
 */

const MIB = 1024 * 1024;
const runId = randomUUID().slice(0, 8);
let s3: S3TestEndpoint | undefined;
let localRoot: string | undefined;
const opened: BackupStorage[] = [];

beforeAll(async () => {
  s3 = await startS3rver();
  localRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-contract-'));
});

afterAll(async () => {
  for (const storage of opened.splice(0)) {
    // Leave nothing behind on a shared store (S3_TEST_ENDPOINT); s3rver's directory goes anyway.
    const keys: string[] = [];
    try {
      for await (const e of storage.list('')) if (e.kind === 'object') keys.push(e.key);
      await storage.delete(keys);
    } catch {
      // a bucket that was never created
    }
    await storage.close();
  }
  await s3?.close();
  if (localRoot !== undefined) fs.rmSync(localRoot, { recursive: true, force: true });
});

function s3Storage(bucket: string, extra: Partial<ConstructorParameters<typeof S3Storage>[0]> = {}): S3Storage {
  if (s3 === undefined) throw new Error('s3rver not started');
  const storage = new S3Storage({
    bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 3,
    listPageSize: 2,
    ...extra,
  });
  opened.push(storage);
  return storage;
}

function localStorage(bucket: string): LocalStorage {
  if (localRoot === undefined) throw new Error('temp dir not created');
  const storage = new LocalStorage({ dir: localRoot, bucket });
  opened.push(storage);
  return storage;
}

const backends: { name: string; open: (bucket: string) => BackupStorage }[] = [
  { name: 'local', open: localStorage },
  { name: 's3', open: (bucket) => s3Storage(bucket) },
  // Reads through the AWS SDK, as for AWS itself or the SDK's credential chain.
  { name: 's3 (SDK reads)', open: (bucket) => s3Storage(bucket, { signedReads: false }) },
];

async function collect(storage: BackupStorage, prefix: string, options?: ListOptions): Promise<string[]> {
  const out: string[] = [];
  for await (const e of storage.list(prefix, options)) out.push(describeEntry(e));
  return out;
}

function describeEntry(e: ListEntry): string {
  return e.kind === 'object' ? e.key : `prefix:${e.prefix}`;
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

describe.each(backends)('storage contract: $name', ({ name, open }) => {
  let storage: BackupStorage;
  /** A fresh `ns-<id>:default` per case, so cases never see each other's keys. */
  const db = (): string => `ns-${randomUUID().slice(0, 8)}:default`;

  beforeAll(async () => {
    storage = open(`contract-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${runId}`.replace(/-+/g, '-'));
    await storage.ensureBucket();
    await storage.ensureBucket(); // twice is fine
  });

  it('puts, gets and heads an object with metadata', async () => {
    const key = `${db()}-${randomUUID()}/db.gz`;
    const metadata = { 'libsqlctl-sha256': 'ab'.repeat(32), 'libsqlctl-note': 'two words, ASCII only' };
    const before = Date.now();
    await storage.put(key, Buffer.from('hello world'), { metadata });
    const got = await storage.get(key);
    expect(got.body.toString()).toBe('hello world');
    expect({ key: got.key, size: got.size, metadata: got.metadata }).toEqual({ key, size: 11, metadata });
    expect(Math.abs(got.lastModified.getTime() - before)).toBeLessThan(60_000);
    const head = await storage.head(key);
    expect(head).toMatchObject({ key, size: 11, metadata });
    // Overwriting replaces body and metadata together.
    await storage.put(key, Buffer.from('bye'), { metadata: { other: '1' } });
    expect(await storage.head(key)).toMatchObject({ size: 3, metadata: { other: '1' } });
    expect(Object.keys((await storage.get(key)).metadata)).toEqual(['other']);
    // Empty objects are objects too.
    await storage.put(`${key}.empty`, Buffer.alloc(0));
    expect(await storage.get(`${key}.empty`)).toMatchObject({ size: 0, metadata: {} });
  });

  it('refuses metadata S3 could not carry (upper case, non-ASCII, too large)', async () => {
    const key = `${db()}/m`;
    for (const metadata of [{ Upper: 'x' }, { name: 'é' }, { name: ' padded ' }, { name: 'x'.repeat(2100) }] as Record<string, string>[]) {
      await expect(storage.put(key, Buffer.from('x'), { metadata })).rejects.toBeInstanceOf(StorageError);
    }
    expect(await storage.head(key)).toBeNull();
  });

  it('reads ranges', async () => {
    const key = `${db()}/range`;
    const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    await storage.put(key, bytes);
    const mid = await storage.get(key, { range: { start: 10, end: 19 } });
    expect(mid.body).toEqual(bytes.subarray(10, 20));
    expect(mid.size).toBe(100);
    expect((await storage.get(key, { range: { start: 90 } })).body).toEqual(bytes.subarray(90));
    expect((await storage.get(key, { range: { start: 95, end: 1000 } })).body).toEqual(bytes.subarray(95));
    await expect(storage.get(key, { range: { start: 100 } })).rejects.toBeInstanceOf(StorageError);
  });

  it('reports a missing key as ObjectNotFoundError (get, getStream) and null (head)', async () => {
    const key = `${db()}-${randomUUID()}/.meta`;
    await expectCode(storage.get(key), 'BACKUP_OBJECT_NOT_FOUND');
    await expect(storage.getStream(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.getReader!(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await storage.head(key)).toBeNull();
  });

  it('streams an object', async () => {
    const key = `${db()}/stream`;
    const bytes = randomBytes(100_000);
    await storage.put(key, bytes, { metadata: { a: 'b' } });
    const { head, body } = await storage.getStream(key);
    expect(head).toMatchObject({ key, size: bytes.length, metadata: { a: 'b' } });
    expect(sha256(await readAll(body))).toBe(sha256(bytes));
  });

  it("reads an object into the caller's buffers", async () => {
    const key = `${db()}/reader`;
    const bytes = randomBytes(3 * MIB + 12_345);
    await storage.put(key, bytes, { metadata: { a: 'b' } });
    const { head, body } = await storage.getReader!(key);
    expect(head).toMatchObject({ key, size: bytes.length, metadata: { a: 'b' } });
    const buf = Buffer.alloc(100_003);
    const got: Buffer[] = [];
    for (;;) {
      const n = await body.read(buf);
      got.push(Buffer.from(buf.subarray(0, n)));
      if (n < buf.length) break;
      expect(n).toBe(buf.length);
    }
    expect(sha256(Buffer.concat(got))).toBe(sha256(bytes));
    expect(await body.read(buf)).toBe(0);
  });

  it("reads a range into the caller's buffers: those bytes only, the whole object's size and version", async () => {
    const key = `${db()}/ranged`;
    const bytes = randomBytes(2 * MIB + 999);
    await storage.put(key, bytes);
    const whole = await storage.getReader!(key);
    whole.body.destroy();
    for (const [start, end] of [
      [0, MIB - 1],
      [MIB, 2 * MIB - 1],
      [2 * MIB, 2 * MIB + 998],
      [2 * MIB + 500, 3 * MIB], // past the end: cut to the last byte
      [17, 17],
    ] as const) {
      const { head, body } = await storage.getReader!(key, { range: { start, end } });
      expect(head).toMatchObject({ key, size: bytes.length, lastModified: whole.head.lastModified });
      expect(head.etag).toBe(whole.head.etag);
      if (name !== 'local') expect(head.etag).toMatch(/^"?[0-9a-f]{32}/);
      const buf = Buffer.alloc(MIB + 10);
      const n = await body.read(buf);
      expect(buf.subarray(0, n).equals(bytes.subarray(start, Math.min(end, bytes.length - 1) + 1)), `bytes ${start}-${end}`).toBe(true);
      expect(await body.read(buf)).toBe(0);
    }
    await expect(storage.getReader!(key, { range: { start: bytes.length + 5, end: bytes.length + 10 } })).rejects.toBeInstanceOf(StorageError);
    await expect(storage.getReader!(`${key}.missing`, { range: { start: 0, end: 10 } })).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('lists a generation in UTF-8 binary order, with startAfter', async () => {
    const gen = `${db()}-${randomUUID()}/`;
    const names = ['.changecounter', '.dep', '.meta', '000000000001-000000000010-1700000000.gz', '000000000011-000000000020-1700000001.gz', 'db.gz'];
    for (const n of [...names].reverse()) await storage.put(gen + n, Buffer.from(n));
    expect(await collect(storage, gen)).toEqual(names.map((n) => gen + n));
    expect(await collect(storage, gen, { startAfter: `${gen}.meta` })).toEqual(names.slice(3).map((n) => gen + n));
    const entries: ListEntry[] = [];
    for await (const e of storage.list(gen)) entries.push(e);
    expect(entries[0]).toMatchObject({ kind: 'object', key: `${gen}.changecounter`, size: '.changecounter'.length });
    expect(entries[0]?.kind === 'object' && entries[0].lastModified instanceof Date).toBe(true);
  });

  it('pages through more keys than a page holds', async () => {
    const base = `${db()}-${randomUUID()}/`;
    const keys = Array.from({ length: 7 }, (_, i) => `${base}${String(i + 1).padStart(12, '0')}-${String(i + 1).padStart(12, '0')}-1700000000.gz`);
    await Promise.all(keys.map((k) => storage.put(k, Buffer.from(k))));
    expect(await collect(storage, base)).toEqual(keys);
    expect(await collect(storage, base, { startAfter: keys[2] })).toEqual(keys.slice(3));
    expect(await collect(storage, base, { startAfter: keys[6] })).toEqual([]);
  });

  it('matches a prefix that ends inside a name', async () => {
    const base = `${db()}-${randomUUID()}/`;
    for (const k of ['a', 'ab1', 'ab2', 'ac', 'p/x1/a', 'p/x2/b', 'p/y/c']) await storage.put(base + k, Buffer.from(k));
    expect(await collect(storage, `${base}ab`)).toEqual([`${base}ab1`, `${base}ab2`]);
    expect(await collect(storage, `${base}p/x`)).toEqual([`${base}p/x1/a`, `${base}p/x2/b`]);
    expect(await collect(storage, `${base}p/x`, { delimiter: '/' })).toEqual([`prefix:${base}p/x1/`, `prefix:${base}p/x2/`]);
    expect(await collect(storage, `${base}zz`)).toEqual([]);
  });

  it('folds generations into common prefixes with a delimiter', async () => {
    const name = db();
    // Generation ids list newest first; any uuids do here, sorted by their bytes.
    const gens = [randomUUID(), randomUUID(), randomUUID()].sort();
    for (const g of gens) {
      await storage.put(`${name}-${g}/.meta`, Buffer.alloc(12));
      await storage.put(`${name}-${g}/000000000001-000000000001-1700000000.gz`, Buffer.from('x'));
    }
    await storage.put(`${name}.tombstone`, Buffer.alloc(8));
    const prefixes = gens.map((g) => `prefix:${name}-${g}/`);
    expect(await collect(storage, `${name}-`, { delimiter: '/' })).toEqual(prefixes);
    // `-` (0x2d) sorts before `.` (0x2e): the generations come before the tombstone.
    expect(await collect(storage, name, { delimiter: '/' })).toEqual([...prefixes, `${name}.tombstone`]);
    expect(await collect(storage, `${name}-`, { delimiter: '/', startAfter: `${name}-${gens[0]}/` })).toEqual(prefixes.slice(1));
    expect(await collect(storage, `${name}-`, { delimiter: '/', startAfter: `${name}-${gens[1]}/.meta` })).toEqual(prefixes.slice(2));
  });

  it('merges objects and prefixes in order across pages', async () => {
    const base = `${db()}-`;
    for (const k of ['a.obj', 'b/x', 'c.obj', 'd/y', 'e.obj', 'f.obj']) await storage.put(base + k, Buffer.from(k));
    expect(await collect(storage, base, { delimiter: '/' })).toEqual([`${base}a.obj`, `prefix:${base}b/`, `${base}c.obj`, `prefix:${base}d/`, `${base}e.obj`, `${base}f.obj`]);
    expect(await collect(storage, base)).toEqual(['a.obj', 'b/x', 'c.obj', 'd/y', 'e.obj', 'f.obj'].map((k) => base + k));
  });

  it('deletes existing and missing keys; an emptied folder no longer lists', async () => {
    const name = db();
    const gen = `${name}-${randomUUID()}/`;
    const keep = `${name}-${randomUUID()}/.meta`;
    await storage.put(`${gen}.meta`, Buffer.from('1'));
    await storage.put(`${gen}.dep`, Buffer.from('2'));
    await storage.put(keep, Buffer.from('3'));
    await storage.delete([`${gen}.meta`, `${gen}.dep`, `${gen}missing`, `${name}-nothing/at/all`]);
    await storage.delete([]);
    expect(await storage.head(`${gen}.meta`)).toBeNull();
    expect(await collect(storage, `${name}-`)).toEqual([keep]);
    expect(await collect(storage, `${name}-`, { delimiter: '/' })).toEqual([`prefix:${keep.slice(0, keep.indexOf('/') + 1)}`]);
  });

  it('keeps keys with ":" and "-" exact', async () => {
    const key = `ns-5d64e223-21a3-4835-9815-9613216d9859:my-ns-${runId}-${randomUUID()}/000000000001-000000000042-1671783892.zstd`;
    await storage.put(key, Buffer.from('frames'));
    expect((await storage.get(key)).body.toString()).toBe('frames');
    expect(await collect(storage, key.slice(0, 50))).toEqual([key]);
  });

  it('uploads 12 MiB from a stream factory with progress (multipart on S3)', async () => {
    const key = `${db()}-${randomUUID()}/db.gz`;
    const bytes = randomBytes(12 * MIB);
    const progress: number[] = [];
    let calls = 0;
    const body = (): Readable => {
      calls++;
      return Readable.from((function* chunks() {
        for (let off = 0; off < bytes.length; off += MIB) yield bytes.subarray(off, off + MIB);
      })());
    };
    await storage.put(key, body, { contentLength: bytes.length, metadata: { 'libsqlctl-sha256': sha256(bytes) }, onProgress: (n) => progress.push(n) });
    expect(calls).toBe(1);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const got = await storage.get(key);
    expect(got.size).toBe(bytes.length);
    expect(got.metadata).toEqual({ 'libsqlctl-sha256': sha256(bytes) });
    expect(sha256(got.body)).toBe(sha256(bytes));
    expect(sha256(await readAll((await storage.getStream(key)).body))).toBe(sha256(bytes));
  });

  it('fails loudly on a bucket that does not exist', async () => {
    const missing = open(`missing-${name}-${runId}`);
    await expect(collect(missing, '')).rejects.toBeInstanceOf(StorageError);
    await expect(missing.get('x')).rejects.toBeInstanceOf(StorageError);
    await expect(missing.get('x')).rejects.not.toBeInstanceOf(ObjectNotFoundError);
    await expect(missing.put('x', Buffer.from('x'))).rejects.toBeInstanceOf(StorageError);
    await expect(missing.delete(['x'])).rejects.toBeInstanceOf(StorageError);
    expect(await missing.head('x')).toBeNull(); // S3's HEAD answers carry no error code
  });
});

describe('local backend layout', () => {
  let storage: LocalStorage;
  beforeAll(async () => {
    storage = localStorage(`layout-${runId}`);
    await storage.ensureBucket();
  });

  it('keeps keys that look like paths inside the bucket directory', async () => {
    const outside = path.dirname(storage.bucketDir);
    const before = fs.readdirSync(outside).sort();
    const keys = ['../evil', '/abs', 'a/../../evil', './x', '..', 'a//b', '%2F..', 'back\\slash', 'nul\u0000ctl\u0001'];
    for (const key of keys) await storage.put(key, Buffer.from(key));
    expect(fs.readdirSync(outside).sort()).toEqual(before);
    for (const key of keys) expect((await storage.get(key)).body.toString()).toBe(key);
    const listed = await collect(storage, '');
    expect([...listed].sort()).toEqual([...keys].sort());
    expect(fs.existsSync(path.join(storage.bucketDir, '%2E%2E%2F', 'evil'))).toBe(true);
    await expect(storage.put('folder/', Buffer.from('x'))).rejects.toBeInstanceOf(StorageError);
    await storage.delete(keys);
    expect(await collect(storage, '')).toEqual([]);
  });

  it('never shows a put before it is complete, nor its temp file', async () => {
    const key = `crash-${runId}/db.gz`;
    await storage.put(`crash-${runId}/.meta`, Buffer.from('m'));
    const feed = new PassThrough();
    let firstChunk: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (firstChunk = resolve));
    const put = storage.put(key, () => feed, { onProgress: () => firstChunk() });
    feed.write(Buffer.alloc(1000));
    await written;
    // Half written: a temp file exists, the key does not.
    const dir = path.join(storage.bucketDir, `crash-${runId}%2F`);
    expect(fs.readdirSync(dir).some((n) => n.startsWith('%tmp-'))).toBe(true);
    expect(await collect(storage, `crash-${runId}/`)).toEqual([`crash-${runId}/.meta`]);
    expect(await storage.head(key)).toBeNull();
    feed.end(Buffer.alloc(1000));
    await put;
    expect(await storage.head(key)).toMatchObject({ size: 2000 });
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('%tmp-'))).toEqual([]);
  });

  it('leaves nothing behind when the body fails', async () => {
    const key = `fail-${runId}/db.gz`;
    await storage.put(`fail-${runId}/.meta`, Buffer.from('m'));
    const failing = (): Readable =>
      new Readable({
        read() {
          this.destroy(new Error('disk gone'));
        },
      });
    await expect(storage.put(key, failing)).rejects.toBeInstanceOf(StorageError);
    await expect(storage.put(key, Buffer.from('abc'), { contentLength: 4 })).rejects.toBeInstanceOf(StorageError);
    expect(fs.readdirSync(path.join(storage.bucketDir, `fail-${runId}%2F`))).toEqual(['.meta']);
    // A temp file left by a crash is not an object.
    fs.writeFileSync(path.join(storage.bucketDir, `fail-${runId}%2F`, '%tmp-0123456789abcdef'), 'half');
    expect(await collect(storage, `fail-${runId}/`)).toEqual([`fail-${runId}/.meta`]);
  });
});

describe('S3 faults (through a proxy)', () => {
  it('retries 500 answers, then reports them with bucket, key and status', async () => {
    if (s3 === undefined) throw new Error('s3rver not started');
    const proxy = await startFaultyProxy(s3.endpoint);
    try {
      const bucket = `faults-${runId}`;
      const storage = s3Storage(bucket, { endpoint: proxy.endpoint, maxAttempts: 3 });
      await storage.ensureBucket();
      proxy.failNext(2);
      await storage.put('k', Buffer.from('v'));
      expect((await storage.get('k')).body.toString()).toBe('v');
      proxy.failNext(3);
      const err = await storage.get('k').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).message).toMatch(new RegExp(`s3://${bucket}/k.*InternalError.*HTTP 500`));
      proxy.dropNext(1);
      await expect(s3Storage(bucket, { endpoint: proxy.endpoint, maxAttempts: 1 }).get('k')).rejects.toBeInstanceOf(StorageError);
      proxy.reset();
      proxy.setDelay(500);
      const slow = s3Storage(bucket, { endpoint: proxy.endpoint, maxAttempts: 1, requestTimeoutMs: 100 });
      await expect(slow.get('k')).rejects.toMatchObject({ code: 'BACKUP_STORAGE_FAILED', hint: expect.stringContaining('ENDPOINT') as unknown });
    } finally {
      await proxy.close();
    }
  });

  it('sends large buffers as a multipart upload, small ones as one PutObject', async () => {
    if (s3 === undefined) throw new Error('s3rver not started');
    const proxy = await startFaultyProxy(s3.endpoint);
    try {
      const storage = s3Storage(`faults-${runId}`, { endpoint: proxy.endpoint, multipartThresholdBytes: 5 * MIB });
      await storage.ensureBucket();
      let before = proxy.requests;
      await storage.put('small', Buffer.alloc(5 * MIB - 1));
      expect(proxy.requests - before).toBe(1);
      before = proxy.requests;
      const bytes = randomBytes(6 * MIB);
      const progress: number[] = [];
      await storage.put('large', bytes, { onProgress: (n) => progress.push(n) });
      expect(proxy.requests - before).toBe(4); // create, two parts, complete
      expect(progress.at(-1)).toBe(bytes.length);
      expect(sha256((await storage.get('large')).body)).toBe(sha256(bytes));
    } finally {
      await proxy.close();
    }
  });

  it('close() cuts off a read in flight, which is not retried', async () => {
    let requests = 0;
    let arrived!: () => void;
    const first = new Promise<void>((resolve) => (arrived = resolve));
    const silent = http.createServer((req) => {
      requests++;
      req.resume();
      arrived(); // and never answers
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const storage = s3Storage('held-reads', { endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, maxAttempts: 5 });
      const pending = storage.get('k').catch((e: unknown) => e);
      await first;
      await storage.close();
      const err = await pending;
      expect(err).toBeInstanceOf(StorageError);
      expect((err as StorageError).message).toMatch(/closed/);
      expect(requests).toBe(1);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('names the credentials and the endpoint in hints', async () => {
    if (s3 === undefined) throw new Error('s3rver not started');
    // s3rver checks the key id, not SigV4 signatures.
    const wrong = s3Storage(`faults-${runId}`, { credentials: { accessKeyId: 'NO-SUCH-KEY', secretAccessKey: 'wrong' }, maxAttempts: 1 });
    await expect(wrong.head('k')).rejects.toMatchObject({ hint: expect.stringContaining('credentials') as unknown });
    await expect(wrong.get('k')).rejects.toMatchObject({ message: expect.stringMatching(/InvalidAccessKeyId, HTTP 403/) as unknown });
    const proxy = await startFaultyProxy(s3.endpoint);
    await proxy.close();
    const refused = s3Storage(`faults-${runId}`, { endpoint: proxy.endpoint, maxAttempts: 1 });
    await expect(refused.get('k')).rejects.toMatchObject({ hint: expect.stringContaining('ENDPOINT') as unknown });
  });
});

describe('parseEndpoint and openStorage', () => {
  it('reads file, http(s) and unset endpoints', () => {
    expect(parseEndpoint(undefined)).toEqual({ kind: 's3', endpoint: null });
    expect(parseEndpoint('')).toEqual({ kind: 's3', endpoint: null });
    expect(parseEndpoint('http://127.0.0.1:9000')).toEqual({ kind: 's3', endpoint: 'http://127.0.0.1:9000' });
    expect(parseEndpoint('https://s3.example.com')).toEqual({ kind: 's3', endpoint: 'https://s3.example.com' });
    expect(parseEndpoint('file:///srv/backups/with%20space')).toEqual({ kind: 'local', dir: '/srv/backups/with space' });
    expect(parseEndpoint('file:/srv/backups')).toEqual({ kind: 'local', dir: '/srv/backups' });
    expect(parseEndpoint('FILE:///srv')).toEqual({ kind: 'local', dir: '/srv' });
  });

  it('refuses anything else with CONFIG_BOTTOMLESS_ENDPOINT and a hint', () => {
    for (const bad of ['file://host/srv', 'file:relative', 'file:./x', 'file:///srv?x=1', 's3://bucket', 'localhost:9000', 'ftp://x', 'http://']) {
      let caught: unknown;
      try {
        parseEndpoint(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(ConfigError);
      expect(caught, bad).toMatchObject({ code: 'CONFIG_BOTTOMLESS_ENDPOINT', hint: expect.any(String) as unknown });
    }
  });

  it('opens the backend a config names', async () => {
    const local = await openStorage({ kind: 'local', dir: '/srv/backups', bucket: 'bottomless' });
    expect(local).toBeInstanceOf(LocalStorage);
    expect(local.description).toBe('file:///srv/backups/bottomless');
    const remote = await openStorage({ kind: 's3', bucket: 'b', endpoint: 'http://127.0.0.1:1', region: null, credentials: null, maxAttempts: 1 });
    expect(remote).toBeInstanceOf(S3Storage);
    expect(remote.description).toBe('s3://b (http://127.0.0.1:1)');
    await remote.close();
    expect(() => new LocalStorage({ dir: 'relative', bucket: 'b' })).toThrow(ConfigError);
    expect(() => new LocalStorage({ dir: '/srv', bucket: '..' })).toThrow(ConfigError);
  });
});
