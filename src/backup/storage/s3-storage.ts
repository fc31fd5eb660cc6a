/**
 * The S3 backend, and the only module that imports the AWS SDK.
 *
 * Client settings follow bottomless (spec §1.1, §7): path-style addressing, the SDK's standard retry
 * mode, checksums only where an operation requires them (R2, B2 and older MinIO reject the newer
 * default ones). Listing is ListObjectsV2 with continuation tokens; each page's objects and common
 * prefixes are merged in key order, and entries that do not sort after the last one given are dropped
 * (some stores, s3rver among them, repeat a common prefix on the next page).
 */
import {
  type _Object,
  type CommonPrefix,
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { pipeline, Readable, Transform } from 'node:stream';
import { LibsqlctlError } from '../../errors.js';
import {
  type BackupStorage,
  compareKeys,
  type ListEntry,
  type ListOptions,
  type ObjectHead,
  ObjectNotFoundError,
  type PutBody,
  type PutOptions,
  StorageError,
  type StoredObject,
  validateMetadata,
} from './storage.js';

/** Where and how to reach the bucket. */
/** Without these the SDK waits forever on a connection the store (or a proxy) black-holes. */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface S3StorageOptions {
  bucket: string;
  /** `http(s)://host[:port]`; null for AWS itself. */
  endpoint: string | null;
  /** null: `us-east-1` with an endpoint, else the SDK's region chain (AWS_REGION, profiles). */
  region: string | null;
  /** null: the SDK's default credential chain (environment, profiles, instance roles). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | null;
  /** Attempts per request in the SDK's standard retry mode (1 = no retry). */
  maxAttempts: number;
  /** Keys per ListObjectsV2 page (default 1000, S3's maximum). */
  listPageSize?: number;
  /** Buffers at least this large, and every stream body, go through a multipart upload (default 8 MiB). */
  multipartThresholdBytes?: number;
  /**
   * Bound on connecting and on a socket without traffic, in ms (default 60 s; connecting at most
   * 10 s): a store that black-holes a connection fails the request, which is then retried.
   */
  requestTimeoutMs?: number;
}

const MIB = 1024 * 1024;
/** S3's smallest part (but the last). */
const MIN_PART_BYTES = 5 * MIB;
const DELETE_CHUNK = 1000;

interface ErrorShape {
  code: string;
  status: number | undefined;
  message: string;
}

function errorShape(err: unknown): ErrorShape {
  if (err instanceof S3ServiceException) {
    return { code: err.name, status: err.$metadata.httpStatusCode, message: err.message };
  }
  if (err instanceof Error) {
    const code = 'code' in err && typeof err.code === 'string' ? err.code : err.name;
    return { code, status: undefined, message: err.message };
  }
  return { code: 'Error', status: undefined, message: String(err) };
}

function isNotFound(err: unknown): boolean {
  const { code, status } = errorShape(err);
  return code === 'NoSuchKey' || code === 'NotFound' || (status === 404 && code !== 'NoSuchBucket');
}

const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'CredentialsProviderError',
  'Forbidden',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'TimeoutError', 'EHOSTUNREACH']);

function hintFor({ code, status, message }: ErrorShape): string | undefined {
  if (CREDENTIAL_CODES.has(code) || status === 403) {
    return 'check the credentials (LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID, LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY, or the AWS default chain) and their permissions on the bucket';
  }
  if (NETWORK_CODES.has(code)) return 'check LIBSQL_BOTTOMLESS_ENDPOINT and that the store is reachable';
  if (code === 'NoSuchBucket') return 'check LIBSQL_BOTTOMLESS_BUCKET (the server creates the bucket on start)';
  const wrongRegion = code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301;
  if (wrongRegion || /region/i.test(message)) return "set LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION (or AWS_REGION) to the bucket's region";
  return undefined;
}

/** Objects in an S3 bucket (AWS, MinIO, R2, s3rver, …). */
export class S3Storage implements BackupStorage {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly pageSize: number;
  private readonly multipartThreshold: number;

  constructor(options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.pageSize = options.listPageSize ?? 1000;
    this.multipartThreshold = options.multipartThresholdBytes ?? 8 * MIB;
    this.description = `s3://${options.bucket} (${options.endpoint ?? 'AWS'})`;
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
    const ms = options.requestTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    config.requestHandler = { requestTimeout: ms, throwOnRequestTimeout: true, connectionTimeout: Math.min(ms, CONNECT_TIMEOUT_MS), socketTimeout: ms };
    this.client = new S3Client(config);
  }

  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const { code, status } = errorShape(err);
      if (status !== 404 && code !== 'NotFound' && code !== 'NoSuchBucket') throw this.failure(err, 'HeadBucket', null);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (errorShape(err).code !== 'BucketAlreadyOwnedByYou') throw this.failure(err, 'CreateBucket', null);
    }
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    validateMetadata(key, options.metadata);
    const metadata = options.metadata === undefined ? undefined : { ...options.metadata };
    if (Buffer.isBuffer(body) && body.length < this.multipartThreshold) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, Metadata: metadata }));
      } catch (err) {
        throw this.failure(err, 'PutObject', key);
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
      partSize: Math.max(MIN_PART_BYTES, this.multipartThreshold),
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
      throw this.failure(err, 'multipart upload', key);
    } finally {
      if (!Buffer.isBuffer(source)) source.destroy();
    }
    const total = Buffer.isBuffer(body) ? body.length : read;
    if (sent < total) options.onProgress?.(total);
  }

  async get(key: string, options: { range?: { start: number; end?: number }; signal?: AbortSignal } = {}): Promise<StoredObject> {
    const range = options.range === undefined ? undefined : `bytes=${options.range.start}-${options.range.end ?? ''}`;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }), { abortSignal: options.signal });
      if (res.Body === undefined) throw new StorageError(`GetObject of ${key} in ${this.description} answered without a body`);
      const body = Buffer.from(await res.Body.transformToByteArray());
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      return {
        key,
        size: total === undefined ? (res.ContentLength ?? body.length) : Number(total),
        lastModified: res.LastModified ?? new Date(0),
        metadata: res.Metadata ?? {},
        body,
      };
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw this.failure(err, 'GetObject', key);
    }
  }

  async getStream(key: string, options: { signal?: AbortSignal } = {}): Promise<{ head: ObjectHead; body: Readable }> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: options.signal });
      const body: unknown = res.Body;
      if (!(body instanceof Readable)) throw new StorageError(`GetObject of ${key} in ${this.description} answered without a readable body`);
      const head = { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0), metadata: res.Metadata ?? {} };
      return { head, body };
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw this.failure(err, 'GetObject', key);
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0), metadata: res.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.failure(err, 'HeadObject', key);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    const startAfter = options.startAfter ?? '';
    let lastKey = startAfter;
    let lastPrefix = startAfter;
    let token: string | undefined;
    for (let page = 0; ; page++) {
      let res;
      try {
        res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix === '' ? undefined : prefix,
            Delimiter: options.delimiter,
            StartAfter: token === undefined && startAfter !== '' ? startAfter : undefined,
            ContinuationToken: token,
            MaxKeys: this.pageSize,
          }),
        );
      } catch (err) {
        throw this.failure(err, 'ListObjectsV2', prefix);
      }
      for (const entry of mergePage(res.Contents ?? [], res.CommonPrefixes ?? [])) {
        if (entry.kind === 'object') {
          if (compareKeys(entry.key, lastKey) <= 0) continue;
          lastKey = entry.key;
        } else {
          if (compareKeys(entry.prefix, lastPrefix) <= 0) continue;
          lastPrefix = entry.prefix;
        }
        yield entry;
      }
      if (res.IsTruncated !== true) return;
      if (res.NextContinuationToken === undefined || res.NextContinuationToken === token) {
        throw new StorageError(`ListObjectsV2 of ${prefix} in ${this.description} is truncated without a new continuation token (page ${page + 1})`);
      }
      token = res.NextContinuationToken;
    }
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
        throw this.failure(err, 'DeleteObjects', chunk[0] ?? null);
      }
      const errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const first = errors.slice(0, 3).map((e) => `${e.Key ?? '?'}: ${e.Code ?? '?'} ${e.Message ?? ''}`.trim());
        const hint = CREDENTIAL_CODES.has(errors[0]?.Code ?? '') ? hintFor({ code: errors[0]?.Code ?? '', status: 403, message: '' }) : undefined;
        throw new StorageError(`DeleteObjects in ${this.description} failed for ${errors.length} of ${chunk.length} keys: ${first.join('; ')}`, { hint });
      }
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }

  private failure(err: unknown, op: string, key: string | null): LibsqlctlError {
    if (err instanceof LibsqlctlError) return err;
    const shape = errorShape(err);
    const status = shape.status === undefined ? '' : `, HTTP ${shape.status}`;
    const where = key === null ? `s3://${this.bucket}` : `s3://${this.bucket}/${key}`;
    return new StorageError(`S3 ${op} of ${where} failed: ${shape.code}${status}: ${shape.message}`, { cause: err, hint: hintFor(shape) });
  }
}

/** One page's objects and common prefixes, in key order. */
function mergePage(objects: readonly _Object[], prefixes: readonly CommonPrefix[]): ListEntry[] {
  const entries: { sort: string; entry: ListEntry }[] = [];
  for (const o of objects) {
    if (o.Key !== undefined) entries.push({ sort: o.Key, entry: { kind: 'object', key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) } });
  }
  for (const p of prefixes) if (p.Prefix !== undefined) entries.push({ sort: p.Prefix, entry: { kind: 'prefix', prefix: p.Prefix } });
  return entries.sort((a, b) => compareKeys(a.sort, b.sort)).map((e) => e.entry);
}
