/** How far apart the runs of a benchmark were: the `spread` line every benchmark prints under the table. */
import type { BenchOptions, BenchResult } from './types.js';
import { bracketed, fmtNumber, type LoadFigures, loadAverages, median } from './util.js';

/** `n runs a–b unit (median m, ±x % of it)`: the half range relative to the median. */
export function describeRuns(xs: number[], unit: string, digits = 0): string {
  if (xs.length === 0) return 'no runs';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const mid = median(xs);
  const half = mid === 0 ? 0 : ((hi - lo) / 2 / Math.abs(mid)) * 100;
  return `${xs.length} run${xs.length === 1 ? '' : 's'} ${fmtNumber(lo, digits)}–${fmtNumber(hi, digits)} ${unit} (median ${fmtNumber(mid, digits)}, ±${half.toFixed(1)} %)`;
}

/**
 * The ratio of every subject run to the mean of the two baseline runs that bracket it
 * (`bracketed` order: B S B S … B), so one noisy round shows as one outlier.
 */
export function roundRatios(baselines: number[], subjects: number[], ratio: (subject: number, baseline: number) => number = (s, b) => s / b): number[] {
  return subjects.map((s, i) => ratio(s, ((baselines[i] ?? NaN) + (baselines[i + 1] ?? baselines[i] ?? NaN)) / 2));
}

/** `spread: <subject runs>; <baseline runs>; ratio per round r1, r2, … (a–b)`. */
export function spreadLine(parts: { label: string; values: number[]; unit: string; digits?: number }[], ratios: number[]): string {
  const runs = parts.map((p) => `${p.label} ${describeRuns(p.values, p.unit, p.digits ?? 0)}`);
  const rs = ratios.map((r) => r.toFixed(3));
  const range = ratios.length > 1 ? ` (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})` : '';
  return `spread: ${runs.join('; ')}; ratio per round ${rs.join(', ')}${range}`;
}

/**
 * The result of a benchmark whose figure is the median of fresh processes (start-up time, idle
 * memory): value ÷ baseline against `target`, the first detail line given, then the spread line.
 */
export function medianResult(r: {
  name: string;
  unit: string;
  subjects: number[];
  baselines: number[];
  target: number;
  comparison: '<=' | '>=';
  digits?: number;
  detail: string;
}): { name: string; unit: string; value: number; baseline: number; ratio: number; target: number; comparison: '<=' | '>='; details: string[] } {
  const value = median(r.subjects);
  const baseline = median(r.baselines);
  const digits = r.digits ?? 0;
  return {
    name: r.name,
    unit: r.unit,
    value,
    baseline,
    ratio: value / baseline,
    target: r.target,
    comparison: r.comparison,
    details: [
      r.detail,
      spreadLine(
        [
          { label: 'server', values: r.subjects, unit: r.unit, digits },
          { label: 'baseline', values: r.baselines, unit: r.unit, digits },
        ],
        roundRatios(r.baselines, r.subjects),
      ),
    ],
  };
}

/**
 * A request-rate benchmark's load runs: a warm-up of each target, then the server's runs bracketed
 * by the baseline's (`bracketed`), each logged with `describe`.
 */
export async function warmedBracket<T extends { label: string }, M>(
  opts: BenchOptions,
  targets: { baseline: T; server: T },
  load: (t: T, durationS: number) => Promise<M>,
  describe: (label: string, m: M) => string,
): Promise<{ baselines: M[]; subjects: M[] }> {
  for (const t of [targets.baseline, targets.server]) {
    opts.log(`  warm-up ${t.label} (${opts.warmupS}s)`);
    await load(t, opts.warmupS);
  }
  const measure = async (t: T): Promise<M> => {
    const m = await load(t, opts.durationS);
    opts.log(`  ${describe(t.label, m)}`);
    return m;
  };
  return bracketed(
    opts.rounds,
    () => measure(targets.baseline),
    () => measure(targets.server),
  );
}

/** The req/s line of a request-rate benchmark: means, both latencies, extra details, the spread. */
export function rateResult<M extends LoadFigures>(
  r: { name: string; target: number; opts: BenchOptions; subjects: M[]; baselines: M[]; runNote?: string; extra?: string[] },
): BenchResult {
  const { value, base, serverLatency, baselineLatency, serverRps, baselineRps } = loadAverages(r.subjects, r.baselines);
  return {
    name: r.name,
    unit: 'req/s',
    value,
    baseline: base,
    ratio: value / base,
    target: r.target,
    comparison: '>=',
    details: [
      `server   latency: ${serverLatency} (mean of ${r.subjects.length} runs of ${r.opts.durationS}s${r.runNote ?? ''})`,
      `baseline latency: ${baselineLatency} (${r.baselines.length} runs bracketing the server runs)`,
      ...(r.extra ?? []),
      spreadLine(
        [
          { label: 'server', values: serverRps, unit: 'req/s' },
          { label: 'baseline', values: baselineRps, unit: 'req/s' },
        ],
        roundRatios(baselineRps, serverRps),
      ),
    ],
  };
}
