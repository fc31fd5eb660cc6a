/** The replication log across restarts: clean restarts, with or without writes in between, keep the log. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineScope, framesOf, run } from '../../helpers/engine-log.js';

let scope: EngineScope;
afterEach(() => scope.dispose());

describe('replication log across restarts', () => {
  it('keeps its log id through restarts without writes after a checkpoint-triggering workload', async () => {
    scope = new EngineScope();
    const dir = join(scope.tempDir(), 'ns');
    // small WAL threshold: checkpoints happen in the commit path, like a busy server's
    let ns = await scope.open(dir, { checkpointWalBytes: 64 * 1024 });
    const conn = ns.connect();
    await run(conn, 'CREATE TABLE t (b BLOB)');
    for (let i = 0; i < 20; i++) await run(conn, 'INSERT INTO t VALUES (randomblob(20000))');
    conn.close();
    const logId = framesOf(ns).logId;
    const index = ns.replicationIndex();
    await ns.close();
    for (let restart = 0; restart < 3; restart++) {
      ns = await scope.open(dir, { checkpointWalBytes: 64 * 1024 });
      expect(framesOf(ns).logId).toBe(logId);
      expect(ns.replicationIndex()).toBe(index);
      await ns.close();
    }
    ns = await scope.open(dir, { checkpointWalBytes: 64 * 1024 });
    const again = ns.connect();
    await run(again, 'INSERT INTO t VALUES (1)');
    again.close();
    await ns.close();
    ns = await scope.open(dir, { checkpointWalBytes: 64 * 1024 });
    expect(framesOf(ns).logId).toBe(logId);
    expect(ns.replicationIndex()).toBeGreaterThan(index!);
  });
});
