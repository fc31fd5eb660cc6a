/**
 * Point reads through Hrana over WebSocket (subprotocol `hrana3`, JSON frames): answers/s of an
 * `execute` of a primary-key SELECT on one open stream per connection, against the real server
 * relative to a bare `ws` server that parses every frame and sends back a canned `response_ok` built
 * from a real answer captured first (same keys, same size). Both servers run in this process; the
 * same client, a separate process (bench/ws-load.ts), drives both: a few connections, each keeping
 * a few requests in flight, every answer checked.
 */
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { within } from './bottomless-harness.js';
import { isRecord, ROWS, SELECT_SQL, seed, startRealServer, valueOf, variantIds, type Target } from './point-reads.js';
import type { Benchmark, BenchOptions, BenchResult } from './types.js';
import { rateResult, warmedBracket } from './spread.js';
import { benchTempDir, fmtNumber, loadAverages, serverPool } from './util.js';
import { assertAllAnswersOk, runWsLoad, type WsLoadSummary } from './ws-load-runner.js';

const TARGET = 0.7;
const SUBPROTOCOL = 'hrana3';
/** Requests each connection keeps in flight; connections × this = the HTTP bench's connections. */
const INFLIGHT = 4;
const SAMPLE_ID = 4242;

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function executeRequest(requestId: number, id: number): string {
  return JSON.stringify({
    type: 'request',
    request_id: requestId,
    request: { type: 'execute', stream_id: 1, stmt: { sql: SELECT_SQL, args: [{ type: 'integer', value: String(id) }], want_rows: true } },
  });
}

/** One connection: hello, open_stream, one execute of `id`; returns the execute answer verbatim. */
async function sampleAnswer(url: string, id: number): Promise<string> {
  const ws = new WebSocket(url, [SUBPROTOCOL], { perMessageDeflate: false });
  const answers: string[] = [];
  const done = new Promise<string>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', (code) => reject(new Error(`closed (${code}) after ${JSON.stringify(answers)}`)));
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', jwt: null })));
    ws.on('message', (data) => {
      const raw = rawText(data);
      answers.push(raw);
      const msg = JSON.parse(raw) as unknown;
      if (!isRecord(msg)) return reject(new Error(`unexpected message ${raw}`));
      if (msg.type === 'hello_ok') ws.send(JSON.stringify({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }));
      else if (msg.type === 'response_ok' && msg.request_id === 1) ws.send(executeRequest(2, id));
      else if (msg.type === 'response_ok' && msg.request_id === 2) resolve(raw);
      else reject(new Error(`unexpected message ${raw}`));
    });
  });
  try {
    return await within(done, 10_000, `a sample answer from ${url}`);
  } finally {
    ws.terminate();
  }
}

/** The baseline's answer: the captured real answer with the request id and the row of `id` put in. */
function cannedAnswerMaker(captured: string): (requestId: number, id: string) => string {
  const msg = JSON.parse(captured) as Record<string, unknown>;
  const response = msg.response as Record<string, unknown>;
  const result = response.result as Record<string, unknown>;
  const [row] = result.rows as Record<string, unknown>[][];
  const [idCell, vCell] = row ?? [];
  if (!idCell || !vCell) throw new Error(`the captured answer has no row: ${captured}`);
  return (requestId, id) =>
    JSON.stringify({ ...msg, request_id: requestId, response: { ...response, result: { ...result, rows: [[{ ...idCell, value: id }, { ...vCell, value: valueOf(Number(id)) }]] } } });
}

/** A bare ws server speaking just enough of the protocol: hello_ok, open_stream, canned executes. */
async function startBaseline(canned: (requestId: number, id: string) => string): Promise<Target> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(rawText(data)) as unknown;
      if (!isRecord(msg)) return;
      if (msg.type === 'hello') return ws.send('{"type":"hello_ok"}');
      if (msg.type !== 'request' || typeof msg.request_id !== 'number' || !isRecord(msg.request)) return;
      const req = msg.request;
      if (req.type === 'open_stream') return ws.send(JSON.stringify({ type: 'response_ok', request_id: msg.request_id, response: { type: 'open_stream' } }));
      const args: unknown = isRecord(req.stmt) ? req.stmt.args : undefined;
      const arg: unknown = Array.isArray(args) ? args[0] : undefined;
      ws.send(canned(msg.request_id, isRecord(arg) && typeof arg.value === 'string' ? arg.value : '0'));
    });
  });
  const { port } = wss.address() as AddressInfo;
  return {
    label: 'baseline',
    url: `ws://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

interface Measured extends WsLoadSummary {
  cpuUsPerRequest: number;
}

async function load(target: Target, durationS: number, opts: BenchOptions): Promise<Measured> {
  const cpu = process.cpuUsage();
  const summary = await runWsLoad(
    {
      url: target.url,
      subprotocol: SUBPROTOCOL,
      connections: wsConnections(opts),
      inflight: INFLIGHT,
      durationS,
      sql: SELECT_SQL,
      ids: variantIds(),
      valuePrefix: 'value-',
      valuePad: 6,
    },
    opts.onCleanup,
  );
  const used = process.cpuUsage(cpu);
  assertAllAnswersOk(`${target.label} (${durationS}s)`, summary);
  return { ...summary, cpuUsPerRequest: (used.user + used.system) / summary.completed };
}

function wsConnections(opts: BenchOptions): number {
  return Math.max(1, Math.round(opts.connections / INFLIGHT));
}

function describe(label: string, s: Measured): string {
  return (
    `${label.padEnd(8)} ${fmtNumber(s.requestsPerSec).padStart(8)} req/s  p50 ${fmtNumber(s.latencyP50Ms, 2)} ms  p99 ${fmtNumber(s.latencyP99Ms, 2)} ms  ` +
    `cpu ${fmtNumber(s.cpuUsPerRequest, 1)} µs/req  (${s.completed} answers in ${s.durationS}s)`
  );
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const tmp = benchTempDir(opts, 'ws-point-reads');
  const targets = serverPool<Target>(opts);
  try {
    const real = targets.add(await startRealServer(opts, path.join(tmp.dir, 'data.sqld')));
    await seed(real.url);
    const server: Target = { ...real, url: `${real.url.replace(/^http:/, 'ws:')}/` };
    const captured = await sampleAnswer(server.url, SAMPLE_ID);
    const canned = cannedAnswerMaker(captured);
    const baseline = targets.add(await startBaseline(canned));
    const fromBaseline = await sampleAnswer(baseline.url, SAMPLE_ID);
    if (!fromBaseline.includes(`"value":"${SAMPLE_ID}"`) || !fromBaseline.includes(`"value":"${valueOf(SAMPLE_ID)}"`)) throw new Error(`baseline: unexpected answer ${fromBaseline}`);
    opts.log(`  seeded ${ROWS} rows; real answer ${Buffer.byteLength(captured)} bytes, canned ${Buffer.byteLength(fromBaseline)} bytes: ${captured}`);
    opts.log(`  ${wsConnections(opts)} connections × ${INFLIGHT} requests in flight`);

    const { baselines, subjects } = await warmedBracket(opts, { baseline, server }, (t, s) => load(t, s, opts), describe);
    const { serverAvg, baseAvg } = loadAverages(subjects, baselines);
    const serverCpu = serverAvg((s) => s.cpuUsPerRequest);
    const baseCpu = baseAvg((s) => s.cpuUsPerRequest);
    return rateResult({
      name: 'ws-point-reads',
      target: TARGET,
      opts,
      subjects,
      baselines,
      runNote: `, ${wsConnections(opts)} connections × ${INFLIGHT} in flight`,
      extra: [`server-process CPU per request: server ${fmtNumber(serverCpu, 1)} µs, baseline ${fmtNumber(baseCpu, 1)} µs (baseline/server ${fmtNumber(baseCpu / serverCpu, 3)})`],
    });
  } finally {
    await targets.close();
    tmp.remove();
  }
}

export const wsPointReads: Benchmark = {
  name: 'ws-point-reads',
  description: 'Hrana over WebSocket (hrana3 JSON) point SELECT on an open stream vs. a bare ws server answering a canned response_ok (req/s)',
  run,
};
