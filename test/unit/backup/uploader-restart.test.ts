/**
 * The uploader across restarts (docs/BOTTOMLESS.md "Uploader", restart): a kill -9 (the namespace's
 * files copied while it runs, the uploader abandoned) before and after a checkpoint, a clean
 * shutdown, a new replication log. After each, the store must restore to exactly the committed
 * state, with no gap and no overlap (the reader refuses both).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generationPrefix, parseBatchName } from '../../../src/backup/format/layout.js';
import { readState } from '../../../src/backup/uploader/state-file.js';
import { NamespacePaths } from '../../../src/engine/data-dir.js';
import { invalidateLog } from '../../../src/engine/log/log-recovery.js';
import { framesOf, inspectPrimary, run } from '../../helpers/engine-log.js';
import { DB, depOf, generationsOf, Harness, keysOf, restoredDump, snapshotOf, writeRows } from './uploader-fixtures.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => h.dispose());

async function batchRanges(gen: string): Promise<[number, number][]> {
  const names = (await keysOf(h.storage, generationPrefix(DB, gen))).map((k) => k.slice(k.lastIndexOf('/') + 1));
  return names.map((n) => parseBatchName(n)).flatMap((b) => (b ? [[b.first, b.last] as [number, number]] : []));
}

describe('uploader: kill -9 and restarts', () => {
  it('continues the same generation after a kill -9 with unstaged commits', async () => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    const backup = await h.attach(ns);
    const conn = ns.connect();
    await writeRows(conn, 3);
    await backup.flush();
    const gen = backup.status().generation!;
    await writeRows(conn, 4); // committed, in the log, not staged (the batch interval is long)
    expect(backup.status().uploadLagFrames).toBeGreaterThan(0);
    backup.kill();
    const copy = h.crashCopy(nsDir);
    const expected = inspectPrimary(ns).dump;

    h.clock.advance(1000);
    const ns2 = await h.open(copy);
    const backup2 = await h.attach(ns2);
    expect(backup2.status().generation).toBe(gen);
    await writeRows(ns2.connect(), 2);
    await backup2.flush();
    expect(await generationsOf(h.storage, DB)).toEqual([gen]);
    const ranges = await batchRanges(gen);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
    expect(backup2.status().uploadLagFrames).toBe(0);
    const restored = await restoredDump(h);
    expect(restored.dump).toBe(inspectPrimary(ns2).dump);
    expect(restored.dump).not.toBe(expected);
  });

  it.each([
    { k: 32, what: 'nothing of it recorded' },
    { k: 1, what: 'its snapshot recorded' },
  ])('after a checkpoint and a kill -9: the old generation ends at the checkpoint, the next WAL generation follows with .dep ($what)', async ({ k }) => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    const backup = await h.attach(ns, {}, { snapshotEveryGenerations: k });
    const conn = ns.connect();
    await writeRows(conn, 3);
    await backup.flush();
    // A transaction that commits after the checkpoint prepared, before it takes the write lock:
    // the hand-over (under the lock) stages it, so the state file names it once the checkpoint is done.
    const other = ns.connect();
    await run(other, 'BEGIN');
    await run(other, 'INSERT INTO t (v) VALUES (?)', ['between prepare and hand-over']);
    const checkpoint = framesOf(ns).checkpoint();
    await new Promise((resolve) => setImmediate(resolve));
    await run(other, 'COMMIT');
    expect(await checkpoint).toBe(true);
    const state = readState(new NamespacePaths(nsDir).bottomlessState)!;
    expect(state.lastFrameNo).toBe(framesOf(ns).replicationIndex());
    await writeRows(conn, 3); // a new WAL generation: in the log only
    const opened = backup.status().generation!;
    const paths = new NamespacePaths(nsDir);
    if (k === 1) await expect.poll(() => readState(paths.bottomlessState)?.generations.find((g) => g.id === opened)?.snapshot, { timeout: 5000 }).toMatch(/staged|uploaded/);
    backup.kill();
    const copy = h.crashCopy(nsDir);

    h.clock.advance(1000);
    const ns2 = await h.open(copy);
    const backup2 = await h.attach(ns2);
    await writeRows(ns2.connect(), 1);
    await backup2.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(2);
    expect(await depOf(h.storage, DB, gens[0]!)).toBe(gens[1]);
    // A generation the state knew goes on with its own id; one it did not know left nothing behind.
    if (k === 1) expect(gens[0]).toBe(opened);
    else expect(gens[0]).not.toBe(opened);
    expect(backup2.status().generation).toBe(gens[0]);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns2).dump);
  });

  it('after a clean shutdown the next WAL generation gets .dep on the previous one and no snapshot', async () => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    const backup = await h.attach(ns);
    await writeRows(ns.connect(), 3);
    await backup.close({ upload: true, timeoutMs: 10_000 });
    await ns.close();
    const gen = backup.status().generation;
    expect(readState(new NamespacePaths(nsDir).bottomlessState)?.cleanShutdown).toBe(true);

    h.clock.advance(1000);
    const ns2 = await h.open(nsDir);
    const backup2 = await h.attach(ns2);
    expect(backup2.status().generation).toBe(gen);
    await writeRows(ns2.connect(), 2);
    await backup2.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(2);
    expect(gens[1]).toBe(gen);
    expect(await depOf(h.storage, DB, gens[0]!)).toBe(gen);
    expect(await snapshotOf(h.storage, DB, gens[0]!)).toBeNull();
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns2).dump);
  });

  it('a replaced database (new log id) starts a generation with a snapshot and without .dep', async () => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    const backup = await h.attach(ns);
    await writeRows(ns.connect(), 3);
    await backup.close({ upload: true });
    await ns.close();
    invalidateLog(new NamespacePaths(nsDir));

    h.clock.advance(1000);
    const ns2 = await h.open(nsDir);
    const backup2 = await h.attach(ns2);
    await writeRows(ns2.connect(), 2);
    await backup2.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(2);
    expect(await depOf(h.storage, DB, gens[0]!)).toBeNull();
    expect(await snapshotOf(h.storage, DB, gens[0]!)).not.toBeNull();
    const restored = await restoredDump(h);
    expect(restored.restored.chain).toEqual([gens[0]]);
    expect(restored.dump).toBe(inspectPrimary(ns2).dump);
  });

  it('a live new log (the database replaced under a running namespace) also starts a fresh generation', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns);
    await writeRows(ns.connect(), 3);
    const g1 = backup.status().generation;
    await framesOf(ns).startNewLog('test: the database was replaced');
    expect(backup.status().awaitingFresh).toMatch(/new replication log/);
    await writeRows(ns.connect(), 2);
    await backup.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens[1]).toBe(g1);
    expect(await depOf(h.storage, DB, gens[0]!)).toBeNull();
    expect(await snapshotOf(h.storage, DB, gens[0]!)).not.toBeNull();
    expect(backup.status().awaitingFresh).toBeNull();
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('a damaged state file means a fresh generation, never a wrong continuation', async () => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    const backup = await h.attach(ns);
    await writeRows(ns.connect(), 2);
    await backup.close({ upload: true });
    await ns.close();
    fs.writeFileSync(new NamespacePaths(nsDir).bottomlessState, '{"version": 1, "dbName": ');
    h.clock.advance(1000);
    const ns2 = await h.open(nsDir);
    const backup2 = await h.attach(ns2);
    await writeRows(ns2.connect(), 1);
    await backup2.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(2);
    expect(await depOf(h.storage, DB, gens[0]!)).toBeNull();
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns2).dump);
  });

  it('enabled on a database whose WAL still holds frames: a fresh generation from the database file plus those frames', async () => {
    const nsDir = join(h.root, 'ns');
    const ns = await h.open(nsDir);
    await writeRows(ns.connect(), 4); // no uploader yet; the frames stay in the WAL
    const copy = h.crashCopy(nsDir);
    h.clock.advance(1000);
    const ns2 = await h.open(copy);
    const backup = await h.attach(ns2);
    await writeRows(ns2.connect(), 2);
    await backup.flush();
    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(1);
    expect(await snapshotOf(h.storage, DB, gens[0]!)).not.toBeNull();
    const ranges = await batchRanges(gens[0]!);
    expect(ranges[0]![0]).toBe(1);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns2).dump);
  });
});
