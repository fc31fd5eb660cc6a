/**
 * The fuzz suites' server and oracle (test/fuzz/): one real server per test file, in this process
 * (so a crash is an `uncaughtException` we record and pin on the batch that caused it, with the input
 * fast-check shrinks to — a dead child process would only say that it died), a sentinel table, and
 * the checks run after every batch of generated requests:
 *
 * - the server still answers a correct query (`SELECT 1` through @libsql/client over HTTP);
 * - the sentinel table's content hash is unchanged;
 * - nothing crashed (uncaught exception, unhandled rejection), the server did not stop by itself,
 *   and it logged no error line.
 *
 * Per response, `judgeStatus` allows a 5xx only when an explicit allow-list entry of the test file
 * (route, status, input class, reason from the spec) matches it.
 *
 * Sentinel design: every generated request runs in one of two modes. `full` requests carry
 * credentials that may write, and their SQL comes from a grammar that never names the sentinel
 * (test/fuzz/arbitraries.ts). `limited` requests carry credentials that may not write the default
 * namespace (a read-only JWT, scoped or foreign tokens, garbage, none), and their SQL may name the
 * sentinel — with DELETE, UPDATE, DROP, triggers. Any change of the sentinel is then either a write
 * that got past authorization or a full-mode statement that touched a table it never named; both
 * are bugs. Batons (and WebSocket connections) are never shared between the modes, because a text
 * stored by a limited request and run later by a full one would be a legitimate write.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { inspect } from 'node:util';
import { createClient, type Client } from '@libsql/client';
import { SignJWT, type JWTPayload } from 'jose';
import { resolveServeConfig } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { LogCapture, type LogLine } from './log-capture.js';
import { tempDir } from './test-server.js';

/**
 * `FUZZ_SEED` replays a run (default: a fixed seed, so `npm test` sends the same requests every
 * time); `FUZZ_RUNS` sets the number of batches per property (each batch is a handful of requests
 * or frames). The long run for bench/ is `FUZZ_RUNS=100000 FUZZ_SEED=$RANDOM npx vitest run test/fuzz`.
 */
export const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? 20_250_601 : Number(process.env.FUZZ_SEED);

export function fuzzRuns(defaultRuns: number): number {
  const env = process.env.FUZZ_RUNS;
  return env === undefined ? defaultRuns : Math.max(1, Number(env));
}

/** A test's timeout for `runs` batches: the 30 s default, or more for long runs. */
export const fuzzTimeout = (runs: number): number => Math.max(30_000, runs * 250);

/** Every request and frame gets this long to be answered; longer is a hang (a failure). */
export const ANSWER_TIMEOUT_MS = 10_000;

export const SENTINEL = 'sentinel';
const SENTINEL_ROWS = 100;
const SENTINEL_SQL = `SELECT id, v, hex(b) AS b FROM ${SENTINEL} ORDER BY id`;
/** Every schema object on or naming the sentinel: a trigger, index or view added to it changes the hash too. */
const SENTINEL_SCHEMA_SQL = `SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE tbl_name = '${SENTINEL}' OR sql LIKE '%${SENTINEL}%' ORDER BY name`;

/**
 * Credentials of one mode: `Authorization` values for HTTP, `jwt` values for the WebSocket hello;
 * `*Ok` are the ones that authenticate (and may read the default namespace), the others every kind.
 */
export interface Credentials {
  http: (string | undefined)[];
  jwt: (string | null)[];
  httpOk: string[];
  jwtOk: string[];
}

export interface FuzzTokens {
  full: Credentials;
  limited: Credentials;
  /** A full-access JWT for the checks. */
  admin: string;
  /** Limited JWTs that authenticate but may not read the default namespace (it "does not exist" for them). */
  noRead: string[];
}

async function makeTokens(): Promise<{ raw: string; tokens: FuzzTokens }> {
  const pair = (): { privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']; raw: string } => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const der = publicKey.export({ type: 'spki', format: 'der' });
    return { privateKey, raw: der.subarray(der.length - 32).toString('base64url') };
  };
  const key = pair();
  const foreign = pair();
  const sign = (claims: JWTPayload, k = key): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(k.privateKey);
  const now = Math.floor(Date.now() / 1000);
  const full = [await sign({}), await sign({ a: 'rw' }), await sign({ p: { rw: { ns: ['default'] } } }), await sign({ exp: now + 3600 })];
  const limited = [
    await sign({ a: 'ro' }),
    await sign({ p: { ro: { ns: ['default'] } } }),
    await sign({ a: 'rw', id: 'other' }),
    await sign({ p: { rw: { ns: ['other'] }, ro: { ns: ['default'] } } }),
    await sign({ exp: now - 3600 }),
    await sign({ aud: 'someone' }),
    await sign({ a: 42 }),
    await sign({}, foreign),
  ];
  const garbage = ['', 'x', 'a.b.c', `${limited[0]!}x`, 'ey'.repeat(300)];
  return {
    raw: key.raw,
    tokens: {
      admin: full[0]!,
      noRead: [limited[2]!],
      full: { http: full.flatMap((t) => [`Bearer ${t}`, `bearer ${t}`]), jwt: full, httpOk: full.map((t) => `Bearer ${t}`), jwtOk: full },
      limited: {
        httpOk: [`Bearer ${limited[0]!}`, `bearer ${limited[1]!}`],
        jwtOk: [limited[0]!, limited[1]!],
        http: [
          ...limited.map((t) => `Bearer ${t}`),
          ...garbage.map((t) => `Bearer ${t}`),
          undefined,
          'Bearer',
          `Basic ${Buffer.from('u:p').toString('base64')}`,
          `Token ${full[0]!}`,
          `Bearer ${full[0]!}\u00e9`,
        ],
        jwt: [...limited, ...garbage, null],
      },
    },
  };
}

/**
 * Requests (or frames) sent per route or channel, printed at the end of a file. With
 * `FUZZ_VERBOSE=1` also every kind of answer (status and the start of its text): what tuning the
 * generators looks at.
 */
export class Counters {
  private readonly counts = new Map<string, number>();
  private readonly verbose = process.env.FUZZ_VERBOSE === '1';

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  detail(key: string): void {
    if (this.verbose) this.add(`answer ${key}`);
  }

  total(prefix = ''): number {
    let sum = 0;
    for (const [key, n] of this.counts) if (key.startsWith(prefix)) sum += n;
    return sum;
  }

  report(title: string): string {
    const rows = [...this.counts].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `  ${key}: ${n}`);
    return `${title}\n${rows.join('\n')}`;
  }
}

export interface FuzzServer {
  readonly server: RunningServer;
  readonly port: number;
  readonly tokens: FuzzTokens;
  readonly counters: Counters;
  /** Liveness, sentinel, crashes, error log lines: throws a description of the first failure. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export interface FuzzServerOptions {
  /** `--enable-namespaces`: the generated headers pick the namespace (checks use Host `localhost`). */
  namespaces?: boolean;
}

function sentinelRows(): { id: number; v: string; b: Buffer }[] {
  return Array.from({ length: SENTINEL_ROWS }, (_, i) => ({ id: i + 1, v: `row ${i + 1} \u00e9\u{1f600}`, b: createHash('sha256').update(String(i)).digest() }));
}

/** A hash of the sentinel's rows and schema (values as JSON: integers, text and hex text only). */
async function sentinelHash(client: Client): Promise<string> {
  const [rows, schema] = await Promise.all([client.execute(SENTINEL_SQL), client.execute(SENTINEL_SCHEMA_SQL)]);
  return createHash('sha256').update(JSON.stringify([rows.rows, schema.rows])).digest('hex');
}

/**
 * Starts the server (JWT auth; short transaction and stream timeouts, so a transaction a fuzzed
 * stream leaves open is stolen after 300 ms instead of stalling later writers for 5 s) and creates
 * the sentinel.
 */
export async function startFuzzServer(opts: FuzzServerOptions = {}): Promise<FuzzServer> {
  const { raw, tokens } = await makeTokens();
  const dir = tempDir('libsqlctl-fuzz-');
  const logs = new LogCapture('warn');
  const crashes: unknown[] = [];
  const onCrash = (err: unknown): void => void crashes.push(err);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const flags = {
    ...serveFlagDefaults(),
    'http-listen-addr': '127.0.0.1:0',
    'db-path': path.join(dir, 'data.sqld'),
    'shutdown-timeout': 5,
    'no-welcome': true,
    'log-level': 'warn',
    ...(opts.namespaces ? { 'enable-namespaces': true } : {}),
  };
  let server: RunningServer;
  try {
    const config = await resolveServeConfig(flags, { SQLD_AUTH_JWT_KEY: raw });
    server = await startServer({ ...config, limits: { ...config.limits, txnTimeoutMs: 300, streamExpiryMs: 1500 } }, { logger: logs.logger });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  void server.stopped.then(() => (stopped = true));
  const port = server.httpAddress.port;
  // With namespaces on, Host `127.0.0.1:<port>` would name namespace `127`; `localhost` names none.
  const client = createClient({ url: `http://${opts.namespaces ? 'localhost' : '127.0.0.1'}:${port}`, authToken: tokens.admin });
  await client.execute(`CREATE TABLE ${SENTINEL} (id INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB NOT NULL)`);
  await client.batch(
    sentinelRows().map((r) => ({ sql: `INSERT INTO ${SENTINEL} VALUES (?, ?, ?)`, args: [r.id, r.v, r.b] })),
    'write',
  );
  const expected = await sentinelHash(client);
  let errorsSeen = 0;

  const describeLog = (l: LogLine): string => `${l.msg}${l.err ? `: ${l.err.type ?? ''} ${l.err.message ?? ''}\n${l.err.stack ?? ''}` : ''}`;

  return {
    server,
    port,
    tokens,
    counters: new Counters(),
    async check() {
      // Cleared once reported, so that fast-check's shrinking replays only fail if they crash again.
      const crash = crashes.splice(0)[0];
      if (crash !== undefined) throw new Error(`the server crashed: ${crash instanceof Error ? crash.stack : inspect(crash)}`);
      if (stopped) throw new Error('the server stopped by itself');
      const errors = logs.errors().slice(errorsSeen);
      errorsSeen += errors.length;
      if (errors.length > 0) throw new Error(`the server logged ${errors.length} error line(s); first: ${describeLog(errors[0]!)}`);
      const hashOrError = sentinelHash(client).catch((err: unknown) => `the sentinel table can no longer be read: ${(err as Error).message}`);
      const [one, hash, health] = await Promise.all([client.execute('SELECT 1 AS one'), hashOrError, sendHttp(port, { method: 'GET', path: '/health', headers: {}, body: null })]);
      if (Number(one.rows[0]?.one) !== 1) throw new Error(`SELECT 1 answered ${JSON.stringify(one.rows)}`);
      if (hash !== expected) throw new Error(`the sentinel table changed (hash ${hash}, expected ${expected})`);
      if (health.status !== 200) throw new Error(`GET /health answered ${health.status}`);
    },
    async close() {
      client.close();
      try {
        await server.close();
      } finally {
        process.off('uncaughtException', onCrash);
        process.off('unhandledRejection', onCrash);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---- HTTP ----------------------------------------------------------------------------------

export interface HttpPlan {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body: Buffer | null;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

// Idle sockets go well before the server's keep-alive timeout (10 s), so none is reused as it closes.
const agent = new http.Agent({ keepAlive: true, maxSockets: 8, timeout: 4000 });

/** What Node lets a header value hold (tab, visible ASCII, latin1): other characters become `?`. */
export function headerSafe(value: string): string {
  return value.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

/**
 * One request with node:http (which, unlike fetch, lets a test set Host and send latin1 header
 * bytes). Rejects on a reset connection and when no full answer came within ANSWER_TIMEOUT_MS.
 */
export function sendHttp(port: number, plan: HttpPlan): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(plan.headers)) if (value !== undefined) headers[name] = headerSafe(value);
  if (plan.body !== null) headers['content-length'] = String(plan.body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: plan.method, path: plan.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(ANSWER_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms (a hang)`)));
    req.on('error', reject);
    req.end(plan.body ?? undefined);
  });
}

/** A 5xx the spec documents: which route, which status, for which input (matched on the answer). */
export interface Allowed5xx {
  route: RegExp;
  status: number;
  inputClass: string;
  reason: string;
  matches(body: string): boolean;
}

/**
 * The oracle for one answer: below 500, or on the allow-list. Counts allowed 5xx per entry.
 * Returns an error message, or null.
 */
export function judgeStatus(allowed: readonly Allowed5xx[], counters: Counters, route: string, answer: HttpAnswer): string | null {
  if (answer.status > 0 && answer.status < 500) return null;
  const body = answer.body.toString('utf8');
  const entry = allowed.find((a) => a.status === answer.status && a.route.test(route) && a.matches(body));
  if (entry) {
    counters.add(`allowed ${answer.status} ${route}: ${entry.inputClass}`);
    return null;
  }
  return `${route} answered ${answer.status}, which no allow-list entry covers: ${body.slice(0, 500)}`;
}

/** Closes the shared keep-alive sockets (after the last request of a file). */
export function closeHttpAgent(): void {
  agent.destroy();
}
