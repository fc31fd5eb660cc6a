/**
 * Parts of the uploader on their own: the upload queue (parallelism, retries, idle), the state
 * file, the attach planner's decisions, and a snapshot job (hash, page count, abort).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStorage } from '../../../src/backup/storage/local-storage.js';
import type { PutBody, PutOptions } from '../../../src/backup/storage/storage.js';
import { ErrorTracker } from '../../../src/backup/uploader/clock.js';
import { planAttach } from '../../../src/backup/uploader/restart.js';
import { SnapshotAborted, SnapshotJob } from '../../../src/backup/uploader/snapshot.js';
import { StagingDir } from '../../../src/backup/uploader/staging.js';
import { readState, writeState, type UploaderState } from '../../../src/backup/uploader/state-file.js';
import { UploadQueue } from '../../../src/backup/uploader/upload-queue.js';
import { NamespacePaths } from '../../../src/engine/data-dir.js';
import type { CaptureState } from '../../../src/engine/log/capture-state.js';
import { silentLogger } from '../../../src/engine/logger.js';
import { bytes } from '../../helpers/engine-log.js';
import { CountingTimers, Harness, TestStorage } from './uploader-fixtures.js';
import { crc64GoIso } from '../../../src/engine/wal/crc64.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => h.dispose());

class SlowStorage extends TestStorage {
  running = 0;
  maxRunning = 0;
  override async put(key: string, body: PutBody, options?: PutOptions): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await new Promise((resolve) => setImmediate(resolve));
    try {
      await super.put(key, body, options);
    } finally {
      this.running--;
    }
  }
}

describe('upload queue', () => {
  it('runs at most `parallel` puts, retries failures until they succeed, then is idle with no timer', async () => {
    const storage = new SlowStorage(new LocalStorage({ dir: join(h.root, 'store'), bucket: 'b' }));
    await storage.ensureBucket();
    let failuresLeft = 7;
    storage.failing = () => failuresLeft-- > 0;
    const timers = new CountingTimers();
    const errors = new ErrorTracker(silentLogger(), 'test');
    const queue = new UploadQueue({ storage, parallel: 3, timers, errors, retryBaseMs: 1, retryMaxMs: 5 });
    const done: string[] = [];
    for (let i = 0; i < 20; i++) queue.push({ key: `k${i}`, kind: 'batch', load: () => ({ body: Buffer.from(String(i)) }), onDone: () => done.push(`k${i}`) });
    await queue.idle();
    expect(done.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `k${i}`).sort());
    expect(storage.maxRunning).toBeLessThanOrEqual(3);
    expect(storage.maxRunning).toBeGreaterThan(1);
    expect(errors.count).toBe(7);
    expect(errors.lastError).toBeNull(); // recovered
    expect(queue.pending).toBe(0);
    expect(timers.active.size).toBe(0);
    expect((await storage.inner.get('k13')).body.toString()).toBe('13');
  });

  it('stop() releases waiters and starts nothing more', async () => {
    const storage = new TestStorage(new LocalStorage({ dir: join(h.root, 'store'), bucket: 'b' }));
    await storage.ensureBucket();
    storage.failing = () => true;
    const timers = new CountingTimers();
    const queue = new UploadQueue({ storage, parallel: 1, timers, errors: new ErrorTracker(silentLogger(), 'test'), retryBaseMs: 1000, retryMaxMs: 1000 });
    queue.push({ key: 'a', kind: 'batch', load: () => ({ body: Buffer.from('a') }), onDone: () => undefined });
    await expect.poll(() => storage.failures).toBe(1);
    expect(timers.active.size).toBe(1); // the retry
    const idle = queue.idle();
    queue.stop();
    await idle;
    expect(timers.active.size).toBe(0);
    queue.push({ key: 'b', kind: 'batch', load: () => ({ body: Buffer.from('b') }), onDone: () => undefined });
    expect(storage.requests).toBe(1);
  });
});

function state(over: Partial<UploaderState> = {}): UploaderState {
  const gen = 'e4d90616-e967-7000-8000-000000000000';
  return {
    version: 1,
    dbName: 'db',
    logId: '11111111-1111-4111-8111-111111111111',
    current: gen,
    newestGeneration: gen,
    lastFrameNo: 10n,
    awaitingFresh: null,
    gensSinceSnapshot: 0,
    walBytesSinceSnapshot: 0,
    cleanShutdown: false,
    generations: [
      {
        id: gen,
        logId: '11111111-1111-4111-8111-111111111111',
        parent: null,
        base: '0',
        coords: { walGeneration: 1, salt1: 5, salt2: 6, bigEndian: false, seed: [1, 2], pageSize: 4096, synthetic: false },
        stagedIndex: 10,
        checksum: [3, 4],
        metaUploaded: true,
        depUploaded: false,
        snapshot: 'uploaded',
        snapshotRequired: true,
        snapshotInfo: null,
        counterUploaded: true,
        baseDurable: true,
        sealed: false,
        damaged: false,
      },
    ],
    ...over,
  };
}

function capture(over: Partial<CaptureState> = {}): CaptureState {
  return { logId: '11111111-1111-4111-8111-111111111111', salt1: 5, salt2: 6, genStartFrameNo: 1n, walGeneration: 1, checkpointedFrames: null, dbIdentity: null, ...over };
}

describe('state file and attach plan', () => {
  it('round-trips the state atomically; a damaged file is refused', () => {
    const paths = new NamespacePaths(join(h.root, 'ns'));
    expect(readState(paths.bottomlessState)).toBeNull();
    writeState(paths.bottomlessState, state());
    expect(readState(paths.bottomlessState)).toEqual(state());
    expect(fs.readdirSync(paths.bottomless)).toEqual(['state.json']);
    fs.writeFileSync(paths.bottomlessState, JSON.stringify({ ...JSON.parse(fs.readFileSync(paths.bottomlessState, 'utf8')), current: 'nope' }));
    expect(() => readState(paths.bottomlessState)).toThrow(/current/);
  });

  it("reads a staged snapshot's digest: ours (CRC-64), and the sha256 of state files written before it", () => {
    const paths = new NamespacePaths(join(h.root, 'ns-digest'));
    const info = { name: 'db.gz', digest: { kind: 'crc64' as const, hex: '0123456789abcdef' }, pageCount: 5, changeCounter: 7, bytes: 99 };
    const withInfo = (snapshotInfo: unknown): UploaderState => ({ ...state(), generations: [{ ...state().generations[0]!, snapshot: 'staged', snapshotInfo: snapshotInfo as typeof info }] });
    writeState(paths.bottomlessState, withInfo(info));
    expect(readState(paths.bottomlessState)?.generations[0]?.snapshotInfo).toEqual(info);
    const { digest: _d, ...rest } = info;
    writeState(paths.bottomlessState, withInfo({ ...rest, sha256: 'ab'.repeat(32) }));
    expect(readState(paths.bottomlessState)?.generations[0]?.snapshotInfo).toEqual({ ...rest, digest: { kind: 'sha256', hex: 'ab'.repeat(32) } });
    for (const bad of [{ ...rest }, { ...rest, digest: { kind: 'md5', hex: 'ab' } }, { ...rest, digest: { kind: 'crc64', hex: 'ab'.repeat(32) } }]) {
      writeState(paths.bottomlessState, withInfo(bad));
      expect(() => readState(paths.bottomlessState)).toThrow(/digest/);
    }
  });

  it('continues, splits at a newer WAL generation, or starts fresh', () => {
    const engine = { logId: '11111111-1111-4111-8111-111111111111', replicationIndex: 14n, capture: capture(), logStart: 0n };
    expect(planAttach(state(), engine, 'db')).toEqual({ kind: 'continue', from: 11n, splitAt: null });
    expect(planAttach(state(), { ...engine, capture: capture({ walGeneration: 2, salt1: 9, genStartFrameNo: 13n }) }, 'db')).toEqual({ kind: 'continue', from: 11n, splitAt: 13n });
    // Fresh: the database file is where the last checkpoint left it (frame 12 here).
    const ckpt = capture({ walGeneration: 2, salt1: 9, genStartFrameNo: 11n, checkpointedFrames: 2 });
    expect(planAttach(null, { ...engine, capture: ckpt }, 'db')).toMatchObject({ kind: 'fresh', base: 12n });
    expect(planAttach(state({ logId: '22222222-2222-4222-8222-222222222222' }), engine, 'db')).toMatchObject({ kind: 'fresh', base: 0n });
    expect(planAttach(state({ dbName: 'other' }), engine, 'db')).toMatchObject({ kind: 'fresh' });
    expect(planAttach(state({ awaitingFresh: 'cap' }), engine, 'db')).toMatchObject({ kind: 'fresh', reason: 'cap' });
    expect(planAttach(state({ lastFrameNo: 20n }), engine, 'db')).toMatchObject({ kind: 'fresh' });
    // Frames after the last staged one compacted away: fresh; and if those after the file are gone too, wait.
    expect(planAttach(state(), { ...engine, logStart: 12n }, 'db')).toMatchObject({ kind: 'await' });
    expect(planAttach(state(), { ...engine, logStart: 12n, capture: ckpt }, 'db')).toMatchObject({ kind: 'fresh', base: 12n });
    expect(planAttach(state(), { ...engine, capture: null }, 'db')).toMatchObject({ kind: 'await' });
  });
});

describe('snapshot job', () => {
  const file = (data: Buffer) => ({ size: () => data.length, read: (buf: Uint8Array, pos: number) => data.copy(buf, 0, pos, Math.min(data.length, pos + buf.length)) });

  it('stages the file compressed, with its digest (CRC-64), page count and change counter', async () => {
    const data = bytes(7, 4096 * 5);
    data.writeUInt16BE(4096, 16);
    data.writeUInt32BE(77, 24);
    const staging = new StagingDir(new NamespacePaths(join(h.root, 'ns')));
    const job = new SnapshotJob({ gen: 'e4d90616-e967-7000-8000-000000000001', file: file(data), staging, compression: 'gz', chunkBytes: 3000 });
    const info = await job.done;
    expect(info).toMatchObject({ name: 'db.gz', pageCount: 5, changeCounter: 77, digest: { kind: 'crc64', hex: crc64GoIso(data).toString(16).padStart(16, '0') } });
    const staged = staging.file('e4d90616-e967-7000-8000-000000000001', 'db.gz');
    expect(fs.statSync(staged).size).toBe(info.bytes);
  });

  it('an abort while reading stages nothing', async () => {
    const data = bytes(8, 4096 * 64);
    const staging = new StagingDir(new NamespacePaths(join(h.root, 'ns')));
    const gen = 'e4d90616-e967-7000-8000-000000000002';
    const job = new SnapshotJob({ gen, file: file(data), staging, compression: 'raw', chunkBytes: 4096 });
    job.abort('a checkpoint');
    await expect(job.done).rejects.toBeInstanceOf(SnapshotAborted);
    expect(staging.scan().size).toBe(0);
  });
});
