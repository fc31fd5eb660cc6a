/**
 * Point reads through Hrana over HTTP: requests/s of `POST /v2/pipeline` (execute a primary-key
 * SELECT + close) against the real server, relative to a bare fastify app that parses the same body
 * and answers a canned pipeline result of the same shape and size. Both servers run in this process;
 * the load comes from a separate autocannon process. Two lines of the table come from the same runs:
 * `point-reads` (req/s) and `point-reads-cpu` (CPU µs per request of this process, where the servers
 * live). bench/ws-point-reads.ts reuses the table, the seeding and the real server.
 */
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { ServeFlags } from '../src/config/serve-config.js';
import { compiled } from './compiled.js';
import { assertAllOk, runLoad, type LoadRequest, type LoadSummary } from './load-runner.js';
import type { Benchmark, BenchOptions, BenchResult } from './types.js';
import { rateResult, roundRatios, spreadLine, warmedBracket } from './spread.js';
import { benchTempDir, fmtNumber, loadAverages, postJson, serverPool } from './util.js';

export const ROWS = 10_000;
/** Distinct request bodies autocannon cycles through (ids spread over the table). */
const VARIANTS = 128;
const TARGET = 0.7;
export const SELECT_SQL = 'SELECT id, v FROM kv WHERE id = ?';

const FLAGS: Partial<ServeFlags> = { 'http-listen-addr': '127.0.0.1:0', 'shutdown-timeout': 5, 'no-welcome': true };

export interface Target {
  label: 'server' | 'baseline';
  url: string;
  close(): Promise<void>;
}

export function valueOf(id: number): string {
  return `value-${String(id).padStart(6, '0')}`;
}

/** Deterministic ids spread over 1..ROWS (a multiplicative hash of the index). */
export function variantIds(): number[] {
  return Array.from({ length: VARIANTS }, (_, i) => ((i * 7919 + 17) % ROWS) + 1);
}

function readBody(id: number): string {
  return JSON.stringify({
    baton: null,
    requests: [{ type: 'execute', stmt: { sql: SELECT_SQL, args: [{ type: 'integer', value: String(id) }] } }, { type: 'close' }],
  });
}

/** The canned answer of the baseline: what the real server returns for one row (same keys, same size). */
function cannedResult(id: string): unknown {
  return {
    baton: null,
    base_url: null,
    results: [
      {
        type: 'ok',
        response: {
          type: 'execute',
          result: {
            cols: [
              { name: 'id', decltype: 'INTEGER' },
              { name: 'v', decltype: 'TEXT' },
            ],
            rows: [
              [
                { type: 'integer', value: id },
                { type: 'text', value: valueOf(Number(id)) },
              ],
            ],
            affected_row_count: 0,
            last_insert_rowid: null,
            replication_index: null,
            rows_read: 1,
            rows_written: 0,
            query_duration_ms: 0.012,
          },
        },
      },
      { type: 'ok', response: { type: 'close' } },
    ],
  };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The id argument of the first statement of a pipeline body, or "0" when the body has another shape. */
function firstArgValue(body: unknown): string {
  if (!isRecord(body) || !Array.isArray(body.requests)) return '0';
  const first: unknown = body.requests[0];
  if (!isRecord(first) || !isRecord(first.stmt) || !Array.isArray(first.stmt.args)) return '0';
  const arg: unknown = first.stmt.args[0];
  return isRecord(arg) && typeof arg.value === 'string' ? arg.value : '0';
}

/** A bare fastify app with the same raw-body handling as the user app and one canned pipeline route. */
async function startBaseline(): Promise<Target> {
  const app: FastifyInstance = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post('/v2/pipeline', async (request, reply) => {
    const raw = request.body;
    const body = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : '') as unknown;
    return reply.type('application/json').send(JSON.stringify(cannedResult(firstArgValue(body))));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { label: 'baseline', url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** The compiled server (dist/, as `libsqlctl serve` runs it) in this process. */
export async function startRealServer(opts: BenchOptions, dbPath: string): Promise<Target> {
  const { startServer, resolveServeConfig, serveFlagDefaults } = await compiled(opts);
  const server = await startServer(await resolveServeConfig({ ...serveFlagDefaults(), ...FLAGS, 'db-path': dbPath }, {}));
  return { label: 'server', url: `http://127.0.0.1:${server.httpAddress.port}`, close: () => server.close() };
}

function pipelineResults(answer: unknown): Record<string, unknown>[] {
  if (!isRecord(answer) || !Array.isArray(answer.results)) throw new Error(`unexpected pipeline answer: ${JSON.stringify(answer)}`);
  const results = answer.results as unknown[];
  for (const r of results) {
    if (!isRecord(r) || r.type !== 'ok') throw new Error(`pipeline request failed: ${JSON.stringify(r)}`);
  }
  return results as Record<string, unknown>[];
}

export async function seed(url: string): Promise<void> {
  const answer = await postJson(`${url}/v2/pipeline`, {
    baton: null,
    requests: [
      { type: 'execute', stmt: { sql: 'CREATE TABLE kv(id INTEGER PRIMARY KEY, v TEXT)' } },
      {
        type: 'execute',
        stmt: {
          sql: `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${ROWS}) INSERT INTO kv(id, v) SELECT x, printf('value-%06d', x) FROM n`,
        },
      },
      { type: 'close' },
    ],
  });
  pipelineResults(answer);
}

/** Both targets must answer a sample request with the expected row before any load is applied. */
async function checkAnswer(target: Target, id: number): Promise<void> {
  const answer = await postJson(`${target.url}/v2/pipeline`, JSON.parse(readBody(id)) as unknown);
  const [first] = pipelineResults(answer);
  const text = JSON.stringify(first);
  if (!text.includes(`"value":"${id}"`) || !text.includes(`"value":"${valueOf(id)}"`)) {
    throw new Error(`${target.label}: unexpected answer for id ${id}: ${text}`);
  }
}

/** A load run plus the CPU time this process (where both servers live) spent per completed request. */
interface Measured extends LoadSummary {
  cpuUsPerRequest: number;
}

async function load(target: Target, durationS: number, opts: BenchOptions): Promise<Measured> {
  const requests: LoadRequest[] = variantIds().map((id) => ({ method: 'POST', path: '/v2/pipeline', body: readBody(id) }));
  const cpu = process.cpuUsage();
  const summary = await runLoad(
    { url: target.url, connections: opts.connections, durationS, requests, rejectBodyContaining: '"type":"error"' },
    opts.onCleanup,
  );
  const used = process.cpuUsage(cpu);
  assertAllOk(`${target.label} (${durationS}s)`, summary);
  return { ...summary, cpuUsPerRequest: (used.user + used.system) / summary.completed };
}

function describe(label: string, s: Measured): string {
  return (
    `${label.padEnd(8)} ${fmtNumber(s.requestsPerSec).padStart(8)} req/s  p50 ${fmtNumber(s.latencyP50Ms, 2)} ms  p99 ${fmtNumber(s.latencyP99Ms, 2)} ms  ` +
    `cpu ${fmtNumber(s.cpuUsPerRequest, 1)} µs/req  (${s.completed} requests in ${s.durationS}s)`
  );
}

/** Everything measured once per bench run: both result lines (req/s and CPU per request) are read from it. */
interface Outcome {
  baselines: Measured[];
  subjects: Measured[];
}

async function measureAll(opts: BenchOptions): Promise<Outcome> {
  const tmp = benchTempDir(opts, 'point-reads');
  const targets = serverPool<Target>(opts);
  try {
    const server = targets.add(await startRealServer(opts, path.join(tmp.dir, 'data.sqld')));
    const baseline = targets.add(await startBaseline());
    await seed(server.url);
    for (const t of targets.all) await checkAnswer(t, 4242);
    opts.log(`  seeded ${ROWS} rows; ${VARIANTS} request variants, ${opts.connections} connections`);

    return await warmedBracket(opts, { baseline, server }, (t, s) => load(t, s, opts), describe);
  } finally {
    await targets.close();
    tmp.remove();
  }
}

/**
 * `point-reads` and `point-reads-cpu` are two lines of the same measurement: the first of them to
 * run measures, the other reads the same runs (the runner hands every benchmark the same options).
 */
const outcomes = new WeakMap<BenchOptions, Promise<Outcome>>();

function outcome(opts: BenchOptions): Promise<Outcome> {
  let p = outcomes.get(opts);
  if (p === undefined) {
    p = measureAll(opts);
    outcomes.set(opts, p);
  }
  return p;
}

async function runRequestsPerSec(opts: BenchOptions): Promise<BenchResult> {
  const { baselines, subjects } = await outcome(opts);
  return rateResult({ name: 'point-reads', target: TARGET, opts, subjects, baselines });
}

/** CPU time of this process (where both servers live) per completed request; the ratio is baseline ÷ server (lower CPU is better). */
async function runCpuPerRequest(opts: BenchOptions): Promise<BenchResult> {
  const { baselines, subjects } = await outcome(opts);
  const cpu = (xs: Measured[]): number[] => xs.map((s) => s.cpuUsPerRequest);
  const { serverAvg, baseAvg } = loadAverages(subjects, baselines);
  const value = serverAvg((s) => s.cpuUsPerRequest);
  const base = baseAvg((s) => s.cpuUsPerRequest);
  return {
    name: 'point-reads-cpu',
    unit: 'µs/req',
    value,
    baseline: base,
    ratio: base / value,
    target: TARGET,
    comparison: '>=',
    details: [
      `ratio = baseline ÷ server CPU µs per request (server-process user+system time ÷ completed requests; less sensitive to machine load than req/s)`,
      spreadLine(
        [
          { label: 'server', values: cpu(subjects), unit: 'µs/req', digits: 1 },
          { label: 'baseline', values: cpu(baselines), unit: 'µs/req', digits: 1 },
        ],
        roundRatios(cpu(baselines), cpu(subjects), (s, b) => b / s),
      ),
    ],
  };
}

export const pointReads: Benchmark = {
  name: 'point-reads',
  description: 'Hrana HTTP pipeline point SELECT vs. a bare fastify app answering a canned result (req/s)',
  run: runRequestsPerSec,
};

export const pointReadsCpu: Benchmark = {
  name: 'point-reads-cpu',
  description: 'the point-reads runs: CPU µs per request of the server process, baseline ÷ server (measured once with point-reads)',
  run: runCpuPerRequest,
};
