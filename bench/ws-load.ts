/**
 * Hrana-over-WebSocket load generator child: `node --import tsx bench/ws-load.ts '<WsLoadOptions JSON>'`.
 * Opens the connections (hello, one open_stream each), then every connection keeps `inflight`
 * execute requests in flight for `durationS` seconds. Every answer is checked: a `response_ok` of
 * an outstanding request, carrying the row of the id it asked for. Prints one JSON line (a
 * WsLoadSummary) on stdout. Dies with its parent (IPC disconnect) and after a hard time limit.
 */
import { WebSocket, type RawData } from 'ws';
import type { WsLoadOptions, WsLoadSummary } from './ws-load-runner.js';

const STREAM_ID = 1;
const OPEN_REQUEST_ID = 0;

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The `[id, v]` values of the single row of an execute result, or null for another shape. */
function singleRow(response: unknown): [unknown, unknown] | null {
  if (!isJson(response) || response.type !== 'execute' || !isJson(response.result)) return null;
  const rows = response.result.rows;
  if (!Array.isArray(rows) || rows.length !== 1 || !Array.isArray(rows[0])) return null;
  const [a, b] = rows[0] as unknown[];
  return isJson(a) && isJson(b) ? [a.value, b.value] : null;
}

interface Stats {
  completed: number;
  bad: number;
  connectionErrors: number;
  firstProblem: string | null;
  latencies: number[];
}

function problem(stats: Stats, what: string): void {
  if (stats.firstProblem === null) stats.firstProblem = what.slice(0, 500);
}

class Connection {
  private readonly ws: WebSocket;
  private readonly pending = new Map<number, { id: number; sentAt: number }>();
  private nextRequestId = OPEN_REQUEST_ID + 1;
  private cursor: number;
  private running = false;
  private failed = false;
  /** Set once this side closes: a close from then on is ours. */
  private finished = false;
  private deadline = Infinity;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private resolveDone!: () => void;
  readonly ready = new Promise<void>((resolve, reject) => {
    this.resolveReady = resolve;
    this.rejectReady = reject;
  });
  readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly opts: WsLoadOptions,
    private readonly stats: Stats,
    /** Pre-serialized `request` objects per id (everything but the request id). */
    private readonly bodies: string[],
    first: number,
  ) {
    this.cursor = first;
    this.ws = new WebSocket(opts.url, [opts.subprotocol], { perMessageDeflate: false });
    this.ws.on('open', () => this.ws.send(JSON.stringify({ type: 'hello', jwt: null })));
    this.ws.on('message', (data) => this.onMessage(text(data)));
    this.ws.on('error', (err) => this.fail(`connection error: ${err.message}`));
    this.ws.on('close', (code, reason) => this.fail(`connection closed (${code} ${reason.toString()})`));
  }

  private fail(what: string): void {
    if (this.failed || this.finished) return;
    this.failed = true;
    this.running = false;
    this.stats.connectionErrors += 1;
    problem(this.stats, what);
    this.rejectReady(new Error(what));
    this.resolveDone();
  }

  private onMessage(raw: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(raw) as unknown;
    } catch {
      this.bad(`not JSON: ${raw}`);
      return;
    }
    if (!isJson(msg)) return this.bad(`not an object: ${raw}`);
    if (msg.type === 'hello_ok') {
      this.ws.send(JSON.stringify({ type: 'request', request_id: OPEN_REQUEST_ID, request: { type: 'open_stream', stream_id: STREAM_ID } }));
      return;
    }
    if (msg.request_id === OPEN_REQUEST_ID) {
      if (msg.type !== 'response_ok' || !isJson(msg.response) || msg.response.type !== 'open_stream') return this.fail(`open_stream failed: ${raw}`);
      this.resolveReady();
      return;
    }
    const req = typeof msg.request_id === 'number' ? this.pending.get(msg.request_id) : undefined;
    if (req === undefined) return this.bad(`not an answer to an outstanding request: ${raw}`);
    this.pending.delete(msg.request_id as number);
    const row = msg.type === 'response_ok' ? singleRow(msg.response) : null;
    const now = performance.now();
    if (row === null || row[0] !== String(req.id) || row[1] !== `${this.opts.valuePrefix}${String(req.id).padStart(this.opts.valuePad, '0')}`) {
      // a response_error (or a wrong row) ends its request too: counted as bad, the next one goes out
      this.bad(`unexpected answer for id ${req.id}: ${raw}`);
    } else if (now <= this.deadline) {
      this.stats.completed += 1;
      this.stats.latencies.push(now - req.sentAt);
    }
    if (this.running && now < this.deadline) this.send();
    else if (this.pending.size === 0) this.resolveDone();
  }

  private bad(what: string): void {
    this.stats.bad += 1;
    problem(this.stats, what);
  }

  private send(): void {
    const id = this.opts.ids[this.cursor % this.opts.ids.length] ?? 1;
    const body = this.bodies[this.cursor % this.bodies.length] ?? '';
    this.cursor += 1;
    const requestId = this.nextRequestId++;
    this.pending.set(requestId, { id, sentAt: performance.now() });
    this.ws.send(`{"type":"request","request_id":${requestId},"request":${body}}`);
  }

  start(deadline: number): void {
    this.deadline = deadline;
    this.running = true;
    for (let i = 0; i < this.opts.inflight; i++) this.send();
  }

  /** Stops sending; `done` resolves once the outstanding answers are in. */
  stop(): void {
    this.running = false;
    if (this.pending.size === 0) this.resolveDone();
  }

  close(): void {
    this.running = false;
    this.finished = true;
    this.ws.close(1000);
  }
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

async function main(): Promise<void> {
  if (process.channel) {
    process.channel.unref();
    process.on('disconnect', () => process.exit(2));
  }
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: ws-load.ts <WsLoadOptions JSON>');
  const opts = JSON.parse(arg) as WsLoadOptions;
  setTimeout(() => {
    process.stderr.write('ws-load: hard time limit reached\n');
    process.exit(3);
  }, (opts.durationS + 30) * 1000).unref();

  const bodies = opts.ids.map((id) =>
    JSON.stringify({ type: 'execute', stream_id: STREAM_ID, stmt: { sql: opts.sql, args: [{ type: 'integer', value: String(id) }], want_rows: true } }),
  );
  const stats: Stats = { completed: 0, bad: 0, connectionErrors: 0, firstProblem: null, latencies: [] };
  const spacing = Math.max(1, Math.floor(opts.ids.length / opts.connections));
  const conns = Array.from({ length: opts.connections }, (_, i) => new Connection(opts, stats, bodies, i * spacing));
  await bounded(Promise.all(conns.map((c) => c.ready)), 15_000, 'connections (hello, open_stream)');

  const started = performance.now();
  const deadline = started + opts.durationS * 1000;
  for (const c of conns) c.start(deadline);
  await new Promise<void>((resolve) => setTimeout(resolve, opts.durationS * 1000));
  for (const c of conns) c.stop();
  await bounded(Promise.all(conns.map((c) => c.done)), 10_000, 'outstanding answers after the run');
  const elapsedS = (Math.min(performance.now(), deadline) - started) / 1000;
  for (const c of conns) c.close();

  const sorted = Float64Array.from(stats.latencies).sort();
  const sum = stats.latencies.reduce((a, b) => a + b, 0);
  const summary: WsLoadSummary = {
    durationS: round3(elapsedS),
    completed: stats.completed,
    requestsPerSec: elapsedS > 0 ? stats.completed / elapsedS : 0,
    latencyMeanMs: round3(stats.latencies.length === 0 ? 0 : sum / stats.latencies.length),
    latencyP50Ms: round3(percentile(sorted, 50)),
    latencyP99Ms: round3(percentile(sorted, 99)),
    bad: stats.bad,
    connectionErrors: stats.connectionErrors,
    firstProblem: stats.firstProblem,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
