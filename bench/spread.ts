/** How far apart the runs of a benchmark were: the `spread` line every benchmark prints under the table. */
import { fmtNumber, median } from './util.js';

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
