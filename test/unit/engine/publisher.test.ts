/**
 * FramePublisher as seen by a subscriber of the primary: an isolated subscriber's failure stays its
 * own, and the published `wal` coordinates rebuild SQLite's `-wal` file byte for byte.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../../src/engine/connection.js';
import type { CommittedTransaction, WalCoordinates } from '../../../src/engine/pipeline/transactions.js';
import { PAGE_SIZE } from '../../../src/engine/wal/frame.js';
import { walChecksum, WAL_FORMAT_VERSION, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WAL_MAGIC_BE, WAL_MAGIC_LE } from '../../../src/engine/wal/sqlite-wal-format.js';
import { bytes, EngineScope, framesOf, run } from '../../helpers/engine-log.js';
import { LEVEL, LogCapture } from '../../helpers/log-capture.js';

const scope = new EngineScope();
afterEach(() => scope.dispose());

const WAL_FRAME_SIZE = WAL_FRAME_HEADER_SIZE + PAGE_SIZE;

let seed = 1;

/** A mix of transactions: one page, many pages (overflow chains), updates, a multi-statement one. */
async function workload(conn: SqlConnection, rounds: number): Promise<void> {
  await run(conn, 'CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)');
  for (let i = 0; i < rounds; i++) {
    seed += 1;
    await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(seed, 40)]);
    await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(seed, 9000 + i * 100)]);
    await run(conn, 'BEGIN');
    await run(conn, 'UPDATE t SET v = ? WHERE id = (SELECT min(id) FROM t)', [bytes(seed + 1, 3000)]);
    await run(conn, 'INSERT INTO t (v) VALUES (?)', [bytes(seed + 2, 200)]);
    await run(conn, 'COMMIT');
  }
}

/** Records every published transaction. */
function record(ns: Parameters<typeof framesOf>[0]): { txns: CommittedTransaction[]; stop: () => void } {
  const txns: CommittedTransaction[] = [];
  const stop = framesOf(ns).subscribe({ name: 'recorder', policy: 'isolated', onTransaction: (t) => txns.push(t) });
  return { txns, stop };
}

/**
 * SQLite's `-wal` bytes as the coordinates describe them: the 32-byte header, then every frame at
 * its index (24-byte frame header: page number, commit size, salts, cumulative checksum; page).
 */
function rebuildWal(txns: readonly CommittedTransaction[]): Buffer {
  const wal = txns[0]?.wal;
  if (!wal) throw new Error('no WAL coordinates');
  const last = txns.at(-1)!;
  const frameCount = last.wal!.firstFrameIndex - 1 + last.frames.length;
  const out = Buffer.alloc(WAL_HEADER_SIZE + frameCount * WAL_FRAME_SIZE);
  out.writeUInt32BE(wal.bigEndian ? WAL_MAGIC_BE : WAL_MAGIC_LE, 0);
  out.writeUInt32BE(WAL_FORMAT_VERSION, 4);
  out.writeUInt32BE(PAGE_SIZE, 8);
  out.writeUInt32BE(wal.checkpointSeq, 12);
  out.writeUInt32BE(wal.salt1, 16);
  out.writeUInt32BE(wal.salt2, 20);
  out.writeUInt32BE(wal.headerChecksum[0], 24);
  out.writeUInt32BE(wal.headerChecksum[1], 28);
  expect(walChecksum(out.subarray(0, 24), wal.bigEndian), 'headerChecksum is the checksum of the header').toEqual([...wal.headerChecksum]);
  for (const t of txns) {
    const c: WalCoordinates = t.wal!;
    let sum: readonly [number, number] = c.checksumBefore;
    for (const [i, f] of t.frames.entries()) {
      const at = WAL_HEADER_SIZE + (c.firstFrameIndex - 1 + i) * WAL_FRAME_SIZE;
      const frame = out.subarray(at, at + WAL_FRAME_SIZE);
      frame.writeUInt32BE(f.pageNo, 0);
      frame.writeUInt32BE(f.sizeAfter, 4);
      frame.writeUInt32BE(c.salt1, 8);
      frame.writeUInt32BE(c.salt2, 12);
      sum = walChecksum(frame.subarray(0, 8), c.bigEndian, sum);
      sum = walChecksum(f.page, c.bigEndian, sum);
      frame.writeUInt32BE(sum[0], 16);
      frame.writeUInt32BE(sum[1], 20);
      f.page.copy(frame, WAL_FRAME_HEADER_SIZE);
    }
  }
  return out;
}

/** Index of the first differing byte, or -1. */
function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Within one generation: same header fields, frame indexes consecutive from 1. */
function expectOneGeneration(txns: readonly CommittedTransaction[]): void {
  const first = txns[0]!.wal!;
  let index = 1;
  for (const t of txns) {
    const { checksumBefore: _c, firstFrameIndex, ...header } = t.wal!;
    const { checksumBefore: _c0, firstFrameIndex: _f0, ...header0 } = first;
    expect(header).toEqual(header0);
    expect(firstFrameIndex).toBe(index);
    index += t.frames.length;
  }
}

describe('FramePublisher', () => {
  it('an isolated subscriber that throws: logged, told through onError, SQL and the other subscribers unaffected', async () => {
    const capture = new LogCapture();
    const ns = await scope.open(join(scope.tempDir(), 'ns'), { logger: capture.logger });
    const frames = framesOf(ns);
    const failures: { err: unknown; txn: CommittedTransaction }[] = [];
    const boom = new Error('subscriber exploded');
    let calls = 0;
    frames.subscribe({
      name: 'broken',
      policy: 'isolated',
      onTransaction: () => {
        calls += 1;
        throw boom;
      },
      onError: (err, txn) => {
        failures.push({ err, txn });
        if (failures.length === 2) throw new Error('onError exploded too');
      },
    });
    const others = record(ns);
    const conn = ns.connect();
    await run(conn, 'CREATE TABLE t (x)');
    await run(conn, 'INSERT INTO t VALUES (1)');
    await run(conn, 'BEGIN');
    await run(conn, 'INSERT INTO t VALUES (2)');
    await run(conn, 'COMMIT');
    expect((await run(conn, 'SELECT count(*) FROM t')).rows[0]?.[0]).toBe(2n);
    expect(frames.writeRefusal).toBeNull();

    expect(calls).toBe(3);
    expect(failures).toHaveLength(3);
    expect(failures.every((f) => f.err === boom)).toBe(true);
    // onError gets the very transaction the others got.
    expect(failures.map((f) => f.txn)).toEqual(others.txns);
    expect(others.txns.at(-1)?.lastFrameNo).toBe(frames.replicationIndex());
    const logged = capture.find(/subscriber broken failed on frames \d+\.\.\d+: subscriber exploded/, LEVEL.error);
    expect(logged).toHaveLength(3);
    expect(logged[0]!.msg).toContain(`frames ${others.txns[0]!.firstFrameNo}..${others.txns[0]!.lastFrameNo}`);
    expect(capture.find(/subscriber broken failed to handle its error/, LEVEL.error)).toHaveLength(1);
  });

  it('the WAL coordinates rebuild the -wal file byte for byte, across checkpoints (generation + 1 each)', async () => {
    const ns = await scope.open(join(scope.tempDir(), 'ns'));
    const frames = framesOf(ns);
    const { txns, stop } = record(ns);
    const conn = ns.connect();
    const generations: CommittedTransaction[][] = [];
    for (let g = 0; g < 3; g++) {
      const start = txns.length;
      await workload(conn, 6);
      const gen = txns.slice(start);
      generations.push(gen);
      // Read while the namespace is open and before any checkpoint of this generation (test code
      // may read the -wal file; closing would checkpoint and delete it).
      const real = readFileSync(ns.paths.wal);
      const rebuilt = rebuildWal(gen);
      expect(rebuilt.length, `generation ${g}: the WAL holds the frames up to the last one`).toBeLessThanOrEqual(real.length);
      if (g === 0) expect(real.length, 'a first generation is exactly header + frames').toBe(rebuilt.length);
      expect(firstDifference(rebuilt, real.subarray(0, rebuilt.length)), `generation ${g}: first differing byte`).toBe(-1);
      expectOneGeneration(gen);
      expect(await frames.checkpoint()).toBe(true);
    }
    stop();
    // One generation per checkpoint-then-commit; a restarted WAL has new salts and sequence.
    const firsts = generations.map((g) => g[0]!.wal!);
    expect(firsts.map((w) => w.generation - firsts[0]!.generation)).toEqual([0, 1, 2]);
    expect(firsts.map((w) => w.firstFrameIndex)).toEqual([1, 1, 1]);
    expect(new Set(firsts.map((w) => `${w.salt1}/${w.salt2}`)).size).toBe(3);
    expect(firsts.map((w) => w.checkpointSeq - firsts[0]!.checkpointSeq)).toEqual([0, 1, 2]);
    // Log identity and numbering across all of them.
    expect(new Set(txns.map((t) => t.logId))).toEqual(new Set([frames.logId]));
    for (const [i, t] of txns.entries()) {
      expect(t.lastFrameNo - t.firstFrameNo + 1n).toBe(BigInt(t.frames.length));
      expect(t.frames.map((f) => f.frameNo)).toEqual(t.frames.map((_f, j) => t.firstFrameNo + BigInt(j)));
      expect(t.sizeAfter).toBe(t.frames.at(-1)!.sizeAfter);
      if (i > 0) expect(t.firstFrameNo).toBe(txns[i - 1]!.lastFrameNo + 1n);
    }
    expect(txns.at(-1)!.lastFrameNo).toBe(frames.replicationIndex());
  });
});
