/**
 * The primary's FrameSource (src/engine/pipeline/log-frame-source.ts): whole transactions from any
 * frame on, backfilled from the log and then followed live, without gap or duplicate — under
 * concurrent writers and readers, slow consumers, aborts, compaction, a new log and shutdown.
 */
import { getEventListeners, setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SqlConnection } from '../../../src/engine/connection.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import type { FrameSource } from '../../../src/engine/pipeline/frame-source.js';
import type { CommittedTransaction, LoggedTransaction } from '../../../src/engine/pipeline/transactions.js';
import type { SqlValue } from '../../../src/engine/values.js';
import type { Frame } from '../../../src/engine/wal/frame.js';
import { replayIntoFile, type ReplayFrame } from '../../../src/engine/wal/replay.js';
import { within } from '../../helpers/child-server.js';
import { bytes, EngineScope, framesOf, inspectFile, inspectPrimary, logFrames, run } from '../../helpers/engine-log.js';

const scope = new EngineScope();
afterEach(() => scope.dispose());

/** Bound for anything that should happen promptly (a hang fails the test instead of stalling it). */
const BOUND_MS = 10_000;

/** The publisher's subscriber count (frame-source iterators included). */
function subscriberCount(ns: NamespaceDb): number {
  return framesOf(ns).subscriberCount;
}

let seed = 1;

async function setup(conn: SqlConnection): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, w INTEGER, v BLOB)');
}

/** One write of writer `w` (step `i`): the mix covers one-frame, many-frame, rolled-back and mixed transactions. */
async function writeStep(conn: SqlConnection, w: number, i: number): Promise<void> {
  const s = ++seed;
  const insert = (size: number, k = 0): [string, SqlValue[]] => ['INSERT INTO t (w, v) VALUES (?, ?)', [w, bytes(s * 7 + k, size)]];
  const steps: [string, SqlValue[]][][] = [
    [insert(100)],
    [['BEGIN', []], insert(6000, 0), insert(6000, 1), insert(6000, 2), ['COMMIT', []]],
    [['BEGIN', []], insert(5000), ['ROLLBACK', []]],
    [
      ['BEGIN IMMEDIATE', []],
      ['UPDATE t SET v = ? WHERE id = (SELECT max(id) FROM t)', [bytes(s, 300)]],
      ['DELETE FROM t WHERE id = (SELECT min(id) FROM t) AND (SELECT max(id) - min(id) FROM t) > 20', []],
      ['COMMIT', []],
    ],
  ];
  for (const [sql, args] of steps[(w + i) % 4]!) await run(conn, sql, args);
}

async function commitSmall(conn: SqlConnection, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await run(conn, 'INSERT INTO t (w, v) VALUES (?, ?)', [-1, bytes(++seed, 50)]);
}

/** Every frame of the log from `from` to its end. */
function logFramesFrom(ns: NamespaceDb, from: bigint): Frame[] {
  return [...logFrames(framesOf(ns).log, from, { count: 0, last: null })];
}

function sameFrame(a: Frame, b: Frame): boolean {
  return a.frameNo === b.frameNo && a.checksum === b.checksum && a.pageNo === b.pageNo && a.sizeAfter === b.sizeAfter && Buffer.compare(a.page, b.page) === 0;
}

/**
 * What is wrong with a stream of transactions that should start at `from` and cover the log frames
 * `expected` (ascending, starting at or before `from`) up to `end`: null when nothing is.
 */
function streamProblem(txns: readonly LoggedTransaction[], from: bigint, expected: readonly Frame[], end: bigint): string | null {
  const base = expected[0]?.frameNo ?? 0n;
  let next = from;
  for (const [i, t] of txns.entries()) {
    if (t.firstFrameNo !== next) return `transaction ${i} starts at ${t.firstFrameNo}, expected ${next} (${t.firstFrameNo < next ? 'duplicate' : 'gap'})`;
    if (t.frames.length !== Number(t.lastFrameNo - t.firstFrameNo + 1n)) return `transaction ${i} (${t.firstFrameNo}..${t.lastFrameNo}) has ${t.frames.length} frames`;
    for (const [j, f] of t.frames.entries()) {
      const isLast = j === t.frames.length - 1;
      if (f.frameNo !== t.firstFrameNo + BigInt(j)) return `transaction ${i}: frame ${j} has frame_no ${f.frameNo}`;
      if (isLast ? f.sizeAfter === 0 : f.sizeAfter !== 0) return `transaction ${i}: frame ${f.frameNo} has size_after ${f.sizeAfter} (${isLast ? 'last' : 'not last'} frame)`;
      const want = expected[Number(f.frameNo - base)];
      if (!want || !sameFrame(f, want)) return `transaction ${i}: frame ${f.frameNo} differs from the log's`;
    }
    if (t.sizeAfter !== t.frames.at(-1)?.sizeAfter) return `transaction ${i}: sizeAfter ${t.sizeAfter} differs from its commit frame's`;
    next = t.lastFrameNo + 1n;
  }
  return next - 1n === end ? null : `the stream ends at ${next - 1n}, expected ${end}`;
}

/**
 * Iterates `source` from `from` until a transaction reaches `stopAt()` (set once the test knows the
 * end). `pauseEvery`: yields to the event loop after that many transactions (a slower consumer).
 */
async function consume(source: FrameSource, from: bigint, signal: AbortSignal, stopAt: () => bigint | null, pauseEvery = 0, onTxn?: (t: LoggedTransaction) => void): Promise<LoggedTransaction[]> {
  const out: LoggedTransaction[] = [];
  for await (const t of source.transactions(from, signal)) {
    out.push(t);
    onTxn?.(t);
    const stop = stopAt();
    if (stop !== null && t.lastFrameNo >= stop) break;
    if (pauseEvery > 0 && out.length % pauseEvery === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out;
}

/**
 * Ends a test's streams: `stopAt` is set to the next frame and one more transaction is committed,
 * so every consumer (waiting or behind) reaches it. Returns the last frame of that marker.
 */
async function commitMarker(ns: NamespaceDb, conn: SqlConnection, setStop: (f: bigint) => void): Promise<bigint> {
  setStop(framesOf(ns).log.nextFrameNo);
  await run(conn, 'INSERT INTO t (w, v) VALUES (?, ?)', [-2, Buffer.from('marker')]);
  return framesOf(ns).replicationIndex()!;
}

function iter(source: FrameSource, from: bigint, signal?: AbortSignal): AsyncIterator<LoggedTransaction> {
  return source.transactions(from, signal)[Symbol.asyncIterator]();
}

/** The transaction of an iterator result (a stream must not end in these tests). */
function txnOf(r: IteratorResult<LoggedTransaction>): LoggedTransaction {
  if (r.done) throw new Error('the stream ended');
  return r.value;
}

/** The rejection reason of `p` (which must reject). */
function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => Promise.reject(new Error('expected a rejection')),
    (err: unknown) => err,
  );
}

describe('FrameSource.transactions: concurrency and ordering', () => {
  it('20 iterators from 0 while 4 writers commit: every frame once, in order, whole transactions, equal to the log', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const source = framesOf(ns).frameSource();
    const setupConn = ns.connect();
    await setup(setupConn);
    const ac = new AbortController();
    setMaxListeners(100, ac.signal);
    let stop: bigint | null = null;
    const stopAt = (): bigint | null => stop;
    const consumers: Promise<LoggedTransaction[]>[] = [];
    // Ten start before any write, ten while the writers run (they backfill, then follow live).
    for (let c = 0; c < 10; c++) consumers.push(consume(source, 0n, ac.signal, stopAt, c % 3));
    const writers = [0, 1, 2, 3].map(async (w) => {
      const conn = ns.connect();
      for (let i = 0; i < 30; i++) {
        await writeStep(conn, w, i);
        if (w === 0 && i % 3 === 0) consumers.push(consume(source, 0n, ac.signal, stopAt, i % 5));
      }
      conn.close();
    });
    await within(Promise.all(writers), BOUND_MS, 'writers');
    expect(consumers).toHaveLength(20);
    const end = await commitMarker(ns, setupConn, (f) => (stop = f));
    try {
      const streams = await within(Promise.all(consumers), BOUND_MS, 'every consumer to reach the marker');
      const expected = logFramesFrom(ns, 0n);
      expect(expected.at(-1)?.frameNo).toBe(end);
      const problems = streams.map((s, i) => [i, streamProblem(s, 0n, expected, end)]).filter(([, p]) => p !== null);
      expect(problems).toEqual([]);
      // Sanity of the workload: many transactions, some of several frames.
      expect(streams[0]!.length).toBeGreaterThan(80);
      expect(streams[0]!.some((t) => t.frames.length > 3)).toBe(true);
      expect(subscriberCount(ns)).toBe(0);
    } finally {
      ac.abort(new Error('test over'));
    }
  });

  it('backfill then live: no gap or duplicate at the cut-over while commits go on', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    for (let i = 0; i < 40; i++) await writeStep(conn, 0, i);
    await commitSmall(conn, 200);
    // Transactions committed before the stream starts (the log's commit frames).
    const backlog = logFramesFrom(ns, 0n).filter((f) => f.sizeAfter !== 0).length;
    expect(backlog).toBeGreaterThan(230);
    // The published objects, to tell live transactions from those read back from the log.
    const published = new Set<CommittedTransaction>();
    const unsubscribe = frames.subscribe({ name: 'probe', policy: 'isolated', onTransaction: (t) => published.add(t) });
    const ac = new AbortController();
    let stop: bigint | null = null;
    let yielded = 0;
    const stream = consume(frames.frameSource(), 0n, ac.signal, () => stop, 2, () => (yielded += 1));
    const writer = ns.connect();
    const yieldedAtWrites: number[] = [];
    for (let i = 0; i < 150; i++) {
      await writeStep(writer, 1, i);
      yieldedAtWrites.push(yielded);
    }
    const end = await commitMarker(ns, conn, (f) => (stop = f));
    try {
      const txns = await within(stream, BOUND_MS, 'the stream to reach the marker');
      expect(streamProblem(txns, 0n, logFramesFrom(ns, 0n), end)).toBeNull();
      // The writes went on while the stream was still backfilling ...
      expect(yieldedAtWrites[0]).toBeLessThan(backlog);
      // ... and both sides of the seam were used: the backlog read back from the log (not
      // published while the stream listened), later transactions handed over live.
      const live = txns.filter((t) => published.has(t as CommittedTransaction)).length;
      expect(live).toBeGreaterThan(0);
      expect(txns.length - live).toBeGreaterThanOrEqual(backlog);
    } finally {
      ac.abort(new Error('test over'));
      unsubscribe();
    }
  });

  it('a consumer more than 256 transactions behind still gets everything, then follows live again', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const from = frames.log.nextFrameNo;
    const ac = new AbortController();
    const it = iter(frames.frameSource(), from, ac.signal);
    const first = it.next();
    await commitSmall(conn, 1);
    const txns: LoggedTransaction[] = [txnOf(await first)];
    // The consumer stalls while 400 transactions commit (more than the live buffer of 256) ...
    for (let i = 0; i < 20; i++) await writeStep(conn, 2, i);
    await commitSmall(conn, 300);
    // ... then catches up while commits go on.
    let stop: bigint | null = null;
    const catchUp = (async () => {
      for (;;) {
        const t = txnOf(await it.next());
        txns.push(t);
        if (stop !== null && t.lastFrameNo >= stop) return;
        if (txns.length % 3 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    })();
    const writer = ns.connect();
    for (let i = 0; i < 60; i++) await writeStep(writer, 3, i);
    const end = await commitMarker(ns, conn, (f) => (stop = f));
    try {
      await within(catchUp, BOUND_MS, 'the slow consumer to reach the marker');
      expect(streamProblem(txns, from, logFramesFrom(ns, from), end)).toBeNull();
      expect(txns.length).toBeGreaterThan(300);
    } finally {
      ac.abort(new Error('test over'));
      await it.return?.(undefined);
    }
    expect(subscriberCount(ns)).toBe(0);
  });

  it('a backfill reads each log frame about once, not a whole read-ahead per transaction', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commitSmall(conn, 400);
    const end = frames.replicationIndex()!;
    const from = frames.log.startFrameNo;
    const reads = vi.spyOn(frames.log, 'readFrames');
    const ac = new AbortController();
    let yieldedFrames = 0;
    try {
      const txns = await within(consume(frames.frameSource(), from, ac.signal, () => end, 0, (t) => (yieldedFrames += t.frames.length)), BOUND_MS, 'the backfill');
      expect(streamProblem(txns, from, logFramesFrom(ns, from), end)).toBeNull();
    } finally {
      ac.abort();
    }
    const framesRead = reads.mock.results.reduce((n, r) => n + (r.type === 'return' ? r.value.length : 0), 0);
    reads.mockRestore();
    // One read-ahead chunk of slack; a source that re-reads the chunk for every transaction reads
    // hundreds of times more.
    expect(framesRead).toBeLessThanOrEqual(2 * yieldedFrames + 1024);
  });

  it('from a frame inside a transaction: the rest of it (from the log and live); from the end: waits for the next commit', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const bigTxn = async (): Promise<{ first: bigint; last: bigint }> => {
      const first = frames.log.nextFrameNo;
      await writeStep(conn, 0, 1); // three 6000-byte rows: many frames
      const last = frames.replicationIndex()!;
      expect(last - first).toBeGreaterThan(3n);
      return { first, last };
    };
    const ac = new AbortController();
    const source = frames.frameSource();
    try {
      // From the log.
      const logged = await bigTxn();
      await commitSmall(conn, 1);
      const it = iter(source, logged.first + 2n, ac.signal);
      const rest = txnOf(await it.next());
      expect(streamProblem([rest], logged.first + 2n, logFramesFrom(ns, logged.first), logged.last)).toBeNull();
      expect(txnOf(await it.next()).firstFrameNo).toBe(logged.last + 1n);
      await it.return?.(undefined);

      // Live: the iterator waits at a frame that does not exist yet, inside the next transaction.
      const liveFrom = frames.log.nextFrameNo + 2n;
      const liveIt = iter(source, liveFrom, ac.signal);
      const pending = liveIt.next();
      const live = await bigTxn();
      const got = txnOf(await within(pending, BOUND_MS, 'the live rest of a transaction'));
      expect(streamProblem([got], liveFrom, logFramesFrom(ns, live.first), live.last)).toBeNull();
      await liveIt.return?.(undefined);

      // From the end: nothing until the next commit.
      const endFrom = frames.log.nextFrameNo;
      const endIt = iter(source, endFrom, ac.signal);
      let settled = false;
      const waiting = endIt.next().finally(() => (settled = true));
      await run(conn, 'SELECT count(*) FROM t');
      for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      expect(settled).toBe(false);
      await commitSmall(conn, 1);
      const next = txnOf(await within(waiting, BOUND_MS, 'the next commit'));
      expect(streamProblem([next], endFrom, logFramesFrom(ns, endFrom), frames.replicationIndex()!)).toBeNull();
      await endIt.return?.(undefined);
    } finally {
      ac.abort(new Error('test over'));
    }
    expect(subscriberCount(ns)).toBe(0);
  });
});

describe('FrameSource.transactions: abort', () => {
  it('the pending next() rejects with the abort reason; no subscriber or abort listener is left', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const before = subscriberCount(ns);
    const ac = new AbortController();
    const it = iter(frames.frameSource(), frames.log.nextFrameNo, ac.signal);
    const pending = it.next();
    await commitSmall(conn, 1);
    expect((await pending).done).toBe(false);
    const waiting = it.next();
    expect(subscriberCount(ns)).toBe(before + 1);
    const reason = new Error('client went away');
    ac.abort(reason);
    expect(await errorOf(waiting)).toBe(reason);
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(subscriberCount(ns)).toBe(before);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);

    // Breaking out of a loop unsubscribes too.
    const ac2 = new AbortController();
    for await (const t of frames.frameSource().transactions(0n, ac2.signal)) {
      expect(t.firstFrameNo).toBe(0n);
      break;
    }
    expect(subscriberCount(ns)).toBe(before);
    expect(getEventListeners(ac2.signal, 'abort')).toHaveLength(0);
  });

  it('10 000 waits on one signal (10 iterators × 1000 commits): the abort listeners do not grow', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    const ac = new AbortController();
    setMaxListeners(100, ac.signal);
    const source = frames.frameSource();
    const from = frames.log.nextFrameNo;
    const its = Array.from({ length: 10 }, () => iter(source, from, ac.signal));
    let pending = its.map((it) => it.next());
    const counts = new Set<number>();
    let expectedFirst = from;
    for (let round = 0; round < 1000; round++) {
      // Every iterator is waiting now (nothing new since its last transaction).
      counts.add(getEventListeners(ac.signal, 'abort').length);
      await run(conn, 'INSERT INTO t (w, v) VALUES (?, NULL)', [round]);
      let last = expectedFirst;
      for (const r of await Promise.all(pending)) {
        if (r.done) throw new Error(`an iterator ended in round ${round}`);
        if (r.value.firstFrameNo !== expectedFirst) throw new Error(`round ${round}: transaction at ${r.value.firstFrameNo}, expected ${expectedFirst}`);
        last = r.value.lastFrameNo;
      }
      expectedFirst = last + 1n;
      pending = its.map((it) => it.next());
    }
    // At most two listeners per iterator (its own and one per wait), the same in every round.
    expect([...counts]).toHaveLength(1);
    expect([...counts][0]).toBeLessThanOrEqual(20);
    expect(subscriberCount(ns)).toBe(10);
    const reason = new Error('done');
    ac.abort(reason);
    const errors = await Promise.all(pending.map(errorOf));
    expect(errors.every((e) => e === reason)).toBe(true);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(subscriberCount(ns)).toBe(0);
  });
});

describe('FrameSource: compaction, a new log, shutdown', () => {
  it('NEED_SNAPSHOT after compaction; snapshot pages + the log suffix rebuild the database', async () => {
    const dir = scope.tempDir();
    const ns = await scope.open(join(dir, 'ns'), { maxFrames: 20n });
    const frames = framesOf(ns);
    // Every frame ever logged, to check the snapshot against: the seeded ones, then what is published.
    const history = new Map<bigint, Frame>();
    for (const f of logFramesFrom(ns, 0n)) history.set(f.frameNo, { ...f, page: Buffer.from(f.page) });
    const unsubscribe = frames.subscribe({ name: 'history', policy: 'isolated', onTransaction: (t) => t.frames.forEach((f) => history.set(f.frameNo, f)) });
    const conn = ns.connect();
    await setup(conn);
    for (let i = 0; frames.log.startFrameNo === 0n; i++) {
      if (i > 200) throw new Error('the log never compacted');
      await writeStep(conn, 1, i);
    }
    await commitSmall(conn, 3);
    await frames.log.drain();
    unsubscribe();
    const source = frames.frameSource();
    expect(source.startFrameNo()).toBeGreaterThan(0n);
    for (const from of [0n, source.startFrameNo() - 1n]) {
      expect(await errorOf(iter(source, from).next())).toMatchObject({ code: 'NEED_SNAPSHOT' });
    }

    const out = join(dir, 'rebuilt.db');
    let from = 0n;
    let snapshots = 0;
    while (from < source.startFrameNo()) {
      const ref = await source.snapshotFor(from);
      if (!ref) throw new Error(`no snapshot holds frame ${from}`);
      expect(ref.startFrameNo).toBe(from);
      expect(await source.snapshotFor(ref.endFrameNo)).toEqual(ref);
      const snap = [...source.snapshotFrames(ref)];
      // The newest image of every page of the range (within the final size), newest first.
      const newest = new Map<number, Frame>();
      for (let n = ref.startFrameNo; n <= ref.endFrameNo; n++) {
        const f = history.get(n);
        if (!f) throw new Error(`frame ${n} was never seen`);
        newest.set(f.pageNo, f);
      }
      expect(ref.sizeAfter).toBe(history.get(ref.endFrameNo)?.sizeAfter);
      const expected = [...newest.values()].filter((f) => f.pageNo <= ref.sizeAfter).sort((a, b) => (a.frameNo > b.frameNo ? -1 : 1));
      expect(snap.map((f) => f.frameNo)).toEqual(expected.map((f) => f.frameNo));
      expect(snap.every((f, i) => f.sizeAfter === 0 && f.pageNo === expected[i]!.pageNo && Buffer.compare(f.page, expected[i]!.page) === 0)).toBe(true);
      expect(ref.frameCount).toBe(BigInt(snap.length));
      const list: ReplayFrame[] = snap.map((f) => ({ pageNo: f.pageNo, sizeAfter: 0, page: f.page }));
      list.at(-1)!.sizeAfter = ref.sizeAfter;
      replayIntoFile(out, list);
      from = ref.endFrameNo + 1n;
      snapshots += 1;
    }
    expect(snapshots).toBeGreaterThan(0);
    const end = source.replicationIndex()!;
    const suffix = (await consume(source, from, new AbortController().signal, () => end)).flatMap((t) => t.frames);
    expect(suffix.length).toBeGreaterThan(0);
    replayIntoFile(out, suffix);
    const [rebuilt, primary] = [inspectFile(out), inspectPrimary(ns)];
    expect(rebuilt).toEqual({ ...primary, integrity: 'ok' });
  });

  it('LOG_CHANGED when a new log starts under a waiting (or paused) iterator; a new source has the new logId', async () => {
    const dir = scope.tempDir();
    const ns = await scope.open(join(dir, 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commitSmall(conn, 5);
    const old = frames.frameSource();
    const ac = new AbortController();
    const waitingIt = iter(old, frames.log.nextFrameNo, ac.signal);
    const waiting = waitingIt.next();
    const pausedIt = iter(old, 0n, ac.signal);
    expect((await pausedIt.next()).done).toBe(false);
    await frames.startNewLog('test: the database was replaced');
    expect(await within(errorOf(waiting), BOUND_MS, 'the waiting iterator to hear of the new log')).toMatchObject({ code: 'LOG_CHANGED' });
    expect(await errorOf(pausedIt.next())).toMatchObject({ code: 'LOG_CHANGED' });
    expect(await errorOf(iter(old, 0n).next())).toMatchObject({ code: 'LOG_CHANGED' });
    expect(subscriberCount(ns)).toBe(0);

    const fresh = frames.frameSource();
    expect(fresh.logId).not.toBe(old.logId);
    expect(fresh.logId).toBe(frames.logId);
    // The new log starts at 0 with the database as it is.
    await commitSmall(conn, 1);
    const end = fresh.replicationIndex()!;
    const replayed = (await consume(fresh, 0n, ac.signal, () => end)).flatMap((t) => t.frames);
    const out = join(dir, 'new-log.db');
    replayIntoFile(out, replayed);
    expect(inspectFile(out).dump).toBe(inspectPrimary(ns).dump);
    ac.abort();
  });

  it('iterators end when the namespace closes', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const conn = ns.connect();
    await setup(conn);
    await commitSmall(conn, 3);
    const source = frames.frameSource();
    let firstSeen = (): void => {};
    const seen = new Promise<void>((resolve) => (firstSeen = resolve));
    const from = frames.log.nextFrameNo;
    // Waits for new commits after its first transaction.
    const waiting = (async () => {
      let n = 0;
      for await (const _t of source.transactions(from)) {
        n += 1;
        firstSeen();
      }
      return n;
    })();
    await commitSmall(conn, 1);
    await within(seen, BOUND_MS, 'the first transaction');
    conn.close();
    await ns.close();
    expect(await within(waiting, 2000, 'the waiting iterator to end after close')).toBe(1);
    // Started after the close: ends at once.
    let after = 0;
    for await (const _t of source.transactions(0n)) after += 1;
    expect(after).toBe(0);
  });
});
