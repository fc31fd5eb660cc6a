/**
 * The Hrana-over-WebSocket load generator (bench/ws-load.ts) in a separate Node process, so the
 * client never shares an event loop with the server under test; the same client drives the real
 * server and the baseline.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
export interface WsLoadSummary {
  durationS: number;
  /** `response_ok` answers with the expected row received within the measured window. */
  completed: number;
  requestsPerSec: number;
  latencyMeanMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
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
  return new Promise<WsLoadSummary>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(opts)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const unregister = onCleanup(kill);
    const limit = setTimeout(kill, (opts.durationS + 60) * 1000);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(limit);
      unregister();
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      unregister();
      if (code !== 0) {
        reject(new Error(`WebSocket load generator exited with ${signal ?? `code ${String(code)}`}\n${stderr.trim()}`));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      let parsed: unknown;
      try {
        parsed = JSON.parse(line) as unknown;
      } catch {
        reject(new Error(`WebSocket load generator printed no JSON result:\n${stdout}\n${stderr}`));
        return;
      }
      if (!isSummary(parsed)) {
        reject(new Error(`WebSocket load generator printed an unexpected result: ${line}`));
        return;
      }
      resolve(parsed);
    });
  });
}

/** Throws unless answers came back and every one of them was a `response_ok` with the expected row. */
export function assertAllAnswersOk(label: string, s: WsLoadSummary): void {
  const problems: string[] = [];
  if (s.completed === 0) problems.push('no answer received');
  if (s.bad !== 0) problems.push(`${s.bad} unexpected answers`);
  if (s.connectionErrors !== 0) problems.push(`${s.connectionErrors} connections failed`);
  if (problems.length > 0) throw new Error(`${label}: ${problems.join('; ')}${s.firstProblem === null ? '' : ` (first: ${s.firstProblem})`}`);
}
