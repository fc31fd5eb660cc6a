/**
 * Load generator child process: `node --import tsx bench/load.ts '<LoadOptions JSON>'`.
 * Runs autocannon against the given origin and prints one JSON line (a LoadSummary) on stdout.
 * Dies with its parent (IPC channel disconnect) so an interrupted run leaves nothing behind.
 */
import { createRequire } from 'node:module';
import type { LoadOptions, LoadSummary } from './load-runner.js';

interface AutocannonHistogram {
  total?: number;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
  requests: AutocannonHistogram;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining: number;
  timeout: number;
  requests: { method: string; path: string; body?: string; headers?: Record<string, string> }[];
  verifyBody?: (body: string) => boolean;
}

/** A running job: awaitable, and emits `response` for each completed request (time in ms, fractional). */
interface AutocannonTracker extends PromiseLike<AutocannonResult> {
  on(event: 'response', fn: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void): this;
}

/** The slice of autocannon's API used here (the package ships no types). */
type Autocannon = (opts: AutocannonOptions) => AutocannonTracker;

/** autocannon's own histogram has 1 ms resolution; keep exact 2xx latencies for sub-ms percentiles. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as Autocannon;

async function main(): Promise<void> {
  if (process.channel) {
    process.channel.unref();
    process.on('disconnect', () => process.exit(2));
  }
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: load.ts <LoadOptions JSON>');
  const opts = JSON.parse(arg) as LoadOptions;
  const reject = opts.rejectBodyContaining;
  const tracker = autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationS,
    pipelining: 1,
    timeout: 10,
    requests: opts.requests.map((r) => ({
      method: r.method,
      path: r.path,
      ...(r.body === undefined ? {} : { body: r.body }),
      headers: { 'content-type': 'application/json', ...r.headers },
    })),
    ...(reject === undefined ? {} : { verifyBody: (body: string) => !body.includes(reject) }),
  });
  const latencies: number[] = [];
  tracker.on('response', (_client, statusCode, _bytes, ms) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
  });
  const result = await tracker;
  const sorted = Float64Array.from(latencies).sort();
  const latencySum = latencies.reduce((a, b) => a + b, 0);
  const completed = result.requests.total ?? 0;
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats)) statusCodes[code] = stat.count;
  const summary: LoadSummary = {
    durationS: result.duration,
    completed,
    requestsPerSec: result.duration > 0 ? completed / result.duration : 0,
    latencyMeanMs: round3(latencies.length === 0 ? 0 : latencySum / latencies.length),
    latencyP50Ms: round3(percentile(sorted, 50)),
    latencyP99Ms: round3(percentile(sorted, 99)),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    statusCodes,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
