/**
 * Memory of an idle server: VmRSS of `libsqlctl serve` (default configuration, fresh data directory)
 * once `/health` answered 200 and it sat idle for IDLE_MS, relative to a bare fastify app with one
 * `/health` route (bench/bare-fastify.js) measured the same way. Each round is a fresh process;
 * rounds alternate (baseline first and last), the medians are compared.
 */
import { ensureBuilt } from './bottomless-harness.js';
import { memoryKiB, spawnServer, waitHealthy, type ServerKind } from './server-process.js';
import { medianResult } from './spread.js';
import type { Benchmark, BenchOptions, BenchResult } from './types.js';
import { benchTempDir, bracketed, fmtNumber, median } from './util.js';

const TARGET = 2;
const IDLE_MS = 2000;
const MIN_ROUNDS = 3;

interface Memory {
  kind: ServerKind;
  rssKiB: number;
  hwmKiB: number;
}

async function sample(opts: BenchOptions, kind: ServerKind): Promise<Memory> {
  const tmp = benchTempDir(opts, `idle-rss-${kind}`);
  const proc = spawnServer(opts, kind, 0, tmp.dir);
  try {
    const port = await Promise.race([proc.port(), new Promise<never>((_r, reject) => setTimeout(() => reject(new Error(`${kind}: no port within 60 s`)), 60_000))]);
    await waitHealthy(proc, port, 20, 60_000);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const m = memoryKiB(proc.pid);
    opts.log(`  ${kind.padEnd(8)} VmRSS ${fmtNumber(m.rss / 1024, 1)} MiB  VmHWM ${fmtNumber(m.hwm / 1024, 1)} MiB`);
    return { kind, rssKiB: m.rss, hwmKiB: m.hwm };
  } finally {
    await proc.stop();
    tmp.remove();
  }
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  if (process.platform !== 'linux') throw new Error('idle-rss reads /proc/<pid>/status: Linux only');
  ensureBuilt(opts);
  const rounds = Math.max(MIN_ROUNDS, opts.rounds);
  opts.log(`  ${rounds} rounds; each: spawn, /health 200, ${IDLE_MS} ms idle, read VmRSS; port 0 (read from the server's output)`);
  const { baselines, subjects } = await bracketed(
    rounds,
    () => sample(opts, 'baseline'),
    () => sample(opts, 'server'),
  );
  const mib = (xs: Memory[], pick: (m: Memory) => number = (m) => m.rssKiB): number[] => xs.map((m) => pick(m) / 1024);
  return medianResult({
    name: 'idle-rss',
    unit: 'MiB',
    subjects: mib(subjects),
    baselines: mib(baselines),
    target: TARGET,
    comparison: '<=',
    digits: 1,
    detail: `median VmRSS after /health 200 + ${IDLE_MS / 1000} s idle; peak (VmHWM) medians: server ${fmtNumber(median(mib(subjects, (m) => m.hwmKiB)), 1)} MiB, baseline ${fmtNumber(median(mib(baselines, (m) => m.hwmKiB)), 1)} MiB`,
  });
}

export const idleRss: Benchmark = {
  name: 'idle-rss',
  description: 'VmRSS of an idle `libsqlctl serve` (default config) ÷ a bare fastify app with /health (median of fresh processes)',
  run,
};
