/**
 * Fixtures for the uploader tests: a small reader that rebuilds a database from bottomless objects
 * (independent of src/backup/restore: format modules + the engine's replay), a storage wrapper that
 * counts requests and fails on demand, a fake clock, and helpers to drive a namespace.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { decompress } from '../../../src/backup/format/codec.js';
import { generationTimeMs } from '../../../src/backup/format/generation-id.js';
import {
  COMPRESSIONS,
  dbPrefix,
  depKey,
  durableMarkerKey,
  generationPrefix,
  metaKey,
  parseBatchName,
  parseCompression,
  parseGenerationPrefix,
  snapshotKey,
} from '../../../src/backup/format/layout.js';
import { decodeCommitTimes, decodeDep, decodeDurableMarker, decodeMeta, decodeSnapshotMetadata, META_BATCH_COMMITS, type DurableMarker } from '../../../src/backup/format/objects.js';
import { ChecksumChain, parseBatchFrames } from '../../../src/backup/format/wal-frames.js';
import type { BackupStorage, ListEntry, ListOptions, ObjectHead, PutBody, PutOptions, StoredObject } from '../../../src/backup/storage/storage.js';
import { ObjectNotFoundError, StorageError } from '../../../src/backup/storage/storage.js';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import type { Timers } from '../../../src/backup/uploader/clock.js';
import { NamespaceBackup } from '../../../src/backup/uploader/namespace-backup.js';
import type { BackupRole, UploaderConfig, UploaderTunables } from '../../../src/backup/uploader/options.js';
import type { SqlConnection } from '../../../src/engine/connection.js';
import { createLogger, type Logger, silentLogger } from '../../../src/engine/logger.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import { replayIntoFile, type ReplayFrame } from '../../../src/engine/wal/replay.js';
import { bytes, EngineScope, framesOf, inspectFile, run, type NsOptions } from '../../helpers/engine-log.js';
import { crc64Of } from './restore-fixtures.js';

export class FakeClock {
  constructor(public t = 1_750_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Real timers that know how many are armed. */
export class CountingTimers implements Timers {
  readonly active = new Set<unknown>();
  setTimeout(fn: () => void, ms: number): unknown {
    const t: NodeJS.Timeout = setTimeout(() => {
      this.active.delete(t);
      fn();
    }, ms);
    t.unref();
    this.active.add(t);
    return t;
  }
  clearTimeout(handle: unknown): void {
    this.active.delete(handle);
    clearTimeout(handle as NodeJS.Timeout);
  }
}

/** A storage that counts requests and, while `failing(key)` says so, fails puts. */
export class TestStorage implements BackupStorage {
  requests = 0;
  puts: { key: string; metadata: Record<string, string> }[] = [];
  failing: (key: string) => boolean = () => false;
  failures = 0;

  constructor(readonly inner: BackupStorage) {}

  get description(): string {
    return this.inner.description;
  }
  ensureBucket(): Promise<void> {
    return this.inner.ensureBucket();
  }
  async put(key: string, body: PutBody, options?: PutOptions): Promise<void> {
    this.requests++;
    if (this.failing(key)) {
      this.failures++;
      if (typeof body === 'function') body().destroy();
      throw new StorageError(`injected failure for ${key}`);
    }
    await this.inner.put(key, body, options);
    this.puts.push({ key, metadata: { ...(options?.metadata ?? {}) } });
  }
  get(key: string, options?: { range?: { start: number; end?: number } }): Promise<StoredObject> {
    this.requests++;
    return this.inner.get(key, options);
  }
  getStream(key: string): Promise<{ head: ObjectHead; body: Readable }> {
    this.requests++;
    return this.inner.getStream(key);
  }
  head(key: string): Promise<ObjectHead | null> {
    this.requests++;
    return this.inner.head(key);
  }
  list(prefix: string, options?: ListOptions): AsyncIterable<ListEntry> {
    this.requests++;
    return this.inner.list(prefix, options);
  }
  delete(keys: readonly string[]): Promise<void> {
    this.requests++;
    return this.inner.delete(keys);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Keys under `prefix`, in listing order. */
export async function keysOf(storage: BackupStorage, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of storage.list(prefix)) if (e.kind === 'object') out.push(e.key);
  return out;
}

/** Generation ids of `db`, newest first. */
export async function generationsOf(storage: BackupStorage, db: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of storage.list(dbPrefix(db), { delimiter: '/' })) {
    if (e.kind !== 'prefix') continue;
    const g = parseGenerationPrefix(db, e.prefix);
    if (g) out.push(g);
  }
  return out;
}

async function maybeGet(storage: BackupStorage, key: string): Promise<StoredObject | null> {
  try {
    return await storage.get(key);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return null;
    throw err;
  }
}

export async function depOf(storage: BackupStorage, db: string, gen: string): Promise<string | null> {
  const o = await maybeGet(storage, depKey(db, gen));
  return o ? decodeDep(o.body, o.key) : null;
}

export async function markerOf(storage: BackupStorage, db: string, gen: string): Promise<DurableMarker | null> {
  const o = await maybeGet(storage, durableMarkerKey(db, gen));
  return o ? decodeDurableMarker(o.body, o.key) : null;
}

export async function snapshotOf(storage: BackupStorage, db: string, gen: string): Promise<StoredObject | null> {
  for (const c of COMPRESSIONS) {
    const o = await maybeGet(storage, snapshotKey(db, gen, c));
    if (o) return o;
  }
  return null;
}

export interface Restored {
  /** Generations used, newest first (the last one holds the snapshot, or starts from nothing). */
  chain: string[];
  snapshotFrom: string | null;
  frames: number;
  batches: number;
}

/**
 * Rebuilds `db` into `out`: the newest generation (or the newest created at or before `atMs`),
 * `.dep` back to a snapshot, then every batch in order — contiguous from frame 1, checksum chain
 * from `.meta`, whole transactions only; `atMs` cuts at the last commit not after it.
 */
export async function restoreFromStore(storage: BackupStorage, db: string, out: string, opts: { atMs?: number } = {}): Promise<Restored> {
  const gens = await generationsOf(storage, db);
  const chosen = opts.atMs === undefined ? gens[0] : gens.find((g) => generationTimeMs(g) <= opts.atMs!);
  if (!chosen) throw new Error('no generation to restore');
  const chain: string[] = [];
  let snapshot: StoredObject | null = null;
  for (let g: string | null = chosen; g !== null; g = await depOf(storage, db, g)) {
    chain.push(g);
    if (chain.length > 100) throw new Error('chain too long');
    snapshot = await snapshotOf(storage, db, g);
    if (snapshot) break;
  }
  fs.rmSync(out, { force: true });
  if (snapshot) {
    const c = parseCompression(snapshot.key.slice(snapshot.key.lastIndexOf('.') + 1))!;
    const raw = await decompress(c, snapshot.body, snapshot.key);
    const info = decodeSnapshotMetadata(snapshot.metadata, snapshot.key);
    if (!info) throw new Error(`snapshot ${snapshot.key} has no libsqlctl metadata`);
    if (crc64Of(raw).hex !== info.digest.hex || info.digest.kind !== 'crc64') throw new Error(`snapshot ${snapshot.key}: digest mismatch`);
    if (Math.ceil(raw.length / 4096) !== info.pageCount) throw new Error(`snapshot ${snapshot.key}: page count mismatch`);
    fs.writeFileSync(out, raw);
  }
  const result: Restored = { chain, snapshotFrom: snapshot ? chain.at(-1)! : null, frames: 0, batches: 0 };
  for (const g of [...chain].reverse()) {
    const frames = await generationFrames(storage, db, g, g === chosen ? opts.atMs : undefined, result);
    if (frames.length > 0) replayIntoFile(out, frames);
    else if (!fs.existsSync(out)) fs.writeFileSync(out, Buffer.alloc(0));
  }
  return result;
}

async function generationFrames(storage: BackupStorage, db: string, gen: string, atMs: number | undefined, result: Restored): Promise<ReplayFrame[]> {
  const names = (await keysOf(storage, generationPrefix(db, gen))).map((k) => k.slice(k.lastIndexOf('/') + 1));
  const batches = names.map((n) => ({ n, b: parseBatchName(n) })).filter((x) => x.b !== null);
  const metaObj = await maybeGet(storage, metaKey(db, gen));
  if (!metaObj) {
    if (batches.length > 0) throw new Error(`generation ${gen} has batches but no .meta`);
    return [];
  }
  const meta = decodeMeta(metaObj.body, metaObj.key);
  const chain = new ChecksumChain(meta.checksum, 'detect');
  const frames: ReplayFrame[] = [];
  let expected = 1;
  for (const { n, b } of batches) {
    if (b!.first !== expected) throw new Error(`generation ${gen}: gap or overlap at ${n} (expected frame ${expected})`);
    const key = generationPrefix(db, gen) + n;
    const o = await storage.get(key);
    const parsed = parseBatchFrames(await decompress(b!.compression, o.body, key), meta.pageSize, key);
    if (parsed.frames.length !== b!.last - b!.first + 1) throw new Error(`${key}: ${parsed.frames.length} frames`);
    chain.verifyBatch(parsed.frames, key, b!.first);
    if (parsed.frames.at(-1)!.sizeAfter === 0) throw new Error(`${key} does not end with a commit frame`);
    const commits = decodeCommitTimes(o.metadata[META_BATCH_COMMITS] ?? '', b!.first, key, b!.last);
    let keep = parsed.frames.length;
    if (atMs !== undefined) {
      const ok = commits.filter((c) => c.unixMs <= atMs);
      keep = ok.length === 0 ? 0 : ok.at(-1)!.lastFrame - b!.first + 1;
    }
    for (const f of parsed.frames.slice(0, keep)) frames.push({ pageNo: f.pageNo, sizeAfter: f.sizeAfter, page: Buffer.from(f.page) });
    result.frames += keep;
    result.batches += 1;
    expected = b!.last + 1;
    if (keep < parsed.frames.length) break;
  }
  return frames;
}

let seed = 1;

/** Commits `txns` transactions of `rows` rows each into table t (created when missing). */
export async function writeRows(conn: SqlConnection, txns: number, rows = 2, blob = 600): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
  for (let i = 0; i < txns; i++) {
    await run(conn, 'BEGIN');
    for (let r = 0; r < rows; r++) {
      seed += 1;
      await run(conn, 'INSERT INTO t (v, b) VALUES (?, ?)', [`row-${seed}`, bytes(seed, blob)]);
    }
    await run(conn, 'COMMIT');
  }
}

export const DB = 'ns-test:default';

/** The primary role of `ns`, its checkpoints or database file replaced where given. */
export function roleWith(ns: NamespaceDb, over: { checkpoint?: BackupRole['checkpoint']; databaseFile?: () => BackupRole['databaseFile'] }): BackupRole {
  const real = framesOf(ns);
  return {
    get logId() {
      return real.logId;
    },
    replicationIndex: () => real.replicationIndex(),
    subscribe: (s) => real.subscribe(s),
    addCheckpointParticipant: (p) => real.addCheckpointParticipant(p),
    frameSource: () => real.frameSource(),
    checkpoint: over.checkpoint ?? (() => real.checkpoint()),
    get databaseFile() {
      return over.databaseFile ? over.databaseFile() : real.databaseFile;
    },
  };
}

/**
 * The primary role, with a database file that looks 1 GiB large (zeros past its end) while
 * `slow.on`: a snapshot then takes far longer than any checkpoint waits.
 */
export function slowSnapshotRole(ns: NamespaceDb): { role: BackupRole; slow: { on: boolean } } {
  const slow = { on: false };
  const role = roleWith(ns, {
    databaseFile: () => {
      const f = framesOf(ns).databaseFile;
      return {
        size: () => (slow.on ? 1 << 30 : f.size()),
        read: (buf: Uint8Array, position: number) => {
          const n = f.read(buf, position);
          if (!slow.on || n === buf.length) return n;
          buf.fill(0, n);
          return buf.length;
        },
      };
    },
  });
  return { role, slow };
}

export const CONFIG: UploaderConfig = {
  compression: 'gz',
  batchIntervalMs: 60_000,
  batchMaxFrames: 10_000,
  parallelMax: 4,
  skipSnapshot: false,
  skipShutdownUpload: false,
};

/** Fast retries, so a store that comes back is used again within milliseconds. */
export const FAST: Partial<UploaderTunables> = { retryBaseMs: 2, retryMaxMs: 20, markerDebounceMs: 1000 };

/**
 * One test's world: temp dirs, namespaces (EngineScope), a local store behind TestStorage, the fake
 * clock and counting timers shared by every backup attached.
 */
export class Harness {
  readonly scope = new EngineScope();
  readonly clock = new FakeClock();
  readonly timers = new CountingTimers();
  readonly root: string;
  readonly storage: TestStorage;
  /** The logger of backups attached from now on (default: silent, or UPLOADER_TEST_LOG's level). */
  logger: Logger | null = null;
  private readonly backups: NamespaceBackup[] = [];

  constructor(inner?: BackupStorage) {
    this.root = this.scope.tempDir();
    this.storage = new TestStorage(inner ?? new LocalStorage({ dir: join(this.root, 'store'), bucket: 'bucket' }));
  }

  open(nsDir: string, opts: NsOptions = {}): Promise<NamespaceDb> {
    return this.scope.open(nsDir, opts);
  }

  async attach(ns: NamespaceDb, config: Partial<UploaderConfig> = {}, options: Partial<UploaderTunables> = {}, role: BackupRole = framesOf(ns)): Promise<NamespaceBackup> {
    await this.storage.ensureBucket();
    const b = await NamespaceBackup.attach({
      role,
      paths: ns.paths,
      storage: this.storage,
      config: { ...CONFIG, ...config },
      dbName: DB,
      logger: this.logger ?? (process.env.UPLOADER_TEST_LOG ? createLogger({ level: process.env.UPLOADER_TEST_LOG }) : silentLogger()),
      clock: this.clock,
      timers: this.timers,
      options: { ...FAST, ...options },
    });
    this.backups.push(b);
    return b;
  }

  /**
   * What a kill -9 leaves on disk: the namespace's files copied (same bytes and times) while it is
   * open and idle, into a new directory.
   */
  crashCopy(nsDir: string): string {
    const to = join(this.root, `copy-${Math.random().toString(16).slice(2)}`);
    fs.cpSync(nsDir, to, { recursive: true, filter: (p) => !p.endsWith('-shm') });
    // The engine compares the database file's mtime with the one it recorded: keep it exactly.
    for (const name of ['data', 'data-wal']) {
      const src = join(nsDir, name);
      if (!fs.existsSync(src)) continue;
      const st = fs.statSync(src);
      fs.utimesSync(join(to, name), st.atimeMs / 1000, st.mtimeMs / 1000);
    }
    return to;
  }

  async dispose(): Promise<void> {
    for (const b of this.backups.splice(0)) b.kill();
    await this.scope.dispose();
  }
}

/** Restores the store into a temp file and returns its dump (integrity checked). */
export async function restoredDump(h: Harness, opts: { atMs?: number } = {}): Promise<{ dump: string; restored: Restored }> {
  const out = join(h.root, `restored-${Math.random().toString(16).slice(2)}.db`);
  const restored = await restoreFromStore(h.storage, DB, out, opts);
  const insp = inspectFile(out);
  if (insp.integrity !== 'ok') throw new Error(`restored database fails its integrity check: ${insp.integrity}`);
  return { dump: insp.dump, restored };
}
