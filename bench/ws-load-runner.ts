/**
 * The Hrana-over-WebSocket load generator (bench/ws-load.ts) in a separate Node process, so the
 * client never shares an event loop with the server under test; the same client drives the real
 * server and the baseline.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJsonChild } from './json-child.js';
import type { LoadFigures } from './util.js';

/** What `bench/ws-load.ts` takes as its single JSON argument. */
export interface WsLoadOptions {
  /** e.g. `ws://127.0.0.1:8080/`. */
  url: string;
  subprotocol: string;
  connections: number;
  /** Requests each connection keeps in flight. */
  inflight: number;
  durationS: number;
  sql: string;
  /** Primary keys the connections cycle through; every answer must hold the row of its id. */
  ids: number[];
  /** The row's text column for an id (checked in every answer): `prefix` + id padded to `pad` digits. */
  valuePrefix: string;
  valuePad: number;
}

/** What `bench/ws-load.ts` prints (one JSON line on stdout). */
export interface WsLoadSummary extends LoadFigures {
  durationS: number;
  /** `response_ok` answers with the expected row received within the measured window. */
  completed: number;
  /** Answers that were not a `response_ok` of an outstanding request with the expected row. */
  bad: number;
  /** Connections that failed or closed before the end. */
  connectionErrors: number;
  /** The first problem seen, verbatim (truncated), or null. */
  firstProblem: string | null;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const SCRIPT = path.join(HERE, 'ws-load.ts');

function isSummary(v: unknown): v is WsLoadSummary {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return ['durationS', 'completed', 'requestsPerSec', 'latencyMeanMs', 'latencyP50Ms', 'latencyP99Ms', 'bad', 'connectionErrors'].every((k) => typeof o[k] === 'number');
}

/** Runs the generator and returns its summary; rejects when the child fails or outlives its time. */
export function runWsLoad(opts: WsLoadOptions, onCleanup: (fn: () => void) => () => void): Promise<WsLoadSummary> {
  return runJsonChild({ cwd: REPO, script: SCRIPT, options: opts, durationS: opts.durationS, what: 'WebSocket load generator', isSummary, onCleanup });
}

/** Throws unless answers came back and every one of them was a `response_ok` with the expected row. */
export function assertAllAnswersOk(label: string, s: WsLoadSummary): void {
  const problems: string[] = [];
  if (s.completed === 0) problems.push('no answer received');
  if (s.bad !== 0) problems.push(`${s.bad} unexpected answers`);
  if (s.connectionErrors !== 0) problems.push(`${s.connectionErrors} connections failed`);
  if (problems.length > 0) throw new Error(`${label}: ${problems.join('; ')}${s.firstProblem === null ? '' : ` (first: ${s.firstProblem})`}`);
}
