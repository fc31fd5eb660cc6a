/** Shared shapes of the benchmark harness (`npm run bench`). */

/** Knobs the runner hands every benchmark; each may scale them to its own needs. */
export interface BenchOptions {
  /** Seconds of load before measuring, per target (results discarded). */
  warmupS: number;
  /** Seconds of each measured load run. */
  durationS: number;
  /** Measured runs of the subject, each bracketed by baseline runs (B S B S B for 2). */
  rounds: number;
  /** Concurrent HTTP connections of the load generator. */
  connections: number;
  /** Progress output (stderr); the final table goes to stdout. */
  log: (line: string) => void;
  /** Registers a cleanup that the runner also calls when interrupted (SIGINT/SIGTERM). */
  onCleanup: (fn: () => Promise<void> | void) => () => void;
}

/** One line of the final table: a value, the baseline measured in the same run, and their ratio. */
export interface BenchResult {
  name: string;
  /** Unit of `value` and `baseline`, e.g. `req/s`. */
  unit: string;
  value: number;
  baseline: number;
  /** value ÷ baseline. */
  ratio: number;
  /** The ratio must be `>=` (or `<=`) this to pass. */
  target: number;
  comparison: '>=' | '<=';
  /** Extra facts printed under the table (latencies, run-by-run numbers). */
  details: string[];
}

export interface Benchmark {
  /** Short identifier used by `--only`. */
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<BenchResult>;
}

export function passes(r: BenchResult): boolean {
  return r.comparison === '>=' ? r.ratio >= r.target : r.ratio <= r.target;
}
