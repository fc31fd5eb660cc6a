/**
 * Start-up time: wall time from spawn to the first `/health` 200 of `libsqlctl serve` (default
 * configuration, a fresh data directory each round) relative to a bare fastify app with one
 * `/health` route (bench/bare-fastify.js). `/health` is polled every POLL_MS from the spawn on, so
 * the port is chosen here (free a moment before) instead of by the server. One unmeasured round of
 * each first (file cache), then alternating rounds (baseline first and last); medians compared.
 */
import { ensureBuilt } from './bottomless-harness.js';
import { freePort, spawnServer, waitHealthy, type ServerKind } from './server-process.js';
import { medianResult } from './spread.js';
import type { Benchmark, BenchOptions, BenchResult } from './types.js';
import { benchTempDir, bracketed, fmtNumber, median } from './util.js';

const TARGET = 3;
const POLL_MS = 5;
const LIMIT_MS = 60_000;
const MIN_ROUNDS = 5;

interface Timing {
  kind: ServerKind;
  /** Spawn → first answer of any status (the HTTP port is open). */
  listeningMs: number;
  /** Spawn → first 200. */
  healthyMs: number;
}

async function sample(opts: BenchOptions, kind: ServerKind, quiet = false): Promise<Timing> {
  const tmp = benchTempDir(opts, `startup-${kind}`);
  const port = await freePort();
  const t0 = performance.now();
  const proc = spawnServer(opts, kind, port, tmp.dir);
  try {
    const h = await waitHealthy(proc, port, POLL_MS, LIMIT_MS);
    const t: Timing = { kind, listeningMs: h.firstAnswerAt - t0, healthyMs: h.healthyAt - t0 };
    if (!quiet) opts.log(`  ${kind.padEnd(8)} /health 200 after ${fmtNumber(t.healthyMs)} ms (port open after ${fmtNumber(t.listeningMs)} ms)`);
    return t;
  } finally {
    await proc.stop();
    tmp.remove();
  }
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  ensureBuilt(opts);
  const rounds = Math.max(MIN_ROUNDS, opts.rounds);
  opts.log(`  ${rounds} rounds; /health polled every ${POLL_MS} ms from the spawn (port chosen here, free just before the spawn)`);
  for (const kind of ['baseline', 'server'] as const) await sample(opts, kind, true);
  const { baselines, subjects } = await bracketed(
    rounds,
    () => sample(opts, 'baseline'),
    () => sample(opts, 'server'),
  );
  const ms = (xs: Timing[], pick: (t: Timing) => number = (t) => t.healthyMs): number[] => xs.map(pick);
  return medianResult({
    name: 'startup',
    unit: 'ms',
    subjects: ms(subjects),
    baselines: ms(baselines),
    target: TARGET,
    comparison: '<=',
    detail: `median spawn → first /health 200; spawn → port open (first answer, any status): server ${fmtNumber(median(ms(subjects, (t) => t.listeningMs)))} ms, baseline ${fmtNumber(median(ms(baselines, (t) => t.listeningMs)))} ms`,
  });
}

export const startup: Benchmark = {
  name: 'startup',
  description: 'wall time spawn → first /health 200 of `libsqlctl serve` (default config, fresh data dir) ÷ a bare fastify app (median)',
  run,
};
