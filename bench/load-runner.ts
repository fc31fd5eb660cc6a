import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJsonChild } from './json-child.js';
import type { LoadFigures } from './util.js';

/** One request variant; autocannon cycles through the variants on every connection. */
export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

/** What `bench/load.ts` takes as its single JSON argument. */
export interface LoadOptions {
  /** Origin only, e.g. `http://127.0.0.1:8080`. */
  url: string;
  connections: number;
  durationS: number;
  requests: LoadRequest[];
  /** A 2xx response whose body contains this string counts as a mismatch (e.g. a Hrana error result). */
  rejectBodyContaining?: string;
}

/** What `bench/load.ts` prints (one JSON line on stdout). */
export interface LoadSummary extends LoadFigures {
  durationS: number;
  /** Completed requests (any status). */
  completed: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  statusCodes: Record<string, number>;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const LOAD_SCRIPT = path.join(HERE, 'load.ts');

function isSummary(v: unknown): v is LoadSummary {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return ['durationS', 'completed', 'requestsPerSec', 'latencyP50Ms', 'latencyP99Ms', 'non2xx', 'errors', 'timeouts', 'mismatches'].every(
    (k) => typeof o[k] === 'number',
  );
}

/**
 * Runs autocannon in a separate Node process (so the load generator never shares an event loop with
 * the server under test) and returns its summary. Rejects when the child fails or outlives its time.
 */
export function runLoad(opts: LoadOptions, onCleanup: (fn: () => void) => () => void): Promise<LoadSummary> {
  return runJsonChild({ cwd: REPO, script: LOAD_SCRIPT, options: opts, durationS: opts.durationS, what: 'load generator', isSummary, onCleanup });
}

/** Throws unless every request completed with a 2xx status and an accepted body. */
export function assertAllOk(label: string, s: LoadSummary): void {
  const problems: string[] = [];
  if (s.completed === 0) problems.push('no request completed');
  if (s.non2xx !== 0) problems.push(`${s.non2xx} non-2xx responses (status codes: ${JSON.stringify(s.statusCodes)})`);
  if (s.errors !== 0) problems.push(`${s.errors} errors (${s.timeouts} timeouts)`);
  if (s.mismatches !== 0) problems.push(`${s.mismatches} responses with an unexpected body`);
  if (problems.length > 0) throw new Error(`${label}: ${problems.join('; ')}`);
}
