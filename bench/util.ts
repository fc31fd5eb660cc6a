import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchOptions } from './types.js';

/** A fresh temp directory, removed on cleanup (also when the run is interrupted). */
export function benchTempDir(opts: BenchOptions, prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `libsqlctl-bench-${prefix}-`));
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  const unregister = opts.onCleanup(remove);
  return {
    dir,
    remove: () => {
      unregister();
      remove();
    },
  };
}

export function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function fmtNumber(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** POSTs JSON and returns the parsed answer; throws on a non-2xx status. */
export async function postJson(url: string, body: unknown): Promise<unknown> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

/**
 * Runs `baseline, subject, baseline, subject, …, baseline` (`rounds` subject runs, each bracketed by
 * baseline runs) so that drift of a shared machine hits both sides alike.
 */
export async function bracketed<M>(rounds: number, baseline: () => Promise<M>, subject: () => Promise<M>): Promise<{ baselines: M[]; subjects: M[] }> {
  const baselines: M[] = [await baseline()];
  const subjects: M[] = [];
  for (let r = 0; r < rounds; r++) {
    subjects.push(await subject());
    baselines.push(await baseline());
  }
  return { baselines, subjects };
}

/**
 * The baseline averaged over the bracketing runs: each subject run is compared with the mean of the
 * runs just before and after it (trapezoid weights ½, 1, …, 1, ½), which cancels linear drift.
 */
export function bracketMean(xs: number[]): number {
  if (xs.length < 2) return mean(xs);
  const inner = xs.slice(1, -1).reduce((a, b) => a + b, 0);
  return (inner + ((xs[0] ?? 0) + (xs[xs.length - 1] ?? 0)) / 2) / (xs.length - 1);
}

/** The `p`-th percentile (nearest rank, 0 < p ≤ 100); NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The median (the mean of the two middle samples for an even count); NaN for no samples. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One statement on a fresh Hrana stream (`/v2/pipeline`); returns the statement result. */
export async function execSql(url: string, sql: string, args: unknown[] = []): Promise<{ replication_index?: string | null; rows?: unknown[][] }> {
  const answer = (await postJson(`${url}/v2/pipeline`, {
    baton: null,
    requests: [{ type: 'execute', stmt: { sql, args } }, { type: 'close' }],
  })) as { results: { type: string; response?: { result?: { replication_index?: string | null; rows?: unknown[][] } }; error?: unknown }[] };
  const first = answer.results[0];
  if (first?.type !== 'ok' || !first.response?.result) throw new Error(`statement failed: ${JSON.stringify(first)}`);
  return first.response.result;
}

/** What a load run measured that the request-rate benchmarks report. */
export interface LoadFigures {
  requestsPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMeanMs: number;
}

/**
 * Averages of bracketed load runs (subjects by mean, the bracketing baselines by bracketMean), the
 * request rates per run, and the latency line of each side.
 */
export function loadAverages<M extends LoadFigures>(subjects: M[], baselines: M[]) {
  const serverAvg = (pick: (s: M) => number): number => mean(subjects.map(pick));
  const baseAvg = (pick: (s: M) => number): number => bracketMean(baselines.map(pick));
  const latency = (avg: (pick: (s: M) => number) => number): string =>
    `p50 ${fmtNumber(avg((s) => s.latencyP50Ms), 2)} ms, p99 ${fmtNumber(avg((s) => s.latencyP99Ms), 2)} ms, mean ${fmtNumber(avg((s) => s.latencyMeanMs), 2)} ms`;
  const rps = (xs: M[]): number[] => xs.map((s) => s.requestsPerSec);
  return {
    serverAvg,
    baseAvg,
    value: serverAvg((s) => s.requestsPerSec),
    base: baseAvg((s) => s.requestsPerSec),
    serverLatency: latency(serverAvg),
    baselineLatency: latency(baseAvg),
    serverRps: rps(subjects),
    baselineRps: rps(baselines),
  };
}

/**
 * The servers a benchmark starts: `add` each, `close()` them all at the end (also run when the
 * runner is interrupted), in the order they were added.
 */
export function serverPool<T extends { close(): Promise<void> }>(opts: BenchOptions): { add(t: T): T; readonly all: readonly T[]; close(): Promise<void> } {
  const servers: T[] = [];
  const closeAll = async (): Promise<void> => {
    for (const t of servers.splice(0)) await t.close();
  };
  const unregister = opts.onCleanup(closeAll);
  return {
    add: (t) => {
      servers.push(t);
      return t;
    },
    all: servers,
    close: async () => {
      unregister();
      await closeAll();
    },
  };
}
