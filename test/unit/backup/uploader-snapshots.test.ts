/**
 * Snapshots and the staging cap (docs/BOTTOMLESS.md "Uploader"): which generations get one, that a
 * snapshot the store refuses or that is still being read never holds a checkpoint back, and that
 * dropped staged frames are never bridged: a fresh generation (snapshot, no `.dep`) follows.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackupRole } from '../../../src/backup/uploader/options.js';
import { framesOf, inspectPrimary, run } from '../../helpers/engine-log.js';
import { DB, depOf, generationsOf, Harness, markerOf, restoredDump, roleWith, slowSnapshotRole, snapshotOf, writeRows } from './uploader-fixtures.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => h.dispose());

/** Which generations (oldest first) have a snapshot. */
async function snapshotted(): Promise<boolean[]> {
  const gens = (await generationsOf(h.storage, DB)).reverse();
  return Promise.all(gens.map(async (g) => (await snapshotOf(h.storage, DB, g)) !== null));
}

/** `n` generations: a write, then a checkpoint, n - 1 times, then a last write. */
async function generations(ns: Awaited<ReturnType<Harness['open']>>, n: number): Promise<void> {
  const conn = ns.connect();
  for (let i = 0; i < n; i++) {
    if (i > 0) expect(await framesOf(ns).checkpoint()).toBe(true);
    h.clock.advance(1000);
    await writeRows(conn, 1);
  }
}

/** A role whose checkpoints are counted, not run (each "did not complete"): the test checkpoints when it means to. */
function countingCheckpoints(ns: Awaited<ReturnType<Harness['open']>>): { role: BackupRole; asked: { count: number } } {
  const asked = { count: 0 };
  const role = roleWith(ns, {
    checkpoint: () => {
      asked.count += 1;
      return Promise.resolve(false);
    },
  });
  return { role, asked };
}

describe('uploader: snapshot policy', () => {
  it('snapshots the first generation, then every K generations', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, {}, { snapshotEveryGenerations: 3 });
    await generations(ns, 7);
    await backup.flush();
    expect(await snapshotted()).toEqual([true, false, false, true, false, false, true]);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('with LIBSQL_BOTTOMLESS_SKIP_SNAPSHOT only the required snapshot is taken; the WAL-bytes rule also triggers one', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { skipSnapshot: true }, { snapshotEveryGenerations: 1 });
    await generations(ns, 3);
    await backup.flush();
    expect(await snapshotted()).toEqual([true, false, false]);

    const h2 = new Harness();
    try {
      const ns2 = await h2.open(join(h2.root, 'ns'));
      const b2 = await h2.attach(ns2, {}, { snapshotEveryWalBytes: 1 });
      const conn = ns2.connect();
      await writeRows(conn, 1);
      expect(await framesOf(ns2).checkpoint()).toBe(true);
      await writeRows(conn, 1);
      await b2.flush();
      const gens = await generationsOf(h2.storage, DB);
      expect(await snapshotOf(h2.storage, DB, gens[0]!)).not.toBeNull();
    } finally {
      await h2.dispose();
    }
  });

  it('a snapshot the store refuses never blocks a checkpoint; it goes up once the store takes it', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, {}, { snapshotEveryGenerations: 1 });
    h.storage.failing = (key) => key.endsWith('/db.gz');
    await generations(ns, 4); // three checkpoints, each completes
    await expect.poll(() => h.storage.failures, { timeout: 5000 }).toBeGreaterThan(4);
    // The first generation has no snapshot in the store yet: nothing is restorable.
    expect(backup.status().lastDurableFrameNo).toBeNull();
    expect(backup.status().lastError).toMatch(/db\.gz/);
    h.storage.failing = () => false;
    await backup.flush();
    expect(await snapshotted()).toEqual([true, true, true, true]);
    expect(backup.status().uploadLagFrames).toBe(0);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('a snapshot still being read holds checkpoints back (the file must not change under it); they go on once it is done', async () => {
    const ns = await h.open(join(h.root, 'ns'), { prepareTimeoutMs: 1 });
    const { role, slow } = slowSnapshotRole(ns);
    const backup = await h.attach(ns, {}, { snapshotEveryGenerations: 1, snapshotChunkBytes: 4096 }, role);
    const conn = ns.connect();
    await writeRows(conn, 3);
    await backup.flush();
    expect(await framesOf(ns).checkpoint()).toBe(true);
    slow.on = true;
    await writeRows(conn, 1); // generation 2 opens; its snapshot would read 1 GiB
    expect(await framesOf(ns).checkpoint()).toBe(false); // held back, commits go on
    await writeRows(conn, 1);
    slow.on = false;
    await expect.poll(() => framesOf(ns).checkpoint(), { timeout: 10_000 }).toBe(true);
    await writeRows(conn, 1);
    await backup.flush();
    expect(await snapshotted()).toEqual([true, true, true]);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('a snapshot whose generation holds back more WAL than allowed is given up: the checkpoint goes ahead', async () => {
    const ns = await h.open(join(h.root, 'ns'), { prepareTimeoutMs: 1 });
    const { role, slow } = slowSnapshotRole(ns);
    const backup = await h.attach(ns, {}, { snapshotEveryGenerations: 1, snapshotChunkBytes: 4096, snapshotHoldWalBytes: 1 }, role);
    const conn = ns.connect();
    await writeRows(conn, 3);
    await backup.flush();
    expect(await framesOf(ns).checkpoint()).toBe(true);
    slow.on = true;
    await writeRows(conn, 1); // generation 2 opens; its snapshot would read 1 GiB
    expect(await framesOf(ns).checkpoint()).toBe(true); // does not wait for it
    slow.on = false;
    await writeRows(conn, 1);
    await backup.flush();
    expect(await snapshotted()).toEqual([true, false, true]);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });
});

describe('uploader: staging cap', () => {
  it('past the cap the oldest staged frames are dropped, and a fresh generation begins once the store is back', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchMaxFrames: 2 }, { stagingCapBytes: 40_000 });
    const conn = ns.connect();
    await writeRows(conn, 2);
    await backup.flush();
    const first = backup.status().generation!;
    h.storage.failing = () => true;
    for (let i = 0; i < 15; i++) await writeRows(conn, 1, 2, 3000);
    await expect.poll(() => backup.status().awaitingFresh, { timeout: 5000 }).toMatch(/staging cap/);
    expect(backup.status().stagedBytes).toBeLessThanOrEqual(40_000 + 200_000); // batches within the cap, plus the first snapshot
    await run(conn, 'INSERT INTO t (v) VALUES (?)', ['while awaiting a fresh generation']);
    h.storage.failing = () => false;
    expect(await framesOf(ns).checkpoint()).toBe(true);
    await writeRows(conn, 1);
    await backup.flush();
    const status = backup.status();
    expect(status.awaitingFresh).toBeNull();
    expect(status.generation).not.toBe(first);
    expect(await depOf(h.storage, DB, status.generation!)).toBeNull();
    expect(await snapshotOf(h.storage, DB, status.generation!)).not.toBeNull();
    const restored = await restoredDump(h);
    expect(restored.restored.chain).toEqual([status.generation]);
    expect(restored.dump).toBe(inspectPrimary(ns).dump);
    expect(status.uploadLagFrames).toBe(0);
    // The damaged generation is never declared complete.
    expect((await markerOf(h.storage, DB, first))?.sealed).not.toBe(true);
  });

  it('a commit whose arrival cuts the batch that crosses the cap waits for the fresh generation too; it begins at the checkpoint asked for, without a commit', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const { role, asked } = countingCheckpoints(ns);
    // Batches are cut only by their interval, i.e. by the next commit once the (fake) clock passed it.
    const backup = await h.attach(ns, {}, { stagingCapBytes: 40_000 }, role);
    const conn = ns.connect();
    await writeRows(conn, 2);
    await backup.flush();
    h.storage.failing = () => true;
    for (let i = 0; i < 15 && backup.status().awaitingFresh === null; i++) {
      await writeRows(conn, 1, 2, 3000);
      h.clock.advance(60_000);
    }
    expect(backup.status().awaitingFresh).toMatch(/staging cap/);
    const damaged = backup.status().generation;
    await writeRows(conn, 2, 2, 3000);
    // A batch of the damaged generation left in the stager would never stage ("encoded out of order").
    expect(backup.status().lastError ?? '').not.toMatch(/out of order/);
    expect([backup.status().awaitingFresh, backup.status().generation]).toEqual(['staged frames were dropped (staging cap)', damaged]);
    h.storage.failing = () => false;
    await expect.poll(() => asked.count, { timeout: 5000 }).toBeGreaterThan(0);
    expect(await framesOf(ns).checkpoint()).toBe(true);
    // No commit after the checkpoint: the database file holds everything, the fresh generation is its snapshot.
    await backup.flush();
    const status = backup.status();
    expect(status).toMatchObject({ awaitingFresh: null, uploadLagFrames: 0, lastDurableFrameNo: framesOf(ns).replicationIndex() });
    expect(status.generation).not.toBe(damaged);
    expect(await depOf(h.storage, DB, status.generation!)).toBeNull();
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
    await writeRows(conn, 1);
    await backup.flush();
    expect(backup.status().generation).toBe(status.generation);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });
  it('while the fresh generation is awaited, its checkpoint is asked for again until one runs: without writes or uploads to prompt it', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const { role, asked } = countingCheckpoints(ns);
    const backup = await h.attach(ns, { batchMaxFrames: 2 }, { stagingCapBytes: 40_000, freshCheckpointIntervalMs: 20 }, role);
    const conn = ns.connect();
    await writeRows(conn, 2);
    await backup.flush();
    h.storage.failing = () => true;
    for (let i = 0; i < 15 && backup.status().awaitingFresh === null; i++) await writeRows(conn, 1, 2, 3000);
    expect(backup.status().awaitingFresh).toMatch(/staging cap/);
    h.storage.failing = () => false;
    // The store answers again; what was left uploads, and the checkpoints asked for meanwhile did not run.
    await backup.flush();
    const before = asked.count;
    // No commit and nothing to upload from here on: only the uploader's own timer can ask again.
    h.clock.advance(60_000);
    await expect.poll(() => asked.count, { timeout: 5000 }).toBeGreaterThan(before);
    expect(await framesOf(ns).checkpoint()).toBe(true);
    await backup.flush();
    expect(backup.status()).toMatchObject({ awaitingFresh: null, uploadLagFrames: 0, timersArmed: 0 });
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });
});
