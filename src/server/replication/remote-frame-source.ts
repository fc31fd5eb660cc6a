/**
 * The primary's log as a FrameSource for the replica's applier (ReplicaRole.follow): LogEntries
 * frames grouped into whole transactions, NEED_SNAPSHOT passed on, snapshots downloaded into
 * `replica-snapshot.tmp` first (streamed to disk, so a large one never sits in memory) and read
 * from there by the applier. One source lives for one Hello session.
 */
import { closeSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { LibsqlctlError } from '../../errors.js';
import type { NamespacePaths } from '../../engine/data-dir.js';
import type { FrameSource, SnapshotRef } from '../../engine/pipeline/frame-source.js';
import type { LoggedTransaction } from '../../engine/pipeline/transactions.js';
import { decodeFrame, FRAME_SIZE, type Frame } from '../../engine/wal/frame.js';
import { readFully, writeFully } from '../../engine/wal/fs-util.js';
import type { HelloResponse, WireFrame } from '../../rpc/messages.js';
import { GrpcError, GrpcStatus } from '../../rpc/service.js';
import type { PrimaryClient } from './primary-client.js';

/** The primary's log no longer holds the frames asked for (code NEED_SNAPSHOT, as ReplicaRole expects). */
export class NeedSnapshot extends LibsqlctlError {
  constructor() {
    super('NEED_SNAPSHOT', 'the primary compacted the frames the replica needs: a snapshot is needed');
  }
}

/** The primary sent something that is not a valid continuation of its log. */
export class PrimaryProtocolError extends LibsqlctlError {
  constructor(message: string) {
    super('PRIMARY_PROTOCOL', message);
  }
}

function frameOf(wire: WireFrame): Frame {
  if (wire.data.length !== FRAME_SIZE) throw new PrimaryProtocolError(`the primary sent a frame of ${wire.data.length} bytes (expected ${FRAME_SIZE})`);
  const data = wire.data;
  return decodeFrame(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

function isStatus(err: unknown, status: GrpcStatus, message?: string): boolean {
  return err instanceof GrpcError && err.status === status && (message === undefined || err.message === message);
}

/** A BatchLogEntries answer this long means the replica is behind: fetch the next batch at once. */
const CATCH_UP_FRAMES = 1024;

export interface RemoteSourceHooks {
  /** The newest commit the replica knows the primary has (frames seen, or Hello's index). */
  onPrimaryIndex?(index: bigint): void;
}

export class RemoteFrameSource implements FrameSource {
  readonly logId: string;
  #primaryIndex: bigint | null;

  constructor(
    private readonly client: PrimaryClient,
    private readonly namespace: string,
    hello: HelloResponse,
    private readonly paths: NamespacePaths,
    private readonly hooks: RemoteSourceHooks = {},
  ) {
    this.logId = hello.logId;
    this.#primaryIndex = hello.currentReplicationIndex ?? null;
  }

  replicationIndex(): bigint | null {
    return this.#primaryIndex;
  }

  startFrameNo(): bigint {
    return 0n;
  }

  /**
   * Catch-up first: BatchLogEntries (≥ 1024 frames a message, the next batch fetched while this one
   * is applied) while the primary has that much for us; then LogEntries, one frame a message, live.
   */
  async *transactions(from: bigint, signal?: AbortSignal): AsyncGenerator<LoggedTransaction> {
    const local = new AbortController();
    const all = signal ? AbortSignal.any([signal, local.signal]) : local.signal;
    let expected = from;
    let frames: Frame[] = [];
    const group = (wire: WireFrame): LoggedTransaction | null => {
      const f = frameOf(wire);
      if (f.frameNo !== expected) throw new PrimaryProtocolError(`the primary sent frame ${f.frameNo} where ${expected} was due`);
      expected += 1n;
      frames.push(f);
      if (f.sizeAfter === 0) return null;
      const txn: LoggedTransaction = { firstFrameNo: frames[0]!.frameNo, lastFrameNo: f.frameNo, sizeAfter: f.sizeAfter, frames };
      frames = [];
      this.#seen(f.frameNo);
      return txn;
    };
    try {
      let batch: Promise<WireFrame[]> | null = this.client.batchLogEntries(this.namespace, expected, all);
      while (batch !== null) {
        const got = await batch;
        batch = null;
        const last = got.at(-1);
        if (got.length >= CATCH_UP_FRAMES && last !== undefined && last.data.length === FRAME_SIZE) {
          // prefetch: the primary serves the next batch while this one is applied
          batch = this.client.batchLogEntries(this.namespace, frameOf(last).frameNo + 1n, all);
          batch.catch(() => undefined); // seen when awaited
        }
        for (const wire of got) {
          const txn = group(wire);
          if (txn) yield txn;
        }
      }
      if (frames.length > 0) throw new PrimaryProtocolError('a batch of the primary ended inside a transaction');
      for await (const wire of this.client.logEntries(this.namespace, expected, all)) {
        const txn = group(wire);
        if (txn) yield txn;
      }
    } catch (err) {
      if (isStatus(err, GrpcStatus.FAILED_PRECONDITION, 'NEED_SNAPSHOT')) throw new NeedSnapshot();
      throw err;
    } finally {
      local.abort();
    }
  }

  /** Downloads the snapshot holding `frameNo` (null when the primary has none yet: retried). */
  async snapshotFor(frameNo: bigint): Promise<SnapshotRef | null> {
    const path = this.paths.replicaSnapshot;
    const fd = openSync(path, 'w', 0o644);
    let count = 0;
    let end: bigint | null = null;
    let lowest: bigint | null = null;
    let sizeAfter = 0;
    const ctl = new AbortController();
    try {
      for await (const wire of this.client.snapshot(this.namespace, frameNo, ctl.signal)) {
        const f = frameOf(wire);
        if (lowest !== null && f.frameNo >= lowest) throw new PrimaryProtocolError(`snapshot frames must descend: ${f.frameNo} after ${lowest}`);
        end ??= f.frameNo;
        lowest = f.frameNo;
        sizeAfter = f.sizeAfter;
        writeFully(fd, Buffer.from(wire.data), count * FRAME_SIZE);
        count += 1;
      }
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(path, { force: true });
      if (isStatus(err, GrpcStatus.UNAVAILABLE, 'snapshot not found')) return null;
      throw err;
    } finally {
      ctl.abort();
    }
    closeSync(fd);
    if (end === null || lowest === null) {
      rmSync(path, { force: true });
      return null;
    }
    if (sizeAfter === 0) throw new PrimaryProtocolError('the last snapshot frame carries no database size');
    this.#seen(end);
    return { startFrameNo: lowest < frameNo ? lowest : frameNo, endFrameNo: end, sizeAfter, frameCount: BigInt(count) };
  }

  *snapshotFrames(ref: SnapshotRef): Iterable<Frame> {
    const fd = openSync(this.paths.replicaSnapshot, 'r');
    try {
      for (let i = 0; i < Number(ref.frameCount); i++) {
        const buf = Buffer.allocUnsafe(FRAME_SIZE);
        if (readFully(fd, buf, 0, FRAME_SIZE, i * FRAME_SIZE) !== FRAME_SIZE) throw new PrimaryProtocolError('the downloaded snapshot is shorter than its frame count');
        const f = decodeFrame(buf);
        yield { ...f, sizeAfter: 0 };
      }
    } finally {
      closeSync(fd);
    }
  }

  releaseSnapshot(): void {
    rmSync(this.paths.replicaSnapshot, { force: true });
  }

  #seen(index: bigint): void {
    if (this.#primaryIndex === null || index > this.#primaryIndex) this.#primaryIndex = index;
    this.hooks.onPrimaryIndex?.(this.#primaryIndex);
  }
}
