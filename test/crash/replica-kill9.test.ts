/**
 * Crash safety of a replica (docs/REPLICA_APPLIER.md) with real processes: a primary under
 * concurrent write load and a replica following it, the replica SIGKILLed at random moments and
 * killed by the applier's own crash points (LIBSQLCTL_TEST_APPLIER_CRASH_AT), restarted each time
 * on the same data directory and port. After every restart it must keep its log (no start-over),
 * catch up and converge: the same rows as the primary, integrity_check ok. While the load runs a
 * reader checks on the replica's own copy that every transaction is there whole (`total.n` equals
 * the row count: each write changes both in one transaction). Seed: REPLICA_KILL9_SEED=<n>.
 */
import { randomBytes, randomInt } from 'node:crypto';
import path from 'node:path';
import type { Client } from '@libsql/client';
import { describe, expect, it } from 'vitest';
import { APPLIER_CRASH_POINTS } from '../../src/engine/replica/crash-points.js';
import { within } from '../helpers/child-server.js';
import { expectConverged, ForwardedReadError, readLocal, startPrimary, startReplica, waitForCount, withClient, type ClusterNode } from '../helpers/cluster.js';
import { prng } from '../helpers/prng.js';
import { crashScratch } from '../helpers/crash-scratch.js';

const WRITERS = 3;
const MAX_PAYLOAD = 3 * 1024;
/** Pause of each writer after each write (ms). */
const WRITE_GAP_MS: readonly [number, number] = [10, 40];
const KILL_DELAY_MS: readonly [number, number] = [100, 700];
/** The crash point is reached at the n-th applied batch, n drawn from this range. */
const CRASH_AT_BATCH: readonly [number, number] = [1, 4];
/** Load that still runs this long after its round began is stopped (and the round fails). */
const ROUND_LOAD_BOUND_MS = 40_000;
const SEED = process.env.REPLICA_KILL9_SEED !== undefined ? Number(process.env.REPLICA_KILL9_SEED) : randomInt(2 ** 31);
const CRASH_ENV = 'LIBSQLCTL_TEST_APPLIER_CRASH_AT';

const between = (rand: () => number, [lo, hi]: readonly [number, number]): number => lo + Math.floor(rand() * (hi - lo + 1));

interface Load {
  /** Resolves once `n` writes of this load were acknowledged. */
  acked(n: number): Promise<void>;
  /** Writes acknowledged so far. */
  count(): number;
  /** Stops writers and reader; resolves with the reader's results. */
  stop(): Promise<{ acked: number; reads: number; skipped: Record<string, number>; violations: string[]; writeErrors: string[] }>;
}

/**
 * WRITERS writers on the primary (each write one transaction: insert, update or delete of `t`
 * together with `total`), and one reader on the replica's own copy checking `count(t) = total.n`.
 */
function startLoad(primary: ClusterNode, replica: () => ClusterNode, tag: string, rand: () => number): Load {
  let stopped = false;
  let acked = 0;
  const ackWaiters: { n: number; resolve: () => void }[] = [];
  const violations: string[] = [];
  const writeErrors: string[] = [];
  let reads = 0;
  const skipped: Record<string, number> = {};
  const writer = async (c: Client, w: number, r: () => number): Promise<void> => {
    const mine: string[] = [];
    for (let seq = 0; !stopped; seq++) {
      const pick = r();
      const id = `${tag}-${w}-${seq}`;
      const payload = randomBytes(Math.floor(r() * (MAX_PAYLOAD + 1)));
      try {
        if (pick < 0.1 && mine.length > 0) {
          const gone = mine.splice(Math.floor(r() * mine.length), 1)[0];
          await c.batch([{ sql: 'DELETE FROM t WHERE id = ?', args: [gone ?? ''] }, 'UPDATE total SET n = n - changes()'], 'write');
        } else if (pick < 0.25 && mine.length > 0) {
          await c.batch([{ sql: 'UPDATE t SET payload = ? WHERE id = ?', args: [payload, mine[Math.floor(r() * mine.length)] ?? ''] }, 'UPDATE total SET n = n'], 'write');
        } else {
          await c.batch([{ sql: 'INSERT INTO t(id, payload) VALUES (?, ?)', args: [id, payload] }, 'UPDATE total SET n = n + 1'], 'write');
          mine.push(id);
        }
        acked += 1;
        for (const waiter of ackWaiters.filter((x) => x.n <= acked)) {
          ackWaiters.splice(ackWaiters.indexOf(waiter), 1);
          waiter.resolve();
        }
        // A bounded write rate: load the replica's applier, not the machine (servers and writers share the CPUs).
        await new Promise((resolve) => setTimeout(resolve, WRITE_GAP_MS[0] + r() * (WRITE_GAP_MS[1] - WRITE_GAP_MS[0])));
      } catch (err) {
        writeErrors.push(`writer ${w}: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
    }
  };
  const reader = async (): Promise<void> => {
    while (!stopped) {
      const node = replica();
      if (node.alive()) {
        try {
          const [[row] = []] = await readLocal(node, ['SELECT (SELECT count(*) FROM t), (SELECT n FROM total)']);
          reads += 1;
          if (row?.[0] !== row?.[1]) violations.push(`${node.label} pid ${node.proc.pid}: count(t) ${row?.[0]} but total.n ${row?.[1]}`);
        } catch (err) {
          // The replica is down or restarting, or not caught up (the primary answered): not a finding.
          // A restarted replica listens before its database is open and answers 503 until then.
          const text = `${String(err)} ${String((err as Error).cause)}`;
          const kind =
            err instanceof ForwardedReadError ? 'forwarded' : /fetch failed|ECONNREFUSED|ECONNRESET|other side closed/i.test(text) ? 'connection' : /HTTP status 503\b/.test(text) ? 'starting' : null;
          if (kind === null) violations.push(`read on ${node.label}: ${String(err)}`);
          else skipped[kind] = (skipped[kind] ?? 0) + 1;
          // not up yet: ask again less often
          if (kind === 'connection' || kind === 'starting') await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const running = Promise.all([...Array.from({ length: WRITERS }, (_, w) => withClient(primary.url, (c) => writer(c, w, prng(Math.floor(rand() * 2 ** 31))))), reader()]);
  let boundHit = false;
  const bound = setTimeout(() => {
    boundHit = true;
    stopped = true;
  }, ROUND_LOAD_BOUND_MS);
  let stopping: ReturnType<Load['stop']> | null = null;
  return {
    acked: (n) => (acked >= n ? Promise.resolve() : new Promise<void>((resolve) => ackWaiters.push({ n, resolve }))),
    count: () => acked,
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        clearTimeout(bound);
        await within(running, 15_000, 'writers and reader to stop');
        if (boundHit) writeErrors.push(`the load ran into its ${ROUND_LOAD_BOUND_MS} ms bound`);
        return { acked, reads, skipped, violations, writeErrors };
      })()),
  };
}

const { dir: scratch, context } = crashScratch('libsqlctl-replica-kill9-');

describe('crash safety of a replica (child processes)', () => {
  it(`under write load, per round a SIGKILL at a random moment and then one of the applier's crash points: restart, catch up, converge`, async ({ onTestFailed }) => {
    context.length = 0;
    let nodes: ClusterNode[] = [];
    onTestFailed(() => console.error(`replica kill9 seed ${SEED} (rerun with REPLICA_KILL9_SEED=${SEED})\n${context.join('\n')}\n${nodes.map((n) => n.report()).join('\n')}`));
    const rand = prng(SEED);
    const primary = await startPrimary(path.join(scratch, 'primary'));
    const replica = await startReplica(path.join(scratch, 'replica'), { primaryUrl: primary.grpcUrl });
    nodes = [primary, replica];
    await withClient(primary.url, (c) =>
      c.batch(['CREATE TABLE t(id TEXT PRIMARY KEY, payload BLOB)', 'CREATE TABLE total(n INTEGER NOT NULL)', 'INSERT INTO total VALUES (0)'], 'write'),
    );
    const { logId } = await replica.waitForLog(/^connected to the primary$/);
    // The reader needs the tables on the replica (before that it rightly reads "no such table").
    await waitForCount(replica, 'total', 1);

    const summary: string[] = [];
    for (const [i, point] of APPLIER_CRASH_POINTS.entries()) {
      const round = i + 1;
      const roundStarted = performance.now();
      context.push(`=== round ${round}`);
      const load = startLoad(primary, () => replica, `r${round}`, rand);
      try {
        await within(load.acked(1), 10_000, `round ${round}: first acknowledged write`);
        // 1. SIGKILL at a random moment of the load (a deadline, not a wait for something that could be awaited).
        const delayMs = between(rand, KILL_DELAY_MS);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        expect(replica.alive(), `round ${round}: replica alive when the kill was due`).toBe(true);
        expect((await replica.kill()).signal, `round ${round}: exit of the killed replica`).toBe('SIGKILL');
        // 2. Restarted with a crash point: it recovers from the kill, catches up under load, and the
        //    applier kills its own process at `point` of its n-th batch.
        const n = between(rand, CRASH_AT_BATCH);
        const how = `SIGKILL after ${delayMs} ms, then crash point ${point}:${n}`;
        context.push(`round ${round}: ${how}`);
        await replica.restart({ env: { [CRASH_ENV]: `${point}:${n}` }, mayExit: true });
        const crashed = await within(replica.proc.exited, 15_000, `round ${round}: the replica crashing itself at ${point}:${n}`);
        expect(crashed.signal, `round ${round}: exit at the crash point ${point}:${n}`).toBe('SIGKILL');
        expect(replica.log().filter((l) => l.level >= 50).map((l) => l.msg), `round ${round}: errors before the crash point`).toEqual([]);
        // 3. Restarted normally: the interrupted batch is finished from its redo file, the log is kept.
        const restartAt = performance.now();
        await replica.restart();
        const restartMs = Math.round(performance.now() - restartAt);
        const hello = await replica.waitForLog(/^(re)?connected to the primary$/);
        expect(replica.countLog(/^re-applying an interrupted replica batch$/), `round ${round}: the batch interrupted at ${point} is re-applied at restart`).toBe(1);
        expect(replica.log().filter((l) => /starts over|reset for a new log|redo file/.test(l.msg)).map((l) => l.msg), `round ${round}: the replica kept its log and redo files`).toEqual([]);
        expect(hello.logId, `round ${round}: the primary's log`).toBe(logId);
        // Writes go on while the replica catches up; then the load stops and the replica must converge.
        await within(load.acked(load.count() + 20), 10_000, `round ${round}: writes after the restart`);
        const result = await load.stop();
        expect(result.writeErrors, `round ${round}: writes refused by the primary`).toEqual([]);
        expect(result.violations, `round ${round}: torn or inconsistent reads on the replica`).toEqual([]);
        const rows = await expectConverged(primary, replica, ['t', 'total']);
        const line =
          `round ${round}: ${how}; acked ${result.acked}, rows ${rows}, applied at restart ${String(hello.appliedIndex)} of ${String(hello.primaryIndex)} ` +
          `(lag ${String(hello.lagFrames)}), replica reads checked ${result.reads} (skipped ${JSON.stringify(result.skipped)}); restart ${restartMs} ms, round ${Math.round(performance.now() - roundStarted)} ms`;
        summary.push(line);
        context.push(line);
      } finally {
        await load.stop();
      }
    }
    expect(replica.alive()).toBe(true);
    expect(await replica.stop(), 'clean stop of the replica').toEqual({ code: 0, signal: null });
    expect(await primary.stop(), 'clean stop of the primary').toEqual({ code: 0, signal: null });
    console.log(`replica kill9 seed ${SEED}\n${summary.join('\n')}`);
  }, 150_000);
});
