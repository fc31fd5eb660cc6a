/**
 * S3 reads (GetObject, HeadObject, ListObjectsV2) over plain node:http with SigV4 signatures, for
 * stores named by an endpoint with explicit credentials — what restore, verify and `ls` do. The AWS
 * SDK costs a few hundred milliseconds to load and about 2 ms of CPU per request; a restore makes
 * hundreds of small requests, and these cost a fraction of that. Writes, and stores that need the
 * SDK's credential chain or region discovery, stay on the SDK (s3-sdk.ts).
 *
 * Path-style addressing, as the SDK client is configured. Retries follow the SDK's standard mode:
 * network errors, 5xx, 429 and 408 (and S3's SlowDown / RequestTimeout codes), with exponential
 * backoff and full jitter, `maxAttempts` attempts in all. A stream is retried only until its
 * answer's head has arrived. Failures are S3RequestErrors, read by s3-errors.ts as the SDK's are.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BodyReader, readerOfStream } from './body-reader.js';
import { directGet } from './s3-direct-get.js';
import { S3RequestError } from './s3-errors.js';
import { amzDate, canonicalQuery, type Credentials, EMPTY_PAYLOAD_SHA256, SigV4Signer, uriEncode } from './s3-sigv4.js';
import { type ByteRange, type ObjectHead, type ObjectInfo, type ObjectMetadata, StorageError, type StoredObject } from './storage.js';
import { xmlBody, xmlChildText, xmlElements } from './s3-xml.js';

export interface SignedReaderOptions {
  /** `http(s)://host[:port][/base/path]` */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: Credentials;
  maxAttempts: number;
  /** A socket without traffic this long fails the attempt. */
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

export interface ListPageParams {
  prefix: string;
  delimiter?: string;
  startAfter?: string;
  continuationToken?: string;
  maxKeys: number;
}

export interface ListPage {
  objects: ObjectInfo[];
  prefixes: string[];
  truncated: boolean;
  nextToken: string | undefined;
}

const RETRY_CODES = new Set(['SlowDown', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable', 'Throttling', 'ThrottlingException']);
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 20_000;

function retryable(err: unknown): boolean {
  if (!(err instanceof S3RequestError)) return false;
  if (err.status === undefined) return err.code !== 'AbortError';
  return err.status >= 500 || err.status === 429 || err.status === 408 || RETRY_CODES.has(err.code);
}

/** What a request cut off (or not started) by close() fails with. */
function closedError(): S3RequestError {
  return new S3RequestError('AbortError', undefined, 'the store was closed');
}

/** The S3 error an answer's status and (XML) body describe. */
function answerError(res: IncomingMessage, body: Buffer, what: string): S3RequestError {
  const status = res.statusCode ?? 0;
  let code: string | undefined;
  let message: string | undefined;
  const doc = body.length > 0 ? xmlBody(body.toString('utf8')) : null;
  const error = doc === null ? undefined : xmlElements(doc, 'Error')[0];
  if (error !== undefined) {
    code = xmlChildText(error, 'Code');
    message = xmlChildText(error, 'Message');
  }
  code ??= status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : status === 301 ? 'PermanentRedirect' : status >= 500 ? 'InternalError' : `HTTP${status}`;
  return new S3RequestError(code, status, message ?? `${what} answered ${status} ${res.statusMessage ?? ''}`.trim());
}

function metadataOf(headers: IncomingHttpHeaders): ObjectMetadata {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') out[name.slice('x-amz-meta-'.length)] = value;
  }
  return out;
}

function headOf(key: string, headers: IncomingHttpHeaders): ObjectHead {
  const modified = headers['last-modified'];
  const range = /\/(\d+)$/.exec(headers['content-range'] ?? '')?.[1];
  const length = Number(headers['content-length'] ?? 0);
  const etag = headers.etag;
  return {
    key,
    size: range === undefined ? length : Number(range),
    lastModified: modified === undefined ? new Date(0) : new Date(modified),
    metadata: metadataOf(headers),
    ...(typeof etag === 'string' ? { etag } : {}),
  };
}

function rangeHeader(range: ByteRange | undefined): Record<string, string> {
  return range === undefined ? {} : { range: `bytes=${range.start}-${range.end}` };
}

function readBody(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => (res.complete ? resolve(Buffer.concat(chunks)) : reject(new S3RequestError('ECONNRESET', undefined, 'the answer ended early'))));
  });
}

export class SignedS3Reader {
  private readonly signer: SigV4Signer;
  private readonly url: URL;
  private readonly basePath: string;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  /** Set by close(): requests it cut off are not retried, and no new one starts. */
  private closed = false;
  /** Aborted by close(): stops direct reads (which use no agent). */
  private readonly closing = new AbortController();

  constructor(private readonly options: SignedReaderOptions) {
    this.url = new URL(options.endpoint);
    this.basePath = this.url.pathname.replace(/\/+$/, '');
    // node:https (and TLS with it) only for an https endpoint: a plain-HTTP restore starts without loading it.
    this.transport = this.url.protocol === 'https:' ? (createRequire(import.meta.url)('node:https') as typeof https) : http;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 64 });
    this.signer = new SigV4Signer(options.credentials, options.region);
  }

  async get(key: string, range: { start: number; end?: number } | undefined, signal: AbortSignal | undefined): Promise<StoredObject> {
    const headers: Record<string, string> = range === undefined ? {} : { range: `bytes=${range.start}-${range.end ?? ''}` };
    return this.withRetries(signal, async () => {
      const res = await this.request('GET', key, {}, headers, signal);
      const body = await readBody(res);
      if ((res.statusCode ?? 0) >= 300) throw answerError(res, body, `GetObject of ${key}`);
      return { ...headOf(key, res.headers), body };
    });
  }

  async getStream(key: string, signal: AbortSignal | undefined, range?: ByteRange): Promise<{ head: ObjectHead; body: IncomingMessage }> {
    return this.withRetries(signal, async () => {
      const res = await this.request('GET', key, {}, rangeHeader(range), signal);
      if ((res.statusCode ?? 0) >= 300) throw answerError(res, await readBody(res), `GetObject of ${key}`);
      if (range !== undefined && res.statusCode !== 206) {
        res.destroy();
        throw new StorageError(`GetObject of ${key} asked for bytes ${range.start}-${range.end} and got the whole object (HTTP ${res.statusCode}): the store does not do ranges`);
      }
      return { head: headOf(key, res.headers), body: res };
    });
  }

  /**
   * The object pulled into the caller's buffers: over plain HTTP read straight into them
   * (s3-direct-get.ts), else through getStream. Once: a failure after the head is the body's.
   */
  async getReader(key: string, signal: AbortSignal | undefined, range?: ByteRange): Promise<{ head: ObjectHead; body: BodyReader }> {
    if (this.url.protocol === 'http:' && !this.closed) {
      const answer = await directGet({
        host: this.url.hostname,
        port: this.url.port === '' ? 80 : Number(this.url.port),
        path: this.objectPath(key),
        headers: this.signedHeaders('GET', this.objectPath(key), {}, rangeHeader(range)),
        status: range === undefined ? 200 : 206,
        connectTimeoutMs: this.options.connectTimeoutMs,
        idleTimeoutMs: this.options.idleTimeoutMs,
        signal: signal === undefined ? this.closing.signal : AbortSignal.any([signal, this.closing.signal]),
      });
      if (answer !== null) return { head: headOf(key, answer.headers), body: answer.body };
    }
    const { head, body } = await this.getStream(key, signal, range);
    return { head, body: readerOfStream(body) };
  }

  /** null when missing. */
  async head(key: string): Promise<ObjectHead | null> {
    return this.withRetries(undefined, async () => {
      const res = await this.request('HEAD', key, {}, {}, undefined);
      await readBody(res);
      if (res.statusCode === 404) return null;
      if ((res.statusCode ?? 0) >= 300) throw answerError(res, Buffer.alloc(0), `HeadObject of ${key}`);
      return headOf(key, res.headers);
    });
  }

  async listPage(params: ListPageParams): Promise<ListPage> {
    const query: Record<string, string> = { 'list-type': '2', 'max-keys': String(params.maxKeys) };
    if (params.prefix !== '') query.prefix = params.prefix;
    if (params.delimiter !== undefined) query.delimiter = params.delimiter;
    if (params.startAfter !== undefined) query['start-after'] = params.startAfter;
    if (params.continuationToken !== undefined) query['continuation-token'] = params.continuationToken;
    return this.withRetries(undefined, async () => {
      const res = await this.request('GET', null, query, {}, undefined);
      const body = await readBody(res);
      if ((res.statusCode ?? 0) >= 300) throw answerError(res, body, 'ListObjectsV2');
      return parseListPage(body);
    });
  }

  close(): void {
    this.closed = true;
    this.closing.abort();
    this.agent.destroy();
  }

  private async withRetries<T>(signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        if (this.closed) throw closedError();
        return await attempt();
      } catch (err) {
        signal?.throwIfAborted();
        if (this.closed) throw closedError();
        if (n >= this.options.maxAttempts || !retryable(err)) throw err;
        await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (n - 1)), undefined, { signal });
      }
    }
  }

  /** The request path of `key` (null: the bucket), encoded as SigV4 signs it. */
  private objectPath(key: string | null): string {
    return `${this.basePath}/${uriEncode(this.options.bucket)}${key === null ? '' : `/${uriEncode(key, true)}`}`;
  }

  /** `extra` with the host, date, payload hash (and session token) headers, and their signature. */
  private signedHeaders(method: 'GET' | 'HEAD', path: string, query: Record<string, string>, extra: Record<string, string>): Record<string, string> {
    const headers: Record<string, string> = {
      ...extra,
      host: this.url.host,
      'x-amz-date': amzDate(new Date()),
      'x-amz-content-sha256': EMPTY_PAYLOAD_SHA256,
    };
    if (this.options.credentials.sessionToken !== undefined) headers['x-amz-security-token'] = this.options.credentials.sessionToken;
    headers.authorization = this.signer.authorization({ method, path, query, headers, payloadSha256: EMPTY_PAYLOAD_SHA256 });
    return headers;
  }

  /** One signed request; resolves with the answer's head (any status), its body unread. */
  private request(method: 'GET' | 'HEAD', key: string | null, query: Record<string, string>, extra: Record<string, string>, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    const path = this.objectPath(key);
    const headers = this.signedHeaders(method, path, query, extra);
    const search = canonicalQuery(query);
    const { idleTimeoutMs, connectTimeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      const req = this.transport.request({
        protocol: this.url.protocol,
        hostname: this.url.hostname,
        port: this.url.port === '' ? undefined : Number(this.url.port),
        method,
        path: search === '' ? path : `${path}?${search}`,
        headers,
        agent: this.agent,
        signal,
        timeout: idleTimeoutMs,
      });
      let answer: IncomingMessage | null = null;
      const fail = (err: Error): void => {
        if (answer !== null) answer.destroy(err);
        else req.destroy(err);
      };
      req.on('timeout', () => fail(new S3RequestError('TimeoutError', undefined, `no traffic for ${idleTimeoutMs} ms from ${this.url.host}`)));
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => fail(new S3RequestError('TimeoutError', undefined, `could not connect to ${this.url.host} within ${connectTimeoutMs} ms`)), connectTimeoutMs);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof S3RequestError) reject(err);
        else if (err.name === 'AbortError') reject(err);
        else reject(new S3RequestError(err.code ?? err.name, undefined, err.message, { cause: err }));
      });
      req.on('response', (res) => {
        answer = res;
        resolve(res);
      });
      req.end();
    });
  }
}

/** A ListObjectsV2 answer's objects, prefixes and continuation. */
export function parseListPage(body: Buffer): ListPage {
  const doc = xmlBody(body.toString('utf8'));
  if (doc === null) throw new S3RequestError('MalformedListing', 200, 'ListObjectsV2 answered with something that is not XML');
  const result = xmlElements(doc, 'ListBucketResult')[0];
  if (result === undefined) throw new S3RequestError('MalformedListing', 200, 'ListObjectsV2 answered without a ListBucketResult');
  const objects: ObjectInfo[] = [];
  for (const c of xmlElements(result, 'Contents')) {
    const key = xmlChildText(c, 'Key');
    if (key === undefined) continue;
    const modified = xmlChildText(c, 'LastModified');
    objects.push({ key, size: Number(xmlChildText(c, 'Size') ?? 0), lastModified: modified === undefined ? new Date(0) : new Date(modified) });
  }
  const prefixes: string[] = [];
  for (const p of xmlElements(result, 'CommonPrefixes')) {
    const prefix = xmlChildText(p, 'Prefix');
    if (prefix !== undefined) prefixes.push(prefix);
  }
  // Both only at the top level (a key's text cannot hold a '<').
  return { objects, prefixes, truncated: xmlChildText(result, 'IsTruncated')?.trim() === 'true', nextToken: xmlChildText(result, 'NextContinuationToken') };
}
