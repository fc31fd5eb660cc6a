/**
 * The seam between backups and where they are kept: S3 (s3-storage.ts, the only module that imports
 * the AWS SDK) or a local directory (local-storage.ts). Restore, verify, the CLI and the server's
 * uploader only see this interface, so tests can drive them against either backend.
 */
import type { Readable } from 'node:stream';
import { LibsqlctlError } from '../../errors.js';
import type { BodyReader } from './body-reader.js';

/** User metadata of an object (S3 `x-amz-meta-*`), keys lower-case without the prefix. */
export type ObjectMetadata = Readonly<Record<string, string>>;

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ObjectHead extends ObjectInfo {
  metadata: ObjectMetadata;
  /** S3's ETag, where the backend has one: what tells two versions of a key apart. */
  etag?: string;
}

/** Bytes `start..end` of an object, both inclusive (an HTTP range). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface StoredObject extends ObjectHead {
  body: Buffer;
}

/** One entry of a listing: an object, or (with a delimiter) a common prefix ending in the delimiter. */
export type ListEntry = ({ kind: 'object' } & ObjectInfo) | { kind: 'prefix'; prefix: string };

export interface ListOptions {
  /** With `/`: keys below the next `/` after the prefix fold into one `prefix` entry. */
  delimiter?: '/';
  /** Only keys (and prefixes) that sort after this one. */
  startAfter?: string;
}

export interface PutOptions {
  metadata?: ObjectMetadata;
  /** A body given as a stream factory is called again for every attempt (retries rebuild it). */
  contentLength?: number;
  /** Large bodies (snapshots): multipart upload where the backend has it. Progress in bytes sent. */
  onProgress?: (sentBytes: number) => void;
}

/** A body: bytes, or a factory of a fresh stream for each attempt. */
export type PutBody = Buffer | (() => Readable);

export interface BackupStorage {
  /** Where the objects live, for messages: `s3://bucket (endpoint)`, `file:///path`. */
  readonly description: string;
  /** Creates the bucket (or directory) if it does not exist. */
  ensureBucket(): Promise<void>;
  put(key: string, body: PutBody, options?: PutOptions): Promise<void>;
  /**
   * The whole object, or bytes `start..end` (inclusive, as HTTP ranges; `end` past the object is cut
   * to its last byte, `start` past it is a StorageError). `size` is always the whole object's.
   * ObjectNotFoundError when missing.
   */
  get(key: string, options?: { range?: { start: number; end?: number }; signal?: AbortSignal }): Promise<StoredObject>;
  /** A stream of the object's bytes (large snapshots). ObjectNotFoundError when missing. */
  getStream(key: string, options?: { signal?: AbortSignal }): Promise<{ head: ObjectHead; body: Readable }>;
  /**
   * The object's bytes pulled into the caller's buffers (body-reader.ts), for the snapshot's
   * native decoder; backends without it are read through getStream. With `range`, only those
   * bytes (`end` past the object is cut to its last byte, `start` past it is a StorageError);
   * `head.size` is the whole object's either way. ObjectNotFoundError when missing.
   */
  getReader?(key: string, options?: { signal?: AbortSignal; range?: ByteRange }): Promise<{ head: ObjectHead; body: BodyReader }>;
  /** null when missing. */
  head(key: string): Promise<ObjectHead | null>;
  /** Keys starting with `prefix`, in UTF-8 binary order, paged internally. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListEntry>;
  /** Deletes the keys (missing ones are not an error). */
  delete(keys: readonly string[]): Promise<void>;
  /** Releases sockets and handles. */
  close(): Promise<void>;
}

/** The object does not exist. */
export class ObjectNotFoundError extends LibsqlctlError {
  constructor(
    readonly key: string,
    where: string,
  ) {
    super('BACKUP_OBJECT_NOT_FOUND', `${key} does not exist in ${where}`);
  }
}

/** The store failed (network, permissions, a server error) after the retries. */
export class StorageError extends LibsqlctlError {
  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super('BACKUP_STORAGE_FAILED', message, options);
  }
}

/** S3's limit on user metadata: names and values together, in bytes. */
export const MAX_METADATA_BYTES = 2048;

/** Orders keys as S3 lists them: by their UTF-8 bytes (not by UTF-16 code units, as `<` does). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const METADATA_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
const METADATA_VALUE_RE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;

/**
 * Checks metadata the same way for every backend, so that what works on a local directory also works
 * on S3: lower-case names of letters, digits, `-` and `_`; values of printable US-ASCII (HTTP headers
 * carry them) without leading or trailing spaces (which HTTP would strip); at most
 * MAX_METADATA_BYTES in all. A StorageError names the offending entry.
 */
export function validateMetadata(key: string, metadata: ObjectMetadata | undefined): void {
  if (metadata === undefined) return;
  let total = 0;
  for (const [name, value] of Object.entries(metadata)) {
    if (!METADATA_NAME_RE.test(name)) {
      throw new StorageError(`metadata name ${JSON.stringify(name)} of ${key} is not lower-case letters, digits, '-' and '_'`);
    }
    if (!METADATA_VALUE_RE.test(value)) {
      throw new StorageError(`metadata ${name} of ${key} is not printable US-ASCII without surrounding spaces: ${JSON.stringify(value)}`);
    }
    total += name.length + value.length;
  }
  if (total > MAX_METADATA_BYTES) {
    throw new StorageError(`metadata of ${key} takes ${total} bytes, more than the ${MAX_METADATA_BYTES} bytes S3 allows`);
  }
}
