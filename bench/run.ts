/**
 * `npm run bench [-- --only <name>[,<name>…]] [--duration <s>] [--warmup <s>] [--rounds <n>] [--connections <n>] [--list]`
 *
 * Runs the benchmarks in sequence and prints a table of ratios against baselines measured in the
 * same run (absolute numbers on a shared, noisy machine mean little). Exit code 1 when a benchmark
 * fails or misses its target. Add a benchmark by writing `bench/<name>.ts` exporting a `Benchmark`
 * and listing it in BENCHMARKS.
 */
import { parseArgs } from 'node:util';
import { bottomlessRestore } from './bottomless.js';
import { bottomlessIdle, bottomlessLag, bottomlessUpload } from './bottomless-writes.js';
import { engineInserts } from './engine-inserts.js';
import { logReplay } from './log-replay.js';
import { idleRss } from './idle-rss.js';
import { pointReads, pointReadsCpu } from './point-reads.js';
import { forwardedWrites, replicaCatchUp, replicationLag } from './replication.js';
import { startup } from './startup.js';
import { passes, type Benchmark, type BenchOptions, type BenchResult } from './types.js';
import { fmtNumber } from './util.js';
import { wsPointReads } from './ws-point-reads.js';

const BENCHMARKS: Benchmark[] = [
  pointReads,
  pointReadsCpu,
  wsPointReads,
  idleRss,
  startup,
  engineInserts,
  logReplay,
  replicationLag,
  replicaCatchUp,
  forwardedWrites,
  bottomlessRestore,
  bottomlessLag,
  bottomlessUpload,
  bottomlessIdle,
];

type Cleanup = () => Promise<void> | void;
const cleanups = new Set<Cleanup>();

function onCleanup(fn: Cleanup): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

async function runCleanups(): Promise<void> {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn);
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`cleanup failed: ${String(err)}\n`);
    }
  }
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: cleaning up\n`);
    void runCleanups().finally(() => process.exit(code));
  });
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${raw}`);
  return n;
}

interface Row {
  name: string;
  result: BenchResult | null;
  error: string | null;
}

function table(rows: Row[]): string {
  const header = ['benchmark', 'value', 'baseline', 'ratio', 'target', 'result'];
  const lines = rows.map(({ name, result: r, error }) =>
    r
      ? [
          name,
          `${fmtNumber(r.value)} ${r.unit}`,
          `${fmtNumber(r.baseline)} ${r.unit}`,
          fmtNumber(r.ratio, 3),
          `${r.comparison} ${r.target}`,
          passes(r) ? 'PASS' : 'FAIL',
        ]
      : [name, '-', '-', '-', '-', `ERROR: ${error ?? ''}`.split('\n')[0] ?? 'ERROR'],
  );
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((l) => (l[i] ?? '').length)));
  const fmt = (l: string[]): string => l.map((c, i) => (i === 0 || i === l.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      list: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.list) {
    for (const b of BENCHMARKS) process.stdout.write(`${b.name.padEnd(16)} ${b.description}\n`);
    return 0;
  }
  const names = values.only?.split(',').map((n) => n.trim());
  const selected = names === undefined ? BENCHMARKS : BENCHMARKS.filter((b) => names.includes(b.name));
  const unknown = names?.filter((n) => !BENCHMARKS.some((b) => b.name === n)) ?? [];
  if (unknown.length > 0) throw new Error(`--only ${unknown.join(',')}: no such benchmark (have: ${BENCHMARKS.map((b) => b.name).join(', ')})`);

  const opts: BenchOptions = {
    durationS: positive('duration', values.duration, 6),
    rounds: Math.round(positive('rounds', values.rounds, 2)),
    warmupS: positive('warmup', values.warmup, 3),
    connections: Math.round(positive('connections', values.connections, 32)),
    log: (line) => process.stderr.write(`${line}\n`),
    onCleanup,
  };

  const started = performance.now();
  const rows: Row[] = [];
  for (const b of selected) {
    opts.log(`▶ ${b.name}: ${b.description}`);
    const t0 = performance.now();
    try {
      const result = await b.run(opts);
      rows.push({ name: b.name, result, error: null });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      opts.log(`✖ ${b.name} failed: ${err instanceof Error ? (err.stack ?? message) : message}`);
      rows.push({ name: b.name, result: null, error: message });
    }
    opts.log(`  (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
  }

  const out: string[] = ['', table(rows), ''];
  for (const { name, result } of rows) {
    for (const d of result?.details ?? []) out.push(`${name}: ${d}`);
  }
  out.push(`total ${((performance.now() - started) / 1000).toFixed(1)}s`);
  process.stdout.write(`${out.join('\n')}\n`);
  return rows.every((r) => r.result !== null && passes(r.result)) ? 0 : 1;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    await runCleanups();
    process.exit(1);
  });
