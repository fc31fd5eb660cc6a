/**
 * Checkpoints with participants (src/engine/pipeline/checkpointer.ts): `prepare` outside the write
 * lock (commits go on, bounded by prepareTimeoutMs), `handOver` under it (nothing interleaves; false
 * vetoes), `onCheckpointed` consistent with the log, and the WAL-size trigger in both of its paths.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../../src/engine/connection.js';
import { readCaptureState } from '../../../src/engine/log/capture-state.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import type { CheckpointedEvent, CommittedTransaction } from '../../../src/engine/pipeline/transactions.js';
import { within } from '../../helpers/child-server.js';
import { bytes, EngineScope, framesOf, run } from '../../helpers/engine-log.js';
import { LEVEL, LogCapture } from '../../helpers/log-capture.js';

const scope = new EngineScope();
afterEach(() => scope.dispose());

const BOUND_MS = 5000;
const WAL_BYTES = 64 * 1024;

let seed = 1;

async function setup(conn: SqlConnection): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)');
}

/** One commit of about three pages. */
async function commit(conn: SqlConnection): Promise<void> {
  await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(++seed, 9000)]);
}

/** A promise and its resolver. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** The next checkpointed event of the namespace. */
function nextCheckpoint(ns: NamespaceDb): Promise<CheckpointedEvent> {
  return new Promise((resolve) => {
    const stop = framesOf(ns).onCheckpointed((e) => {
      stop();
      resolve(e);
    });
  });
}

/** Tracks whether a promise settled. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => (done = true));
  return { promise, settled: () => done };
}

describe('Checkpointer: prepare', () => {
  it('a slow prepare delays the checkpoint, never a commit; the checkpoint completes once it resolves', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commit(conn);
    const slow = gate();
    const called = gate();
    const upTos: (bigint | null)[] = [];
    let released = false;
    const events: { event: CheckpointedEvent; released: boolean }[] = [];
    frames.addCheckpointParticipant({
      name: 'slow',
      prepare: (upTo) => {
        upTos.push(upTo);
        called.open();
        return slow.promise;
      },
      onCheckpointed: (event) => events.push({ event, released }),
    });
    const requestedAt = frames.replicationIndex();
    const cp = track(frames.checkpoint());
    await within(called.promise, BOUND_MS, 'prepare to be called');
    expect(upTos).toEqual([requestedAt]);
    for (let i = 0; i < 10; i++) await within(commit(conn), BOUND_MS, `commit ${i} while prepare is pending`);
    expect(cp.settled()).toBe(false);
    expect(frames.checkpointer.count).toBe(0);
    expect(frames.pendingWalBytes()).toBeGreaterThan(0);
    released = true;
    slow.open();
    expect(await within(cp.promise, BOUND_MS, 'the checkpoint after prepare resolved')).toBe(true);
    expect(frames.checkpointer.count).toBe(1);
    expect(frames.pendingWalBytes()).toBe(0);
    expect(events).toHaveLength(1);
    expect(events[0]!.released).toBe(true);
    // Everything committed meanwhile is covered, not only what prepare was told about.
    expect(events[0]!.event.lastFrameNo).toBe(frames.replicationIndex());
  });

  it('a prepare that never resolves delays the checkpoint by prepareTimeoutMs only (its signal aborts)', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { prepareTimeoutMs: 300 });
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commit(conn);
    const signals: AbortSignal[] = [];
    frames.addCheckpointParticipant({
      name: 'stuck',
      prepare: (_upTo, signal) => {
        signals.push(signal);
        return new Promise<void>(() => {});
      },
    });
    const started = performance.now();
    const cp = track(frames.checkpoint());
    for (let i = 0; i < 5; i++) await within(commit(conn), BOUND_MS, `commit ${i} while prepare hangs`);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(false);
    expect(cp.settled()).toBe(false);
    expect(await within(cp.promise, BOUND_MS, 'the checkpoint after the preparation timeout')).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(signals[0]!.aborted).toBe(true);
    expect(frames.checkpointer.count).toBe(1);
    expect(frames.pendingWalBytes()).toBe(0);
  });

  const failingPrepares = [
    { how: 'rejects', name: 'rejecting', message: 'bucket unreachable', prepare: (): Promise<void> => Promise.reject(new Error('bucket unreachable')) },
    {
      how: 'throws synchronously',
      name: 'throwing',
      message: 'not configured',
      prepare: (): Promise<void> => {
        throw new Error('not configured');
      },
    },
  ];
  it.each(failingPrepares)('a participant whose prepare $how does not stop checkpoints (logged)', async ({ name, message, prepare }) => {
    const capture = new LogCapture();
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { logger: capture.logger, checkpointWalBytes: WAL_BYTES });
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commit(conn);
    frames.addCheckpointParticipant({ name, prepare });
    expect(await within(frames.checkpoint(), BOUND_MS, 'a requested checkpoint')).toBe(true);
    expect(frames.checkpointer.count).toBe(1);
    expect(capture.find(new RegExp(`checkpoint participant ${name} failed to prepare: ${message}`), LEVEL.warn)).toHaveLength(1);
    // The size trigger too.
    const next = nextCheckpoint(ns);
    for (let i = 0; i < 40 && frames.checkpointer.count === 1; i++) await commit(conn);
    await within(next, BOUND_MS, 'the size-triggered checkpoint');
    expect(frames.checkpointer.count).toBe(2);
  });
});

describe('Checkpointer: handOver and onCheckpointed', () => {
  it('handOver runs under the write lock while writers compete: nothing commits between it and the checkpoint', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const setupConn = ns.connect();
    await setup(setupConn);
    const probe = { preempt: (): void => {} };
    const handOvers: { upTo: bigint | null; index: bigint | null; heldByCheckpointer: boolean; lockFree: boolean }[] = [];
    const checkpointed: { event: CheckpointedEvent; index: bigint | null }[] = [];
    frames.addCheckpointParticipant({
      name: 'shipper',
      // An (immediate) prepare: the checkpoint then queues for the write lock like a writer.
      prepare: () => Promise.resolve(),
      handOver: (upTo) => {
        const lockFree = ns.tryAcquireWriteLock(probe);
        if (lockFree) ns.releaseWriteLock(probe);
        handOvers.push({ upTo, index: frames.replicationIndex(), heldByCheckpointer: ns.holdsWriteLock(frames.checkpointer), lockFree });
      },
      onCheckpointed: (event) => checkpointed.push({ event, index: frames.replicationIndex() }),
    });
    let writing = true;
    const writers = [0, 1, 2].map(async (w) => {
      const conn = ns.connect();
      for (let i = 0; writing; i++) {
        if ((w + i) % 2 === 0) {
          await commit(conn);
        } else {
          await run(conn, 'BEGIN');
          await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(++seed, 100)]);
          await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(++seed, 5000)]);
          await run(conn, 'COMMIT');
        }
      }
      conn.close();
    });
    try {
      for (let c = 0; c < 8; c++) {
        await commit(setupConn);
        expect(await within(frames.checkpoint(), BOUND_MS, `checkpoint ${c}`)).toBe(true);
      }
    } finally {
      writing = false;
      await within(Promise.all(writers), BOUND_MS, 'writers');
    }
    expect(handOvers).toHaveLength(8);
    expect(checkpointed).toHaveLength(8);
    for (const [i, h] of handOvers.entries()) {
      const c = checkpointed[i]!;
      expect(h.heldByCheckpointer, `checkpoint ${i}: the checkpointer holds the write lock`).toBe(true);
      expect(h.lockFree, `checkpoint ${i}: nobody else can take it`).toBe(false);
      expect(h.upTo).toBe(h.index);
      expect(c.event.lastFrameNo, `checkpoint ${i}: frames up to handOver's are the checkpointed ones`).toBe(h.index);
      expect(c.index, `checkpoint ${i}: no commit between handOver and onCheckpointed`).toBe(h.index);
    }
    // The writers really ran between the checkpoints.
    expect(new Set(handOvers.map((h) => h.index)).size).toBe(8);
  });

  it('handOver returning false vetoes the checkpoint; it is retried later', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commit(conn);
    let allow = false;
    let vetoes = 0;
    const events: CheckpointedEvent[] = [];
    frames.addCheckpointParticipant({
      name: 'veto',
      handOver: () => {
        if (!allow) vetoes += 1;
        return allow;
      },
      onCheckpointed: (e) => events.push(e),
    });
    const pending = frames.pendingWalBytes();
    expect(await within(frames.checkpoint(), BOUND_MS, 'a vetoed checkpoint')).toBe(false);
    expect(vetoes).toBe(1);
    expect(frames.checkpointer.count).toBe(0);
    expect(frames.pendingWalBytes()).toBe(pending);
    expect(events).toEqual([]);
    expect(frames.checkpointNow()).toBe(false);
    expect(frames.checkpointer.count).toBe(0);
    const retried = nextCheckpoint(ns);
    allow = true;
    const event = await within(retried, BOUND_MS, 'the retry after the veto is lifted');
    expect(event.lastFrameNo).toBe(frames.replicationIndex());
    expect(frames.checkpointer.count).toBe(1);
    expect(frames.pendingWalBytes()).toBe(0);
  });

  it('onCheckpointed: { logId, walGeneration, lastFrameIndex, lastFrameNo } match the log, the WAL and wallog-capture', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const txns: CommittedTransaction[] = [];
    frames.subscribe({ name: 'recorder', policy: 'isolated', onTransaction: (t) => txns.push(t) });
    const events: CheckpointedEvent[] = [];
    frames.addCheckpointParticipant({ name: 'listener', onCheckpointed: (e) => events.push(e) });
    const conn = ns.connect();
    await setup(conn);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3 + round; i++) await commit(conn);
      expect(await frames.checkpoint()).toBe(true);
      const event = events.at(-1)!;
      const last = txns.at(-1)!;
      expect(event).toEqual({
        logId: frames.logId,
        walGeneration: last.wal!.generation,
        lastFrameIndex: last.wal!.firstFrameIndex + last.frames.length - 1,
        lastFrameNo: frames.replicationIndex(),
      });
      expect(event.lastFrameNo).toBe(last.lastFrameNo);
      const state = readCaptureState(ns.paths.captureState);
      expect(state?.checkpointedFrames).toBe(event.lastFrameIndex);
      expect(state?.walGeneration).toBe(event.walGeneration);
    }
    expect(events.map((e) => e.walGeneration - events[0]!.walGeneration)).toEqual([0, 1, 2]);
  });
});

describe('Checkpointer: the WAL-size trigger', () => {
  it('without a preparing participant: checkpoints in the commit path, under the committing connection’s lock', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { checkpointWalBytes: WAL_BYTES });
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const holders: boolean[] = [];
    frames.addCheckpointParticipant({ name: 'observer', handOver: () => void holders.push(ns.holdsWriteLock(conn)) });
    const pendingAfter: number[] = [];
    for (let i = 0; i < 40 && frames.checkpointer.count === 0; i++) {
      await commit(conn);
      pendingAfter.push(frames.pendingWalBytes());
    }
    // Done by the time the triggering commit returned, by the committing connection.
    expect(frames.checkpointer.count).toBe(1);
    expect(holders).toEqual([true]);
    expect(pendingAfter.at(-1)).toBe(0);
    expect(pendingAfter.slice(0, -1).every((b) => b > 0 && b < WAL_BYTES)).toBe(true);
    expect(pendingAfter.length).toBeGreaterThan(2);
  });

  it('with a preparing participant: the triggering commit starts the preparation, then the checkpoint takes the lock', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { checkpointWalBytes: WAL_BYTES });
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const slow = gate();
    const prepares: (bigint | null)[] = [];
    const holders: { conn: boolean; checkpointer: boolean }[] = [];
    frames.addCheckpointParticipant({
      name: 'shipper',
      prepare: (upTo) => {
        prepares.push(upTo);
        return slow.promise;
      },
      handOver: () => void holders.push({ conn: ns.holdsWriteLock(conn), checkpointer: ns.holdsWriteLock(frames.checkpointer) }),
    });
    let triggeredAt: bigint | null = null;
    for (let i = 0; i < 40 && prepares.length === 0; i++) {
      await commit(conn);
      triggeredAt = frames.replicationIndex();
    }
    expect(prepares).toEqual([triggeredAt]);
    expect(frames.pendingWalBytes()).toBeGreaterThanOrEqual(WAL_BYTES);
    // Commits go on while the participant prepares; one preparation, no checkpoint yet.
    for (let i = 0; i < 5; i++) await within(commit(conn), BOUND_MS, `commit ${i} during the preparation`);
    expect(prepares).toHaveLength(1);
    expect(frames.checkpointer.count).toBe(0);
    const done = nextCheckpoint(ns);
    slow.open();
    const event = await within(done, BOUND_MS, 'the checkpoint after the preparation');
    expect(holders).toEqual([{ conn: false, checkpointer: true }]);
    expect(event.lastFrameNo).toBe(frames.replicationIndex());
    expect(frames.checkpointer.count).toBe(1);
    expect(frames.pendingWalBytes()).toBe(0);
  });
});
