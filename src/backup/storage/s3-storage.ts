/**
 * The S3 backend: one BackupStorage over two clients. Reads (get, getStream, head, list) of a store
 * named by an endpoint, with explicit credentials, are signed requests over node:http
 * (s3-http.ts): restore, verify and `ls` then never load the AWS SDK. Everything else — writes,
 * bucket creation, deletes, and reads of AWS itself or with the SDK's credential chain — goes through
 * the SDK (s3-sdk.ts, imported on first use). Both clients' failures are mapped here, once.
 *
 * Listing is ListObjectsV2 with continuation tokens; each page's objects and common prefixes are
 * merged in key order, and entries that do not sort after the last one given are dropped (some
 * stores, s3rver among them, repeat a common prefix on the next page).
 */
import type { Readable } from 'node:stream';
import { type BodyReader, readerOfStream } from './body-reader.js';
import { isNotFound, s3Failure } from './s3-errors.js';
import { type ListPage, type ListPageParams, SignedS3Reader } from './s3-http.js';
import type { SdkS3 } from './s3-sdk.js';
import {
  type BackupStorage,
  type ByteRange,
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

/** Without these a client waits forever on a connection the store (or a proxy) black-holes. */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
const MIB = 1024 * 1024;

/** Where and how to reach the bucket. */
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
  /** false: reads go through the SDK as well (default: signed reads wherever they can be used). */
  signedReads?: boolean;
}

/** The operations both clients serve; reads throw the client's own errors. */
interface ReadClient {
  get(key: string, range: { start: number; end?: number } | undefined, signal: AbortSignal | undefined): Promise<StoredObject>;
  getStream(key: string, signal: AbortSignal | undefined, range?: ByteRange): Promise<{ head: ObjectHead; body: Readable }>;
  listPage(params: ListPageParams): Promise<ListPage>;
}

/** Objects in an S3 bucket (AWS, MinIO, R2, s3rver, …). */
export class S3Storage implements BackupStorage {
  readonly description: string;
  private readonly bucket: string;
  private readonly pageSize: number;
  private readonly reader: SignedS3Reader | null;
  private sdkClient: Promise<SdkS3> | null = null;

  constructor(private readonly options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.pageSize = options.listPageSize ?? 1000;
    this.description = `s3://${options.bucket} (${options.endpoint ?? 'AWS'})`;
    const idle = options.requestTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.reader =
      options.endpoint === null || options.credentials === null || options.signedReads === false
        ? null
        : new SignedS3Reader({
            endpoint: options.endpoint,
            bucket: options.bucket,
            region: options.region ?? 'us-east-1',
            credentials: options.credentials,
            maxAttempts: options.maxAttempts,
            idleTimeoutMs: idle,
            connectTimeoutMs: Math.min(idle, CONNECT_TIMEOUT_MS),
          });
  }

  async ensureBucket(): Promise<void> {
    await (await this.sdk()).ensureBucket();
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    validateMetadata(key, options.metadata);
    await (await this.sdk()).put(key, body, options);
  }

  async get(key: string, options: { range?: { start: number; end?: number }; signal?: AbortSignal } = {}): Promise<StoredObject> {
    try {
      return await (await this.reads()).get(key, options.range, options.signal);
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw s3Failure(err, 'GetObject', this.bucket, key);
    }
  }

  async getStream(key: string, options: { signal?: AbortSignal } = {}): Promise<{ head: ObjectHead; body: Readable }> {
    try {
      return await (await this.reads()).getStream(key, options.signal);
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw s3Failure(err, 'GetObject', this.bucket, key);
    }
  }

  async getReader(key: string, options: { signal?: AbortSignal; range?: ByteRange } = {}): Promise<{ head: ObjectHead; body: BodyReader }> {
    try {
      if (this.reader !== null) return await this.reader.getReader(key, options.signal, options.range);
      const { head, body } = await (await this.sdk()).getStream(key, options.signal, options.range);
      return { head, body: readerOfStream(body) };
    } catch (err) {
      options.signal?.throwIfAborted();
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw s3Failure(err, 'GetObject', this.bucket, key);
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      return this.reader !== null ? await this.reader.head(key) : await (await this.sdk()).head(key);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw s3Failure(err, 'HeadObject', this.bucket, key);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    const startAfter = options.startAfter ?? '';
    let lastKey = startAfter;
    let lastPrefix = startAfter;
    let token: string | undefined;
    for (let page = 0; ; page++) {
      let res: ListPage;
      try {
        res = await (await this.reads()).listPage({
          prefix,
          delimiter: options.delimiter,
          startAfter: token === undefined && startAfter !== '' ? startAfter : undefined,
          continuationToken: token,
          maxKeys: this.pageSize,
        });
      } catch (err) {
        throw s3Failure(err, 'ListObjectsV2', this.bucket, prefix);
      }
      for (const entry of mergePage(res)) {
        if (entry.kind === 'object') {
          if (compareKeys(entry.key, lastKey) <= 0) continue;
          lastKey = entry.key;
        } else {
          if (compareKeys(entry.prefix, lastPrefix) <= 0) continue;
          lastPrefix = entry.prefix;
        }
        yield entry;
      }
      if (!res.truncated) return;
      if (res.nextToken === undefined || res.nextToken === token) {
        throw new StorageError(`ListObjectsV2 of ${prefix} in ${this.description} is truncated without a new continuation token (page ${page + 1})`);
      }
      token = res.nextToken;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await (await this.sdk()).delete(keys);
  }

  async close(): Promise<void> {
    this.reader?.close();
    const sdk = this.sdkClient;
    this.sdkClient = null;
    if (sdk !== null) (await sdk.catch(() => null))?.destroy();
  }

  private reads(): SignedS3Reader | Promise<ReadClient> {
    return this.reader ?? this.sdk();
  }

  /** The SDK client, loaded on first use. */
  private sdk(): Promise<SdkS3> {
    this.sdkClient ??= import('./s3-sdk.js').then(({ SdkS3 }) => {
      const idle = this.options.requestTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
      return new SdkS3({
        bucket: this.options.bucket,
        endpoint: this.options.endpoint,
        region: this.options.region,
        credentials: this.options.credentials,
        maxAttempts: this.options.maxAttempts,
        multipartThresholdBytes: this.options.multipartThresholdBytes ?? 8 * MIB,
        idleTimeoutMs: idle,
        connectTimeoutMs: Math.min(idle, CONNECT_TIMEOUT_MS),
      });
    });
    return this.sdkClient;
  }
}

/** One page's objects and common prefixes, in key order. */
function mergePage(page: ListPage): ListEntry[] {
  const entries: { sort: string; entry: ListEntry }[] = [];
  for (const o of page.objects) entries.push({ sort: o.key, entry: { kind: 'object', ...o } });
  for (const prefix of page.prefixes) entries.push({ sort: prefix, entry: { kind: 'prefix', prefix } });
  return entries.sort((a, b) => compareKeys(a.sort, b.sort)).map((e) => e.entry);
}
