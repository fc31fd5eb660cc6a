/** FrameApplier recovery: what a crash (kill -9) or a power loss leaves, and what open makes of it. */
import { closeSync, openSync, statSync, truncateSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoggedTransaction } from '../../../src/engine/pipeline/transactions.js';
import { readClientWalIndex, writeClientWalIndex } from '../../../src/engine/replica/client-wal-index.js';
import { APPLIER_CRASH_POINTS, type ApplierCrashPoint } from '../../../src/engine/replica/crash-points.js';
import { ApplierScope } from '../../helpers/applier-scope.js';
import { redoOf, unappliedRedo } from '../../helpers/page-transactions.js';

const scope = new ApplierScope();
afterEach(() => scope.dispose());

const last = <T>(xs: readonly T[]): T => xs[xs.length - 1] as T;
const workload = () => scope.workload();

describe('FrameApplier recovery', () => {
  it.each(APPLIER_CRASH_POINTS)('re-applies the redo file on open after a crash at %s', async (point: ApplierCrashPoint) => {
    const primary = workload();
    const [t0, t1, t2] = primary.transactions as [LoggedTransaction, LoggedTransaction, LoggedTransaction];
    const replica = scope.replica();
    let armed = false;
    const crashHook = (p: ApplierCrashPoint): void => {
      if (armed && p === point) throw new Error(`simulated crash at ${p}`);
    };
    const applier = await replica.open({ crashHook });
    await applier.reset('55555555-6666-4777-8888-999999999999');
    await applier.apply([t0]);
    armed = true;
    await expect(applier.apply([t1, t2])).rejects.toThrow(/simulated crash/);
    expect(unappliedRedo(replica.paths, t0.lastFrameNo)).toEqual([redoOf(replica.paths, t2.lastFrameNo)]);
    expect(readClientWalIndex(replica.paths.clientWalIndex)?.committedFrameNo).toBe(t0.lastFrameNo);
    const reopened = await replica.reopen();
    expect(reopened.appliedFrameNo).toBe(t2.lastFrameNo);
    replica.expectAt(primary, t2);
    await reopened.apply(primary.transactions.slice(3));
    replica.expectAt(primary, last(primary.transactions));
  });

  it('recovers the index from the redo files when index writes were lost (power loss)', async () => {
    const primary = workload();
    const [t0, t1, t2] = primary.transactions as [LoggedTransaction, LoggedTransaction, LoggedTransaction];
    const replica = scope.replica();
    const applier = await replica.open();
    const logId = '77777777-8888-4999-8aaa-bbbbbbbbbbbb';
    await applier.reset(logId);
    for (const t of [t0, t1, t2]) await applier.apply([t]);
    // batches alternate between the two slots: the last two batches are both still on disk
    expect(redoOf(replica.paths, t2.lastFrameNo)).not.toBe(redoOf(replica.paths, t1.lastFrameNo));
    // the index writes after t0 never reached the disk
    writeClientWalIndex(replica.paths.clientWalIndex, { logId, committedFrameNo: t0.lastFrameNo });
    const reopened = await replica.reopen();
    expect(reopened.appliedFrameNo).toBe(t2.lastFrameNo);
    replica.expectAt(primary, t2);
  });

  it('re-applies the last batch at open: its pages may not have reached the disk although the index names it', async () => {
    const primary = workload();
    const [t0, t1] = primary.transactions as [LoggedTransaction, LoggedTransaction];
    const replica = scope.replica();
    const applier = await replica.open();
    await applier.reset('99999999-aaaa-4bbb-8ccc-dddddddddddd');
    await applier.apply([t0]);
    await applier.apply([t1]);
    await applier.flush();
    replica.close();
    // a power loss before the background sync: the pages of the last batch are lost
    const fd = openSync(replica.paths.db, 'r+');
    for (const f of t1.frames) writeSync(fd, Buffer.alloc(4096), 0, 4096, (f.pageNo - 1) * 4096);
    closeSync(fd);
    const reopened = await replica.reopen();
    expect(reopened.appliedFrameNo).toBe(t1.lastFrameNo);
    replica.expectAt(primary, t1);
  });

  it('re-applies the older slot when the newest one is torn and the index is behind both', async () => {
    const primary = workload();
    const [t0, t1, t2] = primary.transactions as [LoggedTransaction, LoggedTransaction, LoggedTransaction];
    const replica = scope.replica();
    let armed = false;
    const applier = await replica.open({
      crashHook: (p) => {
        if (armed && p === 'after-redo') throw new Error('simulated crash');
      },
    });
    const logId = '88888888-9999-4aaa-8bbb-cccccccccccc';
    await applier.reset(logId);
    await applier.apply([t0]);
    await applier.apply([t1]);
    armed = true;
    await expect(applier.apply([t2])).rejects.toThrow(/simulated crash/);
    const torn = redoOf(replica.paths, t2.lastFrameNo);
    truncateSync(torn, statSync(torn).size - 100);
    writeClientWalIndex(replica.paths.clientWalIndex, { logId, committedFrameNo: null });
    const reopened = await replica.reopen();
    expect(reopened.appliedFrameNo).toBe(t1.lastFrameNo);
    replica.expectAt(primary, t1);
    await reopened.apply([t2]);
    replica.expectAt(primary, t2);
  });

  it.each(['torn', 'corrupt'])('discards a %s redo file: that batch never reached the database', async (damage) => {
    const primary = workload();
    const [t0, t1] = primary.transactions as [LoggedTransaction, LoggedTransaction];
    const replica = scope.replica();
    let armed = false;
    const applier = await replica.open({
      crashHook: (p) => {
        if (armed && p === 'after-redo') throw new Error('simulated crash');
      },
    });
    await applier.reset('66666666-7777-4888-8999-aaaaaaaaaaaa');
    await applier.apply([t0]);
    armed = true;
    await expect(applier.apply([t1])).rejects.toThrow(/simulated crash/);
    const redo = redoOf(replica.paths, t1.lastFrameNo);
    if (damage === 'torn') truncateSync(redo, statSync(redo).size - 100);
    else {
      const bytes = readFileSync(redo);
      bytes[4200] = (bytes[4200] ?? 0) ^ 0xff;
      writeFileSync(redo, bytes);
    }
    const reopened = await replica.reopen();
    expect(reopened.appliedFrameNo).toBe(t0.lastFrameNo);
    replica.expectAt(primary, t0);
  });
});
