/**
 * The server side of bottomless under a steady write load, one run shared by three rows:
 *
 * `serve --enable-bottomless-replication` (a child process) ships to s3rver through a counting proxy
 * in this process; LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS is BENCH_BOTTOMLESS_INTERVAL_S (default 1,
 * bottomless' own default is 15: with 15 s the interval would never be what cuts a batch here, since
 * the engine's 4 MB checkpoints cut one every ~2 s at this rate). After a warm-up, 500 single-row
 * INSERTs/s for 10 s over HTTP (open loop), then the store is watched until the last one is durable.
 *
 * - bottomless-lag: per write, from its acknowledgement (the HTTP answer, with its replication index
 *   = the log frame number of its commit frame) to the moment it is durable in the store: s3rver's
 *   answer to the PUT of the batch holding that frame, of every batch before it and of their
 *   generations' `.meta`/`.dep` (a restore needs the whole prefix), as seen by the proxy — the same clock as the acknowledgement, no polling error.
 *   Batch keys name generation frame indexes; the generation's `.libsqlctl-durable` marker
 *   (lastFrameNo − lastFrame) gives the log frame number each generation starts after. Absolute
 *   target: p99 ≤ interval + 250 ms (staging with fsync, one PUT on loopback); the baseline column
 *   is that budget.
 * - bottomless-upload: bytes sent to the store (PUT and multipart bodies) from the first measured
 *   write until the last is durable (+2 s for the debounced marker), vs the WAL bytes those writes
 *   made (frames × (page size + 24)). Target ratio ≤ 1. PUT count in the details.
 * - bottomless-idle: then no writes at all; every request the server sends to the store in 60 s
 *   (20 s when --duration < 30, scaled to a minute). Target 0 requests/min.
 */
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeDurableMarker } from '../src/backup/format/objects.js';
import { parseGenerationKey } from '../src/backup/format/layout.js';
import type { BackupStorage } from '../src/backup/storage/storage.js';
import { bottomlessEnv, ensureBuilt, isUpload, serve, startCountingProxy, startS3rver, type ProxiedRequest } from './bottomless-harness.js';
import type { Benchmark, BenchOptions, BenchResult } from './types.js';
import { benchTempDir, execSql, fmtNumber, percentile } from './util.js';

const RATE = 500;
const SECONDS = 10;
const INTERVAL_S = Number(process.env.BENCH_BOTTOMLESS_INTERVAL_S ?? 1);
const ALLOWANCE_MS = 250;
const BUCKET = 'bottomless';
const DB = 'ns-bench:default';

interface Write {
  ackAt: number;
  index: number;
}

interface WritePhase extends Lags {
  walBytes: number;
  phaseMs: number;
  phase: ProxiedRequest[];
  idle: ProxiedRequest[];
  idleS: number;
  facts: string[];
}

/**
 * At most this many connections to the server: when it stalls, writes queue here instead of
 * opening connections until the server's per-address share answers 503.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One INSERT on a fresh Hrana stream over the bounded agent; resolves with its replication index. */
function insert(url: string, value: string): Promise<number> {
  const body = JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'INSERT INTO t (v) VALUES (?)', args: [{ type: 'text', value }] } }, { type: 'close' }] });
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v2/pipeline`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => {
        const first = res.statusCode === 200 ? (JSON.parse(text) as { results: { type: string; response?: { result?: { replication_index?: string } } }[] }).results[0] : undefined;
        const index = Number(first?.response?.result?.replication_index);
        if (first?.type === 'ok' && Number.isSafeInteger(index)) resolve(index);
        else reject(new Error(`write failed: HTTP ${res.statusCode}: ${text.slice(0, 500)}`));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Open-loop load: a write every 1/RATE s whatever the answers do; any failed write fails the run. */
async function load(url: string, seconds: number): Promise<Write[]> {
  const writes: Write[] = [];
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < RATE * seconds; i++) {
    const wait = start + (i * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const p = insert(url, `row ${i} ${'v'.repeat(i % 50)}`).then((index) => {
      writes.push({ ackAt: performance.now(), index });
    });
    p.catch(() => undefined); // observed by Promise.all below; not an unhandled rejection meanwhile
    inFlight.push(p);
  }
  await Promise.all(inFlight);
  return writes;
}

/** The durable markers of every generation of the database (read straight from s3rver). */
async function markers(storage: BackupStorage): Promise<Map<string, { base: number; lastFrameNo: number }>> {
  const out = new Map<string, { base: number; lastFrameNo: number }>();
  for await (const e of storage.list(`${DB}-`)) {
    const parsed = e.kind === 'object' ? parseGenerationKey(DB, e.key) : null;
    if (parsed?.object.kind !== 'durable' || e.kind !== 'object') continue;
    const m = decodeDurableMarker((await storage.get(e.key)).body, e.key);
    out.set(parsed.generation, { base: Number(m.lastFrameNo) - m.lastFrame, lastFrameNo: Number(m.lastFrameNo) });
  }
  return out;
}

/** Waits (polling the store every 50 ms, bounded) until a durable marker covers log frame `index`. */
async function waitDurable(storage: BackupStorage, index: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const all = await markers(storage);
    if ([...all.values()].some((m) => m.lastFrameNo >= index)) return;
    if (performance.now() > deadline) throw new Error(`log frame ${index} was not durable within ${timeoutMs} ms`);
    await sleep(50);
  }
}

interface Lags {
  lags: number[];
  early: number;
  /** Per batch of the measured writes: its last write's acknowledgement → its PUT reaching the proxy. */
  toPut: number[];
  /** Per batch: the PUT's time at s3rver (sent → answered). */
  put: number[];
}

/**
 * For each write: from its acknowledgement to the store holding its batch and every earlier one,
 * and the `.meta` (and `.dep`, where the generation has one) of each of their generations.
 */
function lagsOf(writes: Write[], requests: readonly ProxiedRequest[], bases: Map<string, { base: number }>): Lags {
  const stored = new Map<string, { gen: string; first: number; last: number; at: number; sentAt: number; answeredAt: number; lastAck: number }>();
  const genObjects = new Map<string, number>();
  for (const r of requests) {
    const parsed = parseGenerationKey(DB, r.key);
    if (r.status !== 200 || !isUpload(r) || r.query.includes('partNumber') || parsed === null) continue;
    const { generation: gen, object } = parsed;
    if (object.kind === 'meta' || object.kind === 'dep') genObjects.set(gen, Math.max(genObjects.get(gen) ?? -Infinity, r.answeredAt));
    if (object.kind !== 'batch' || stored.has(r.key)) continue;
    const base = bases.get(gen)?.base;
    if (base === undefined) throw new Error(`no durable marker for generation ${gen}`);
    stored.set(r.key, { gen, first: base + object.first, last: base + object.last, at: r.answeredAt, sentAt: r.sentAt, answeredAt: r.answeredAt, lastAck: -Infinity });
  }
  for (const b of stored.values()) {
    const meta = genObjects.get(b.gen);
    if (meta === undefined) throw new Error(`generation ${b.gen} has batches but no .meta was uploaded`);
    b.at = Math.max(b.at, meta);
  }
  const batches = [...stored.values()].sort((a, b) => a.first - b.first);
  let prefixMax = -Infinity;
  const durableAt = batches.map((b) => (prefixMax = Math.max(prefixMax, b.at)));
  const lags: number[] = [];
  let early = 0;
  for (const w of writes) {
    const j = batches.findIndex((b) => b.first <= w.index && w.index <= b.last);
    if (j < 0) throw new Error(`log frame ${w.index} is in no uploaded batch`);
    const lag = durableAt[j]! - w.ackAt;
    if (lag < 0) early++;
    lags.push(Math.max(0, lag));
    batches[j]!.lastAck = Math.max(batches[j]!.lastAck, w.ackAt);
  }
  const mine = batches.filter((b) => b.lastAck > -Infinity);
  return { lags, early, toPut: mine.map((b) => b.sentAt - b.lastAck), put: mine.map((b) => b.answeredAt - b.sentAt) };
}

async function runWritePhase(opts: BenchOptions): Promise<WritePhase> {
  ensureBuilt(opts);
  const tmp = benchTempDir(opts, 'bottomless-writes');
  const s3 = await startS3rver(opts);
  try {
    const storage = await s3.bucket(BUCKET);
    const proxy = await startCountingProxy(opts, s3.endpoint, BUCKET);
    const env = bottomlessEnv(proxy.endpoint, BUCKET, { LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS: String(INTERVAL_S) });
    const server = await serve(opts, path.join(tmp.dir, 'data.sqld'), env, ['--enable-bottomless-replication', '--log-level', 'warn']);
    let stopped = false;
    try {
      await execSql(server.url, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
      const cell = (await execSql(server.url, 'PRAGMA page_size')).rows?.[0]?.[0] as { value?: string } | undefined;
      const pageSize = Number(cell?.value ?? 4096);
      opts.log(`  warm-up: ${RATE} writes/s for ${Math.max(3, opts.warmupS)} s`);
      const warm = await load(server.url, Math.max(3, opts.warmupS));
      const before = Math.max(...warm.map((w) => w.index));
      await waitDurable(storage, before, 60_000);
      await sleep(2000);
      const mark = proxy.requests.length;
      const t0 = performance.now();
      opts.log(`  measured: ${RATE} writes/s for ${SECONDS} s`);
      const writes = await load(server.url, SECONDS);
      const last = Math.max(...writes.map((w) => w.index));
      await waitDurable(storage, last, 60_000);
      await sleep(2000); // the marker rewrite (debounced 1 s) belongs to these writes
      const phaseMs = performance.now() - t0;
      const phase = proxy.requests.slice(mark);
      const idleS = opts.durationS >= 30 ? 60 : 20;
      opts.log(`  idle: counting requests to the store for ${idleS} s`);
      const idleMark = proxy.requests.length;
      await sleep(idleS * 1000);
      const idle = proxy.requests.slice(idleMark);
      await server.stop();
      stopped = true;
      const bases = await markers(storage);
      const lags = lagsOf(writes, proxy.requests, bases);
      const gens = new Set(phase.map((r) => parseGenerationKey(DB, r.key)?.generation).filter((g) => g !== undefined));
      return {
        ...lags,
        walBytes: (last - before) * (pageSize + 24),
        phaseMs,
        phase,
        idle,
        idleS,
        facts: [`${writes.length} writes, log frames ${before + 1}..${last} (${last - before}), page size ${pageSize}; ${gens.size} bottomless generation(s) written to in the phase; batch interval ${INTERVAL_S} s`],
      };
    } finally {
      if (!stopped) await server.stop().catch(() => undefined);
      agent.destroy();
      await proxy.close();
    }
  } finally {
    await s3.close();
    tmp.remove();
  }
}

let shared: Promise<WritePhase> | null = null;
/** One run serves all three rows (whichever of them runs first starts it). */
const writePhase = (opts: BenchOptions): Promise<WritePhase> => (shared ??= runWritePhase(opts));

const ms = (n: number): string => `${fmtNumber(n, 1)} ms`;

/** Requests by method and object kind, e.g. `PUT batch ×12, PUT durable ×3`. */
function summary(reqs: readonly ProxiedRequest[]): string {
  const counts = new Map<string, number>();
  for (const r of reqs) {
    const kind = parseGenerationKey(DB, r.key)?.object.kind ?? (r.key === '' ? 'bucket' : r.key);
    const k = `${r.method} ${kind}${r.query.includes('uploadId') ? ' (multipart)' : ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts.size === 0 ? 'none' : [...counts].map(([k, n]) => `${k} ×${n}`).join(', ');
}

export const bottomlessLag: Benchmark = {
  name: 'bottomless-lag',
  description: `acknowledged → durable in S3 (s3rver), ${RATE} writes/s for ${SECONDS} s, batch interval ${INTERVAL_S} s (p99 vs interval + ${ALLOWANCE_MS} ms)`,
  async run(opts): Promise<BenchResult> {
    const w = await writePhase(opts);
    const p99 = percentile(w.lags, 99);
    const budget = INTERVAL_S * 1000 + ALLOWANCE_MS;
    return {
      name: this.name,
      unit: 'ms p99',
      value: p99,
      baseline: budget,
      ratio: p99 / budget,
      target: 1,
      comparison: '<=',
      details: [
        ...w.facts,
        `lag p50 ${ms(percentile(w.lags, 50))}, p90 ${ms(percentile(w.lags, 90))}, p99 ${ms(p99)}, max ${ms(Math.max(...w.lags))}; ${w.early} write(s) were durable before their answer arrived (counted as 0)`,
        `per batch (${w.put.length}): last write acknowledged → its PUT sent p50 ${ms(percentile(w.toPut, 50))}, max ${ms(Math.max(...w.toPut))}; PUT sent → answered p50 ${ms(percentile(w.put, 50))}, max ${ms(Math.max(...w.put))}`,
        `durable = s3rver answered the PUT of the write's batch, of every batch before it and of their generations' .meta/.dep (seen by the counting proxy, same clock as the acknowledgement); the baseline column is the budget interval + ${ALLOWANCE_MS} ms`,
      ],
    };
  },
};

export const bottomlessUpload: Benchmark = {
  name: 'bottomless-upload',
  description: `bytes and PUTs sent to the store during the ${RATE} writes/s phase vs the WAL bytes written`,
  async run(opts): Promise<BenchResult> {
    const w = await writePhase(opts);
    const uploads = w.phase.filter(isUpload);
    const bytes = uploads.reduce((a, r) => a + r.bytes, 0);
    const puts = w.phase.filter((r) => r.method === 'PUT').length;
    return {
      name: this.name,
      unit: 'KB',
      value: bytes / 1e3,
      baseline: w.walBytes / 1e3,
      ratio: bytes / w.walBytes,
      target: 1,
      comparison: '<=',
      details: [
        `${puts} PUTs (${fmtNumber(puts / (w.phaseMs / 1000), 1)}/s over ${fmtNumber(w.phaseMs / 1000, 1)} s), ${fmtNumber(bytes / 1e6, 2)} MB uploaded for ${fmtNumber(w.walBytes / 1e6, 2)} MB of WAL (${fmtNumber(bytes / (RATE * SECONDS), 0)} bytes per write)`,
        `requests in the phase: ${summary(w.phase)}`,
      ],
    };
  },
};

export const bottomlessIdle: Benchmark = {
  name: 'bottomless-idle',
  description: 'requests an idle server sends to the store, per minute (target 0)',
  async run(opts): Promise<BenchResult> {
    const w = await writePhase(opts);
    const perMin = (w.idle.length * 60) / w.idleS;
    return {
      name: this.name,
      unit: 'req/min',
      value: perMin,
      baseline: 0,
      ratio: perMin,
      target: 0,
      comparison: '<=',
      details: [`${w.idle.length} request(s) in ${w.idleS} s with no writes, starting 2 s after the last write was durable: ${summary(w.idle)} (ratio column = the rate itself)`],
    };
  },
};
