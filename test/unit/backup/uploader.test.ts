/**
 * The bottomless uploader on a real namespace (docs/BOTTOMLESS.md "Uploader"): bottomless' object
 * layout, generations across checkpoints, batching rules, an idle uploader, a store that is down.
 * Everything is checked by rebuilding the database from the store with an independent reader.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generationPrefix, parseBatchName } from '../../../src/backup/format/layout.js';
import { decodeCommitTimes, decodeMeta, META_BATCH_COMMITS } from '../../../src/backup/format/objects.js';
import { framesOf, inspectPrimary, run } from '../../helpers/engine-log.js';
import { DB, depOf, generationsOf, Harness, keysOf, markerOf, restoredDump, snapshotOf, writeRows } from './uploader-fixtures.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => h.dispose());

/** Object names of a generation. */
async function namesOf(gen: string): Promise<string[]> {
  return (await keysOf(h.storage, generationPrefix(DB, gen))).map((k) => k.slice(k.lastIndexOf('/') + 1));
}

describe('uploader: layout and generations', () => {
  it('writes bottomless objects; a checkpoint opens a generation with .dep; the store restores to the end and to a commit time', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns);
    const conn = ns.connect();
    const first = backup.status().generation;
    expect(first).not.toBeNull();
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      await writeRows(conn, 1);
    }
    const midTime = h.clock.now();
    const midDump = inspectPrimary(ns).dump;
    h.clock.advance(5000);
    await writeRows(conn, 3);
    expect(await framesOf(ns).checkpoint()).toBe(true);
    h.clock.advance(1000);
    await writeRows(conn, 2);
    await backup.flush();

    const gens = await generationsOf(h.storage, DB);
    expect(gens).toHaveLength(2);
    const [g2, g1] = gens as [string, string];
    expect(g1).toBe(first);
    expect(backup.status().generation).toBe(g2);
    expect(await depOf(h.storage, DB, g2)).toBe(g1);
    expect(await depOf(h.storage, DB, g1)).toBeNull();
    // The first generation ever has a snapshot; the second does not (every 32 by default).
    expect(await snapshotOf(h.storage, DB, g1)).not.toBeNull();
    expect(await snapshotOf(h.storage, DB, g2)).toBeNull();
    const names1 = await namesOf(g1);
    expect(names1.slice(0, 3)).toEqual(['.changecounter', '.libsqlctl-durable', '.meta']);
    expect(names1.at(-1)).toBe('db.gz');
    const meta = decodeMeta((await h.storage.get(generationPrefix(DB, g2) + '.meta')).body, '.meta');
    expect(meta.pageSize).toBe(4096);

    // Batch names: 12-digit ranges from frame 1, contiguous, the commit time of their last commit.
    for (const g of gens) {
      let next = 1;
      for (const name of (await namesOf(g)).filter((n) => parseBatchName(n))) {
        expect(name).toMatch(/^\d{12}-\d{12}-\d+\.gz$/);
        const b = parseBatchName(name)!;
        expect(b.first).toBe(next);
        next = b.last + 1;
        const put = h.storage.puts.find((p) => p.key.endsWith(`${g}/${name}`))!;
        const commits = decodeCommitTimes(put.metadata[META_BATCH_COMMITS]!, b.first, name, b.last);
        expect(commits.length).toBeGreaterThan(0);
        expect(commits.at(-1)!.lastFrame).toBe(b.last);
        expect(Math.floor(commits.at(-1)!.unixMs / 1000)).toBe(b.unixSecs);
      }
    }
    const m1 = await markerOf(h.storage, DB, g1);
    expect(m1?.sealed).toBe(true);
    const m2 = await markerOf(h.storage, DB, g2);
    expect(m2?.sealed).toBe(false);
    expect(m2?.lastFrameNo).toBe(framesOf(ns).replicationIndex());
    expect(backup.status()).toMatchObject({ uploadLagFrames: 0, lastDurableFrameNo: framesOf(ns).replicationIndex(), lastError: null });

    const end = await restoredDump(h);
    expect(end.restored.chain).toEqual([g2, g1]);
    expect(end.dump).toBe(inspectPrimary(ns).dump);
    const mid = await restoredDump(h, { atMs: midTime });
    expect(mid.restored.chain).toEqual([g1]);
    expect(mid.dump).toBe(midDump);
  });

  it('cuts batches by frame count (a bigger transaction stays whole) and by the batch interval', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchMaxFrames: 8, batchIntervalMs: 10_000 });
    const conn = ns.connect();
    await writeRows(conn, 1, 40, 3000); // one transaction of far more than 8 frames
    await writeRows(conn, 6, 1, 10);
    h.clock.advance(10_000);
    await writeRows(conn, 1, 1, 10); // after the interval: its own batch
    await backup.flush();
    const [gen] = await generationsOf(h.storage, DB);
    const batches = (await namesOf(gen!)).map((n) => parseBatchName(n)).filter((b) => b !== null);
    const sizes = batches.map((b) => b.last - b.first + 1);
    // The table's creation, then the big transaction alone, then the small ones 8 frames at most.
    expect(sizes.filter((n) => n > 8)).toHaveLength(1);
    expect(sizes[1]).toBeGreaterThan(8);
    expect(sizes.length).toBeGreaterThan(3);
    expect(batches.at(-1)!.unixSecs).toBe(Math.floor(h.clock.now() / 1000));
    expect(batches.at(-2)!.unixSecs).toBe(Math.floor((h.clock.now() - 10_000) / 1000));

    expect(backup.status().uploadLagFrames).toBe(0);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('cuts a batch when its commit-time list is full', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchMaxFrames: 1_000_000, batchIntervalMs: 100_000_000 });
    const conn = ns.connect();
    await run(conn, 'CREATE TABLE k (v INTEGER)');
    // Irregular commit times pack little: the list fills within a few hundred commits.
    for (let i = 0; i < 2000; i++) {
      h.clock.advance(1 + ((i * 7919) % 4999));
      await run(conn, 'INSERT INTO k VALUES (?)', [BigInt(i)]);
    }
    await backup.flush();
    const [gen] = await generationsOf(h.storage, DB);
    const puts = h.storage.puts.filter((p) => p.key.startsWith(generationPrefix(DB, gen!)) && parseBatchName(p.key.slice(p.key.lastIndexOf('/') + 1)));
    expect(puts.length).toBeGreaterThan(1);
    let commits = 0;
    for (const p of puts) {
      const value = p.metadata[META_BATCH_COMMITS]!;
      expect(value.length).toBeLessThanOrEqual(1800);
      if (p !== puts.at(-1)) expect(value.length).toBeGreaterThan(1700); // cut because full
      const b = parseBatchName(p.key.slice(p.key.lastIndexOf('/') + 1))!;
      commits += decodeCommitTimes(value, b.first, p.key, b.last).length;
    }
    expect(commits).toBe(2001);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });
});

describe('uploader: idle and outages', () => {
  it('makes no request and arms no timer once everything is uploaded', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchIntervalMs: 1000 });
    await writeRows(ns.connect(), 3);
    expect(backup.status().timersArmed).toBeGreaterThan(0); // the batch interval, while a batch is open
    await backup.flush();
    expect(backup.status().timersArmed).toBe(0);
    expect(h.timers.active.size).toBe(0);
    const requests = h.storage.requests;
    for (let i = 0; i < 5; i++) {
      h.clock.advance(60_000);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(h.storage.requests).toBe(requests);
    expect(h.timers.active.size).toBe(0);
    // A checkpoint with nothing new written changes nothing either.
    await framesOf(ns).checkpoint();
    await backup.flush();
    expect(h.storage.requests).toBe(requests);
  });

  it('a checkpoint under a steady stream of commits stages what was committed and goes on (no chase until the prepare timeout)', async () => {
    // A prepare timeout far beyond the test's: the checkpoint can only finish by preparation ending.
    const ns = await h.open(join(h.root, 'ns'), { prepareTimeoutMs: 600_000 });
    const backup = await h.attach(ns);
    const conn = ns.connect();
    await writeRows(conn, 1);
    let writing = true;
    let during = 0;
    const writer = (async () => {
      while (writing) {
        await writeRows(conn, 1, 1, 100);
        during += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    try {
      await expect.poll(() => during, { timeout: 5000 }).toBeGreaterThan(5);
      expect(await framesOf(ns).checkpoint()).toBe(true);
    } finally {
      writing = false;
      await writer;
    }
    await writeRows(conn, 1); // the first commit of the next WAL generation opens the next generation
    await backup.flush();
    expect((await generationsOf(h.storage, DB)).length).toBe(2);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });

  it('keeps serving SQL while the store is down; the lag grows, then the uploads catch up', async () => {
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchMaxFrames: 4 });
    const conn = ns.connect();
    await writeRows(conn, 2);
    await backup.flush();
    h.storage.failing = () => true;
    await writeRows(conn, 10);
    expect(await framesOf(ns).checkpoint()).toBe(true);
    await writeRows(conn, 5);
    // Staging goes on locally; the store refuses every put meanwhile.
    await expect.poll(() => h.storage.failures, { timeout: 5000 }).toBeGreaterThan(3);
    const during = backup.status();
    expect(during.uploadLagFrames).toBeGreaterThan(10);
    expect(during.stagedBytes).toBeGreaterThan(0);
    expect(during.lastError).toMatch(/injected failure/);
    expect(during.lastDurableFrameNo).not.toBe(framesOf(ns).replicationIndex());
    h.storage.failing = () => false;
    await backup.flush();
    const after = backup.status();
    expect(after).toMatchObject({ uploadLagFrames: 0, stagedBytes: 0, lastError: null, lastDurableFrameNo: framesOf(ns).replicationIndex() });
    expect(after.errors).toBeGreaterThan(3);
    expect((await restoredDump(h)).dump).toBe(inspectPrimary(ns).dump);
  });
});
