/**
 * The `file:///path` backend: one file per key under `<path>/<bucket>`.
 *
 * Layout. A key is split at `/`: every part but the last is a directory named `<part>%2F`, the last is
 * the file. Inside each part, `%`, `\`, control characters and a part made only of dots (`.`, `..`)
 * are percent-escaped (`%XX`, upper-case hex), so no key can leave the bucket directory or hit a name
 * the file system reserves. The `%2F` suffix keeps a key `a` and a key `a/b` apart (file `a`,
 * directory `a%2F`); a name decodes to the key text it stands for. Names that are not in this exact
 * form (temp files `%tmp-…`, anything a person drops there) are ignored. Keys that end in `/` (S3's
 * "folder" objects) cannot be stored and are refused.
 *
 * File format. `LSQLOBJ1`, a big-endian u32 length, that many bytes of JSON `{"metadata": {...}}`,
 * then the body. Keeping the metadata in the object's own file makes a put one rename: a crash leaves
 * either the old object or the new one, never a body with the other's metadata.
 *
 * Puts write a temp file in the target directory, fsync it, rename it over the key and fsync the
 * directory. A crash can leave a `%tmp-…` file behind; listings never show it.
 */
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, type Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { BodyReader } from './body-reader.js';
import { ConfigError, LibsqlctlError } from '../../errors.js';
import {
  type BackupStorage,
  type ByteRange,
  compareKeys,
  type ListEntry,
  type ListOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectMetadata,
  ObjectNotFoundError,
  type PutBody,
  type PutOptions,
  StorageError,
  type StoredObject,
  validateMetadata,
} from './storage.js';

const MAGIC = Buffer.from('LSQLOBJ1', 'latin1');
const PREFIX_BYTES = MAGIC.length + 4;
const MAX_HEADER_BYTES = 64 * 1024;
const DIR_SUFFIX = '%2F';
const TEMP_PREFIX = '%tmp-';
/** How many files a listing or a delete touches at once. */
const PARALLEL = 32;

/** Percent-escapes one part of a key (between slashes) into a file name. */
export function escapeKeyPart(part: string): string {
  if (/^\.+$/.test(part)) return '%2E'.repeat(part.length);
  let out = '';
  for (const c of part) {
    const code = c.charCodeAt(0);
    out += c === '%' || c === '\\' || code < 0x20 || code === 0x7f ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : c;
  }
  return out;
}

/** The key part a file name stands for, or null when the name is not one escapeKeyPart produces. */
export function unescapeKeyPart(name: string): string | null {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = name.slice(i + 1, i + 3);
    if (!/^[0-9A-F]{2}$/.test(hex)) return null;
    out += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  return escapeKeyPart(out) === name ? out : null;
}

interface OpenObject {
  fh: FileHandle;
  metadata: ObjectMetadata;
  bodyOffset: number;
  head: ObjectHead;
}

interface DirEntry {
  kind: 'file' | 'dir';
  key: string;
  sortKey: Buffer;
  file: string;
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done);
    done += bytesWritten;
  }
}

async function readExactly(fh: FileHandle, length: number, position: number): Promise<Buffer | null> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) return null;
    done += bytesRead;
  }
  return buf;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Objects in a directory: see the module comment for the layout and the file format. */
export class LocalStorage implements BackupStorage {
  readonly description: string;
  /** `<dir>/<bucket>`, where the objects live. */
  readonly bucketDir: string;

  constructor(options: { dir: string; bucket: string }) {
    if (!path.isAbsolute(options.dir)) {
      throw new ConfigError('CONFIG_BOTTOMLESS_ENDPOINT', `the backup directory must be an absolute path: ${options.dir}`);
    }
    if (options.bucket === '' || /[/\\]/.test(options.bucket) || options.bucket.includes('\0') || /^\.+$/.test(options.bucket)) {
      throw new ConfigError('CONFIG_BOTTOMLESS_BUCKET', `bucket name ${JSON.stringify(options.bucket)} cannot be a directory name`, {
        hint: 'use a plain name such as "bottomless"',
      });
    }
    this.bucketDir = path.join(path.resolve(options.dir), options.bucket);
    this.description = pathToFileURL(this.bucketDir).href;
  }

  async ensureBucket(): Promise<void> {
    await this.fsOp('create the bucket directory', '', () => fsp.mkdir(this.bucketDir, { recursive: true }));
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    validateMetadata(key, options.metadata);
    const target = this.fileOf(key);
    const dir = path.dirname(target);
    const json = Buffer.from(JSON.stringify({ metadata: options.metadata ?? {} }), 'utf8');
    const prefix = Buffer.alloc(PREFIX_BYTES);
    MAGIC.copy(prefix);
    prefix.writeUInt32BE(json.length, MAGIC.length);
    const temp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const { fh, createdDirs } = await this.openTemp(key, temp);
    let renamed = false;
    try {
      await writeAll(fh, prefix);
      await writeAll(fh, json);
      let sent = 0;
      if (Buffer.isBuffer(body)) {
        await writeAll(fh, body);
        sent = body.length;
        options.onProgress?.(sent);
      } else {
        sent = await this.copyStream(key, fh, body(), options.onProgress);
      }
      if (options.contentLength !== undefined && options.contentLength !== sent) {
        throw new StorageError(`the body of ${key} had ${sent} bytes, ${options.contentLength} were announced`);
      }
      await fh.sync();
      await fh.close();
      await this.fsOp('rename a temp file to', key, () => fsp.rename(temp, target));
      renamed = true;
      if (createdDirs) {
        for (let d = dir; d.length > this.bucketDir.length; d = path.dirname(d)) await this.fsOp('fsync the directory of', key, () => fsyncDir(path.dirname(d)));
      }
      await this.fsOp('fsync the directory of', key, () => fsyncDir(dir));
    } catch (err) {
      await fh.close().catch(() => undefined);
      if (!renamed) await fsp.rm(temp, { force: true }).catch(() => undefined);
      throw this.wrap(err, 'write', key);
    }
  }

  async get(key: string, options: { range?: { start: number; end?: number }; signal?: AbortSignal } = {}): Promise<StoredObject> {
    options.signal?.throwIfAborted();
    const obj = await this.openObject(key);
    try {
      const { start, end } = this.rangeOf(key, obj.head.size, options.range);
      const length = Math.max(0, end + 1 - start);
      const body = await this.fsOp('read', key, () => readExactly(obj.fh, length, obj.bodyOffset + start));
      if (body === null) throw new StorageError(`${key} in ${this.description} shrank while being read`);
      options.signal?.throwIfAborted();
      return { ...obj.head, body };
    } finally {
      await obj.fh.close();
    }
  }

  async getStream(key: string, options: { signal?: AbortSignal } = {}): Promise<{ head: ObjectHead; body: Readable }> {
    options.signal?.throwIfAborted();
    const obj = await this.openObject(key);
    const body = obj.fh.createReadStream({ start: obj.bodyOffset, autoClose: true });
    if (options.signal !== undefined) addAbortSignal(options.signal, body);
    return { head: obj.head, body };
  }

  /** Bytes `start..end` of an object of `size` bytes (all of it without a range), as S3 cuts a range. */
  private rangeOf(key: string, size: number, range: { start: number; end?: number } | undefined): { start: number; end: number } {
    if (range === undefined) return { start: 0, end: size - 1 };
    const { start } = range;
    const end = Math.min(range.end ?? size - 1, size - 1);
    if (!Number.isSafeInteger(start) || start < 0 || start >= size || end < start) {
      throw new StorageError(`range ${range.start}-${range.end ?? ''} of ${key} is not satisfiable: the object has ${size} bytes`);
    }
    return { start, end };
  }

  /** Reads straight from the file into the caller's buffers. */
  async getReader(key: string, options: { signal?: AbortSignal; range?: ByteRange } = {}): Promise<{ head: ObjectHead; body: BodyReader }> {
    options.signal?.throwIfAborted();
    const obj = await this.openObject(key);
    const signal = options.signal;
    let range: { start: number; end: number };
    try {
      range = this.rangeOf(key, obj.head.size, options.range);
    } catch (err) {
      await obj.fh.close();
      throw err;
    }
    let position = obj.bodyOffset + range.start;
    const stop = obj.bodyOffset + range.end + 1;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      obj.fh.close().catch(() => undefined);
    };
    const body: BodyReader = {
      read: async (into) => {
        signal?.throwIfAborted();
        let n = 0;
        while (n < into.length && !closed) {
          const want = Math.min(into.length - n, stop - position);
          const { bytesRead } = want <= 0 ? { bytesRead: 0 } : await this.fsOp('read', key, () => obj.fh.read(into, n, want, position));
          if (bytesRead === 0) {
            close();
            break;
          }
          n += bytesRead;
          position += bytesRead;
        }
        return n;
      },
      destroy: close,
    };
    return { head: obj.head, body };
  }

  /** null when missing, also when the bucket is missing (as on S3, whose HEAD answers carry no error code). */
  async head(key: string): Promise<ObjectHead | null> {
    const obj = await this.openObject(key, false);
    if (obj === null) return null;
    await obj.fh.close();
    return obj.head;
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ListEntry> {
    yield* this.walk(this.bucketDir, '', prefix, options.delimiter === '/', options.startAfter ?? '');
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.requireBucket('delete', keys[0] ?? '');
    const dirs = new Set<string>();
    for (let i = 0; i < keys.length; i += PARALLEL) {
      await Promise.all(
        keys.slice(i, i + PARALLEL).map(async (key) => {
          let file: string;
          try {
            file = this.fileOf(key);
          } catch {
            return; // a key this backend cannot store does not exist here
          }
          try {
            await fsp.unlink(file);
            dirs.add(path.dirname(file));
          } catch (err) {
            if (!isMissing(err)) throw this.wrap(err, 'delete', key);
          }
        }),
      );
    }
    // Drop directories left empty, so that they neither list as prefixes nor pile up.
    for (const start of dirs) {
      for (let d = start; d.length > this.bucketDir.length; d = path.dirname(d)) {
        try {
          await fsp.rmdir(d);
        } catch {
          break; // not empty, already gone, or being refilled by a put
        }
      }
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The file of a key; StorageError for keys this layout cannot hold. */
  private fileOf(key: string): string {
    if (key === '' || key.endsWith('/')) throw new StorageError(`the local backend cannot store the key ${JSON.stringify(key)} (empty, or ends in '/')`);
    if (Buffer.from(key, 'utf8').toString('utf8') !== key) throw new StorageError(`the key ${JSON.stringify(key)} is not valid Unicode`);
    const parts = key.split('/');
    const last = parts.pop() ?? '';
    const file = path.join(this.bucketDir, ...parts.map((p) => escapeKeyPart(p) + DIR_SUFFIX), escapeKeyPart(last));
    if (!file.startsWith(this.bucketDir + path.sep)) throw new StorageError(`the key ${JSON.stringify(key)} maps outside ${this.description}`);
    return file;
  }

  private async openTemp(key: string, temp: string): Promise<{ fh: FileHandle; createdDirs: boolean }> {
    let createdDirs = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return { fh: await fsp.open(temp, 'wx', 0o644), createdDirs };
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' || attempt >= 4) throw this.wrap(err, 'create a temp file for', key);
      }
      // The directory is missing (or a concurrent delete just removed it, empty): create it again.
      await this.requireBucket('write', key);
      await this.fsOp('create the directory of', key, () => fsp.mkdir(path.dirname(temp), { recursive: true }));
      createdDirs = true;
    }
  }

  private async copyStream(key: string, fh: FileHandle, stream: Readable, onProgress: ((sent: number) => void) | undefined): Promise<number> {
    let sent = 0;
    try {
      for await (const chunk of stream as AsyncIterable<unknown>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Uint8Array);
        await writeAll(fh, buf);
        sent += buf.length;
        onProgress?.(sent);
      }
    } catch (err) {
      stream.destroy();
      if (err instanceof LibsqlctlError) throw err;
      throw new StorageError(`writing ${key} to ${this.description} failed: ${(err as Error).message}`, { cause: err });
    }
    return sent;
  }

  private openObject(key: string): Promise<OpenObject>;
  private openObject(key: string, missingThrows: false): Promise<OpenObject | null>;
  private async openObject(key: string, missingThrows = true): Promise<OpenObject | null> {
    const file = this.fileOf(key);
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      if (!isMissing(err)) throw this.wrap(err, 'open', key);
      if (!missingThrows) return null;
      await this.requireBucket('read', key);
      throw new ObjectNotFoundError(key, this.description);
    }
    try {
      const prefix = await readExactly(fh, PREFIX_BYTES, 0);
      const jsonLength = prefix?.subarray(0, MAGIC.length).equals(MAGIC) === true ? prefix.readUInt32BE(MAGIC.length) : -1;
      const json = jsonLength >= 0 && jsonLength <= MAX_HEADER_BYTES ? await readExactly(fh, jsonLength, PREFIX_BYTES) : null;
      const parsed = json === null ? null : (JSON.parse(json.toString('utf8')) as { metadata?: unknown });
      if (parsed === null || typeof parsed.metadata !== 'object' || parsed.metadata === null) {
        throw new StorageError(`${file} is not an object file of the local backup backend (bad header)`);
      }
      const stat = await fh.stat();
      const bodyOffset = PREFIX_BYTES + jsonLength;
      const metadata = parsed.metadata as ObjectMetadata;
      return { fh, metadata, bodyOffset, head: { key, size: stat.size - bodyOffset, lastModified: stat.mtime, metadata } };
    } catch (err) {
      await fh.close();
      throw this.wrap(err, 'read', key);
    }
  }

  /** Size and time of one listed file; null when it vanished meanwhile. */
  private async info(key: string, file: string): Promise<ObjectInfo | null> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.wrap(err, 'list', key);
    }
    try {
      const prefix = await readExactly(fh, PREFIX_BYTES, 0);
      if (prefix?.subarray(0, MAGIC.length).equals(MAGIC) !== true) throw new StorageError(`${file} is not an object file of the local backup backend (bad header)`);
      const stat = await fh.stat();
      return { key, size: stat.size - PREFIX_BYTES - prefix.readUInt32BE(MAGIC.length), lastModified: stat.mtime };
    } finally {
      await fh.close();
    }
  }

  private async readDir(dir: string, dirKey: string): Promise<DirEntry[] | null> {
    let dirents;
    try {
      dirents = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (!isMissing(err)) throw this.wrap(err, 'list', dirKey);
      if (dirKey === '') await this.requireBucket('list', dirKey);
      return null; // removed (left empty by a delete) since its parent was read
    }
    const entries: DirEntry[] = [];
    for (const d of dirents) {
      if (d.isDirectory() && d.name.endsWith(DIR_SUFFIX)) {
        const part = unescapeKeyPart(d.name.slice(0, -DIR_SUFFIX.length));
        if (part !== null) entries.push({ kind: 'dir', key: `${dirKey}${part}/`, sortKey: Buffer.from(`${dirKey}${part}/`), file: path.join(dir, d.name) });
      } else if (d.isFile()) {
        const part = unescapeKeyPart(d.name);
        if (part !== null && part !== '') entries.push({ kind: 'file', key: dirKey + part, sortKey: Buffer.from(dirKey + part), file: path.join(dir, d.name) });
      }
    }
    // Every key below `p/` starts with `p/`, so sorting the entries of each directory and descending
    // in place gives the whole listing in byte order.
    return entries.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
  }

  private async *walk(dir: string, dirKey: string, prefix: string, fold: boolean, after: string): AsyncGenerator<ListEntry> {
    const entries = await this.readDir(dir, dirKey);
    if (entries === null) return;
    for (let i = 0; i < entries.length; i += PARALLEL) {
      const chunk = entries.slice(i, i + PARALLEL);
      // Start reading the chunk's file headers together; yield in order.
      const infos = chunk.map((e) => {
        if (e.kind !== 'file' || !e.key.startsWith(prefix) || compareKeys(e.key, after) <= 0) return null;
        const p = this.info(e.key, e.file);
        p.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
        return p;
      });
      for (const [j, e] of chunk.entries()) {
        if (e.kind === 'file') {
          const info = await infos[j];
          if (info !== null && info !== undefined) yield { kind: 'object', ...info };
          continue;
        }
        if (!e.key.startsWith(prefix) && !prefix.startsWith(e.key)) continue;
        if (!after.startsWith(e.key) && compareKeys(e.key, after) < 0) continue; // everything below sorts before `after`
        if (fold && e.key.startsWith(prefix) && e.key.length > prefix.length) {
          if (compareKeys(e.key, after) > 0 && (await this.holdsObject(e.file, e.key))) yield { kind: 'prefix', prefix: e.key };
          continue;
        }
        yield* this.walk(e.file, e.key, prefix, fold, after);
      }
    }
  }

  /** Whether a directory holds an object, directly or further down (empty ones do not list). */
  private async holdsObject(dir: string, dirKey: string): Promise<boolean> {
    const entries = await this.readDir(dir, dirKey);
    if (entries === null) return false;
    if (entries.some((e) => e.kind === 'file')) return true;
    for (const e of entries) if (await this.holdsObject(e.file, e.key)) return true;
    return false;
  }

  private async requireBucket(op: string, key: string): Promise<void> {
    try {
      if ((await fsp.stat(this.bucketDir)).isDirectory()) return;
    } catch (err) {
      if (!isMissing(err)) throw this.wrap(err, op, key);
    }
    throw new StorageError(`cannot ${op} ${key === '' ? 'objects' : key}: the bucket directory ${this.description} does not exist`, {
      hint: 'create it (the server does so on start) or check LIBSQL_BOTTOMLESS_ENDPOINT and LIBSQL_BOTTOMLESS_BUCKET',
    });
  }

  private async fsOp<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(err, op, key);
    }
  }

  private wrap(err: unknown, op: string, key: string): LibsqlctlError {
    if (err instanceof LibsqlctlError) return err;
    const what = key === '' ? this.description : `${key} in ${this.description}`;
    return new StorageError(`cannot ${op} ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
