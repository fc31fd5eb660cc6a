/**
 * The AWS SDK side of the S3 backend, and the only module that imports `@aws-sdk/*` (loaded on first
 * use: it takes a few hundred milliseconds): bucket creation, puts (multipart for large and streamed
 * bodies), deletes, and the reads of stores the signed reads (s3-http.ts) do not serve — AWS itself,
 * and credentials from the SDK's default chain.
 *
 * Client settings follow bottomless (spec §1.1, §7): path-style addressing, the SDK's standard retry
 * mode, checksums only where an operation requires them (R2, B2 and older MinIO reject the newer
 * default ones). Reads throw the SDK's own errors (s3-storage.ts maps them, as it maps the signed
 * reads'); writes throw StorageErrors.
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { pipeline, Readable, Transform } from 'node:stream';
import { CREDENTIAL_CODES, errorShape, hintFor, s3Failure } from './s3-errors.js';
import type { ListPage, ListPageParams } from './s3-http.js';
import type { ByteRange, ObjectHead, PutBody, PutOptions, StoredObject } from './storage.js';
import { StorageError } from './storage.js';

const MIB = 1024 * 1024;
/** S3's smallest part (but the last). */
const MIN_PART_BYTES = 5 * MIB;
const DELETE_CHUNK = 1000;

export interface SdkS3Options {
  bucket: string;
  endpoint: string | null;
  region: string | null;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | null;
  maxAttempts: number;
  multipartThresholdBytes: number;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

export class SdkS3 {
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(private readonly options: SdkS3Options) {
    this.bucket = options.bucket;
    const config: S3ClientConfig = {
      forcePathStyle: true,
      maxAttempts: options.maxAttempts,
      retryMode: 'standard',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (options.endpoint !== null) config.endpoint = options.endpoint;
    const region = options.region ?? (options.endpoint !== null ? 'us-east-1' : null);
    if (region !== null) config.region = region;
    if (options.credentials !== null) config.credentials = { ...options.credentials };
    const ms = options.idleTimeoutMs;
    config.requestHandler = { requestTimeout: ms, throwOnRequestTimeout: true, connectionTimeout: options.connectTimeoutMs, socketTimeout: ms };
    this.client = new S3Client(config);
  }

  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const { code, status } = errorShape(err);
      if (status !== 404 && code !== 'NotFound' && code !== 'NoSuchBucket') throw s3Failure(err, 'HeadBucket', this.bucket, null);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (errorShape(err).code !== 'BucketAlreadyOwnedByYou') throw s3Failure(err, 'CreateBucket', this.bucket, null);
    }
  }

  /** Metadata already validated by the caller. */
  async put(key: string, body: PutBody, options: PutOptions): Promise<void> {
    const metadata = options.metadata === undefined ? undefined : { ...options.metadata };
    if (Buffer.isBuffer(body) && body.length < this.options.multipartThresholdBytes) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, Metadata: metadata }));
      } catch (err) {
        throw s3Failure(err, 'PutObject', this.bucket, key);
      }
      options.onProgress?.(body.length);
      return;
    }
    // Count what the uploader read, for a last progress report of the whole size.
    let read = 0;
    const source: Buffer | Readable = Buffer.isBuffer(body)
      ? body
      : pipeline(
          body(),
          new Transform({
            transform(chunk: Buffer, _encoding, done) {
              read += chunk.length;
              done(null, chunk);
            },
          }),
          () => undefined, // errors reach the uploader through the destroyed Transform
        );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: source, Metadata: metadata, ContentLength: options.contentLength },
      queueSize: 2,
      partSize: Math.max(MIN_PART_BYTES, this.options.multipartThresholdBytes),
      leavePartsOnError: false,
    });
    let sent = 0;
    upload.on('httpUploadProgress', (p) => {
      if (p.loaded !== undefined && p.loaded > sent) {
        sent = p.loaded;
        options.onProgress?.(sent);
      }
    });
    try {
      await upload.done();
    } catch (err) {
      throw s3Failure(err, 'multipart upload', this.bucket, key);
    } finally {
      if (!Buffer.isBuffer(source)) source.destroy();
    }
    const total = Buffer.isBuffer(body) ? body.length : read;
    if (sent < total) options.onProgress?.(total);
  }

  async get(key: string, range: { start: number; end?: number } | undefined, signal: AbortSignal | undefined): Promise<StoredObject> {
    const header = range === undefined ? undefined : `bytes=${range.start}-${range.end ?? ''}`;
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: header }), { abortSignal: signal });
    if (res.Body === undefined) throw new StorageError(`GetObject of ${key} in s3://${this.bucket} answered without a body`);
    const body = Buffer.from(await res.Body.transformToByteArray());
    const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
    return {
      key,
      size: total === undefined ? (res.ContentLength ?? body.length) : Number(total),
      lastModified: res.LastModified ?? new Date(0),
      metadata: res.Metadata ?? {},
      body,
    };
  }

  async getStream(key: string, signal: AbortSignal | undefined, range?: ByteRange): Promise<{ head: ObjectHead; body: Readable }> {
    const header = range === undefined ? undefined : `bytes=${range.start}-${range.end}`;
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: header }), { abortSignal: signal });
    const body: unknown = res.Body;
    if (!(body instanceof Readable)) throw new StorageError(`GetObject of ${key} in s3://${this.bucket} answered without a readable body`);
    const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
    if (range !== undefined && total === undefined) {
      body.destroy();
      throw new StorageError(`GetObject of ${key} in s3://${this.bucket} asked for bytes ${range.start}-${range.end} and got the whole object: the store does not do ranges`);
    }
    const size = total === undefined ? (res.ContentLength ?? 0) : Number(total);
    return { head: { key, size, lastModified: res.LastModified ?? new Date(0), metadata: res.Metadata ?? {}, ...(res.ETag === undefined ? {} : { etag: res.ETag }) }, body };
  }

  /** Throws the SDK's NotFound for a missing key (the caller maps it). */
  async head(key: string): Promise<ObjectHead> {
    const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    return { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0), metadata: res.Metadata ?? {} };
  }

  async listPage(params: ListPageParams): Promise<ListPage> {
    const res = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: params.prefix === '' ? undefined : params.prefix,
        Delimiter: params.delimiter,
        StartAfter: params.startAfter,
        ContinuationToken: params.continuationToken,
        MaxKeys: params.maxKeys,
      }),
    );
    const objects = (res.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) }]));
    const prefixes = (res.CommonPrefixes ?? []).flatMap((p) => (p.Prefix === undefined ? [] : [p.Prefix]));
    return { objects, prefixes, truncated: res.IsTruncated === true, nextToken: res.NextContinuationToken };
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_CHUNK) {
      const chunk = keys.slice(i, i + DELETE_CHUNK);
      let res;
      try {
        res = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }),
        );
      } catch (err) {
        throw s3Failure(err, 'DeleteObjects', this.bucket, chunk[0] ?? null);
      }
      const errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const first = errors.slice(0, 3).map((e) => `${e.Key ?? '?'}: ${e.Code ?? '?'} ${e.Message ?? ''}`.trim());
        const hint = CREDENTIAL_CODES.has(errors[0]?.Code ?? '') ? hintFor({ code: errors[0]?.Code ?? '', status: 403, message: '' }) : undefined;
        throw new StorageError(`DeleteObjects in s3://${this.bucket} failed for ${errors.length} of ${chunk.length} keys: ${first.join('; ')}`, { hint });
      }
    }
  }

  destroy(): void {
    this.client.destroy();
  }
}
