/**
 * Replication benchmarks (docs/REPLICATION.md):
 *
 * - replication-lag: a primary in its own process takes a steady 500 single-row writes/s for 10 s;
 *   for each, the time from the primary's acknowledgement to the replica (in this process) having
 *   applied it. Target p99 < 50 ms — an absolute figure; the primary's own write latency measured in
 *   the same run is printed beside it.
 * - replica-catch-up: a replica that starts ~100 MB of log behind catches up over gRPC from a
 *   primary in its own process; baseline: the same log applied by the same applier in this process
 *   straight from the primary's frame source (no network). Target ratio ≥ 0.5.
 * - forwarded-writes: single-row writes sent to a replica (forwarded to the primary, answered when
 *   the primary answers; every later read on the replica waits for them) vs the same writes sent
 *   straight to the primary, alternating blocks of 100. Target p50 ratio ≤ 2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { ServeFlags } from '../src/config/serve-config.js';
import type { RunningServer } from '../src/server/server.js';
import { compiled } from './compiled.js';
import type { Benchmark, BenchOptions } from './types.js';
import { benchTempDir, bracketed, bracketMean, fmtNumber, mean, postJson } from './util.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = path.join(ROOT, 'bench/server-child.ts');
const READY_RE = /READY (\{.*\})/;

interface ChildServer {
  url: string;
  grpcUrl: string | null;
  stop(): Promise<void>;
}

async function spawnServer(opts: BenchOptions, flags: Partial<ServeFlags>): Promise<ChildServer> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(flags)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  };
  const unregister = opts.onCleanup(stop);
  const ready = await new Promise<{ http: number; grpc: number | null }>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = READY_RE.exec(out);
      if (m) resolve(JSON.parse(m[1]!) as { http: number; grpc: number | null });
    });
    child.once('exit', (code) => reject(new Error(`benchmark server exited with ${code} before it was ready`)));
  });
  return {
    url: `http://127.0.0.1:${ready.http}`,
    grpcUrl: ready.grpc === null ? null : `http://127.0.0.1:${ready.grpc}`,
    stop: async () => {
      unregister();
      await stop();
    },
  };
}

/** The compiled server (dist/) in this process. */
async function startLocal(opts: BenchOptions, flags: Partial<ServeFlags>): Promise<RunningServer> {
  const { resolveServeConfig, serveFlagDefaults, startServer, createLogger } = await compiled(opts);
  const config = await resolveServeConfig({ ...serveFlagDefaults(), 'no-welcome': true, 'http-listen-addr': '127.0.0.1:0', ...flags }, {});
  return startServer(config, { logger: createLogger({ level: 'warn' }) });
}

const PRIMARY: Partial<ServeFlags> = { 'http-listen-addr': '127.0.0.1:0', 'grpc-listen-addr': '127.0.0.1:0' };

/** One statement on a fresh stream; returns the statement result (with the replication index). */
async function exec(url: string, sql: string, args: unknown[] = []): Promise<{ replication_index?: string | null }> {
  const answer = (await postJson(`${url}/v2/pipeline`, {
    baton: null,
    requests: [{ type: 'execute', stmt: { sql, args } }, { type: 'close' }],
  })) as { results: { type: string; response?: { result?: { replication_index?: string | null } }; error?: unknown }[] };
  const first = answer.results[0];
  if (first?.type !== 'ok' || !first.response?.result) throw new Error(`statement failed: ${JSON.stringify(first)}`);
  return first.response.result;
}

function indexOf(result: { replication_index?: string | null }): bigint {
  if (typeof result.replication_index !== 'string') throw new Error('the primary reported no replication index');
  return BigInt(result.replication_index);
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const ms = (n: number): string => `${fmtNumber(n, 2)} ms`;

export const replicationLag: Benchmark = {
  name: 'replication-lag',
  description: 'acknowledged on the primary → applied on the replica, at 500 writes/s for 10 s (absolute target p99 < 50 ms)',
  async run(opts) {
    const tmp = benchTempDir(opts, 'lag');
    const primary = await spawnServer(opts, { ...PRIMARY, 'db-path': path.join(tmp.dir, 'primary') });
    const replica = await startLocal(opts, { 'db-path': path.join(tmp.dir, 'replica'), 'primary-grpc-url': primary.grpcUrl! });
    try {
      await exec(primary.url, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
      const seeded = await exec(primary.url, "INSERT INTO t (v) VALUES ('seed')");
      await replica.cluster.waitForIndex('default', indexOf(seeded));
      const RATE = 500;
      const SECONDS = 10;
      /** Open-loop load: a write every 2 ms whatever the answers do; returns lags and acks of every write. */
      const load = async (seconds: number): Promise<{ lags: number[]; acks: number[] }> => {
        const lags: number[] = [];
        const acks: number[] = [];
        const inFlight = new Set<Promise<void>>();
        const start = performance.now();
        for (let i = 0; i < RATE * seconds; i++) {
          const wait = start + (i * 1000) / RATE - performance.now();
          if (wait > 0) await sleep(wait);
          const sent = performance.now();
          const p = exec(primary.url, 'INSERT INTO t (v) VALUES (?)', [{ type: 'text', value: `row ${i}` }]).then(async (r) => {
            const acked = performance.now();
            acks.push(acked - sent);
            await replica.cluster.waitForIndex('default', indexOf(r));
            lags.push(Math.max(0, performance.now() - acked));
          });
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
        await Promise.all(inFlight);
        return { lags, acks };
      };
      // Both processes warm up (JIT, caches, the first checkpoints) at the same rate; not measured.
      await load(Math.max(3, opts.warmupS));
      const { lags, acks } = await load(SECONDS);
      const p99 = percentile(lags, 99);
      const budget = 50;
      return {
        name: this.name,
        unit: 'ms p99',
        value: p99,
        baseline: budget,
        ratio: p99 / budget,
        target: 1,
        comparison: '<=',
        details: [
          `replication-lag: ${lags.length} writes at ${RATE}/s; lag p50 ${ms(percentile(lags, 50))}, p99 ${ms(p99)}, max ${ms(Math.max(...lags))} (absolute; the baseline column is the 50 ms budget)`,
          `replication-lag: same run, the primary's own write latency p50 ${ms(percentile(acks, 50))}, p99 ${ms(percentile(acks, 99))}`,
        ],
      };
    } finally {
      await replica.close();
      await primary.stop();
      tmp.remove();
    }
  },
};

/** Fills the primary with about `mb` MB of log: big inserts of random blobs. */
async function fillLog(url: string, mb: number): Promise<bigint> {
  await exec(url, 'CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, b BLOB)');
  let index = 0n;
  const perStatement = 2000; // ~ 2000 × 3 KB ≈ 6 MB, ~1 500 frames
  while (Number(index) * 4120 < mb * 1_000_000) {
    const r = await exec(url, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${perStatement}) INSERT INTO big (b) SELECT randomblob(3000) FROM c`);
    index = indexOf(r);
  }
  return index;
}

export const replicaCatchUp: Benchmark = {
  name: 'replica-catch-up',
  description: 'a replica ~100 MB of log behind catching up over gRPC vs applying the same log locally',
  async run(opts) {
    const tmp = benchTempDir(opts, 'catchup');
    const primaryDir = path.join(tmp.dir, 'primary');
    let primary = await spawnServer(opts, { ...PRIMARY, 'db-path': primaryDir });
    let round = 0;
    try {
      const index = await fillLog(primary.url, 100);
      const mb = ((Number(index) + 1) * 4120) / 1_000_000;
      await primary.stop();
      const remote = async (): Promise<number> => {
        primary = await spawnServer(opts, { ...PRIMARY, 'db-path': primaryDir });
        const started = performance.now();
        const replica = await startLocal(opts, { 'db-path': path.join(tmp.dir, `replica-${round++}`), 'primary-grpc-url': primary.grpcUrl! });
        try {
          await replica.cluster.waitForIndex('default', index);
          return mb / ((performance.now() - started) / 1000);
        } finally {
          await replica.close();
          await primary.stop();
        }
      };
      const local = async (): Promise<number> => {
        const server = await startLocal(opts, { 'db-path': primaryDir });
        const { NamespaceDb, NamespacePaths, ReplicaRole } = await compiled(opts);
        const role = new ReplicaRole({});
        const db = new NamespaceDb({ paths: new NamespacePaths(path.join(tmp.dir, `local-${round++}`)), name: 'local', txnTimeoutMs: 60_000, role });
        const stop = new AbortController();
        try {
          const source = (await server.context.namespaces.get('default')).frames!.frameSource();
          const started = performance.now();
          await db.open();
          const following = role.follow(source, stop.signal);
          await role.waitForIndex(index);
          const rate = mb / ((performance.now() - started) / 1000);
          stop.abort();
          await following;
          return rate;
        } finally {
          stop.abort();
          await db.close();
          await server.close();
        }
      };
      const { baselines, subjects } = await bracketed(Math.max(1, Math.min(opts.rounds, 2)), local, remote);
      const baseline = bracketMean(baselines);
      const value = mean(subjects);
      return {
        name: this.name,
        unit: 'MB/s',
        value,
        baseline,
        ratio: value / baseline,
        target: 0.5,
        comparison: '>=',
        details: [`replica-catch-up: ${fmtNumber(mb, 1)} MB of log; over gRPC ${subjects.map((s) => fmtNumber(s, 1)).join(', ')} MB/s; local apply ${baselines.map((s) => fmtNumber(s, 1)).join(', ')} MB/s`],
      };
    } finally {
      await primary.stop();
      tmp.remove();
    }
  },
};

export const forwardedWrites: Benchmark = {
  name: 'forwarded-writes',
  description: 'single-row writes through a replica (forwarded; later reads on the replica see them) vs straight to the primary, p50 ratio',
  async run(opts) {
    const tmp = benchTempDir(opts, 'forward');
    const primary = await spawnServer(opts, { ...PRIMARY, 'db-path': path.join(tmp.dir, 'primary') });
    const replica = await spawnServer(opts, { 'http-listen-addr': '127.0.0.1:0', 'db-path': path.join(tmp.dir, 'replica'), 'primary-grpc-url': primary.grpcUrl! });
    try {
      await exec(primary.url, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
      await exec(replica.url, "INSERT INTO t (v) VALUES ('warm-up')");
      const direct: number[] = [];
      const forwarded: number[] = [];
      const BLOCK = 100;
      const write = async (url: string, into: number[], i: number): Promise<void> => {
        const started = performance.now();
        await exec(url, 'INSERT INTO t (v) VALUES (?)', [{ type: 'text', value: `row ${i}` }]);
        into.push(performance.now() - started);
      };
      // warm-up (JIT, pooled primary streams), not measured
      for (let i = 0; i < 200; i++) await write(i % 2 === 0 ? primary.url : replica.url, [], -i);
      for (let block = 0; block < 20; block++) {
        const [url, into] = block % 2 === 0 ? [primary.url, direct] : [replica.url, forwarded];
        for (let i = 0; i < BLOCK; i++) await write(url, into, block * BLOCK + i);
      }
      const p50d = percentile(direct, 50);
      const p50f = percentile(forwarded, 50);
      return {
        name: this.name,
        unit: 'ms p50',
        value: p50f,
        baseline: p50d,
        ratio: p50f / p50d,
        target: 2,
        comparison: '<=',
        details: [`forwarded-writes: ${forwarded.length} forwarded p50 ${ms(p50f)} p99 ${ms(percentile(forwarded, 99))}; ${direct.length} direct p50 ${ms(p50d)} p99 ${ms(percentile(direct, 99))}`],
      };
    } finally {
      await replica.stop();
      await primary.stop();
      tmp.remove();
    }
  },
};
