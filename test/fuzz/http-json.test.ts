/**
 * Fuzzing the JSON user routes over HTTP: legacy `POST /`, `/v1/execute`, `/v1/batch`,
 * `/v2/pipeline`, `/v3/pipeline`, `/v3/cursor`, and every other method and path (`/health`,
 * `/version`, `/v1`, `/v2`, `/v3`, `/v3-protobuf`, `/dump`, unknown ones). Bodies are structured but
 * mutated (wrong types, missing fields, huge numbers, bounded deep nesting, random unicode, invalid
 * base64, forged and reused batons), mutated JSON text, or random bytes; headers pick credentials of
 * the request's mode, content types, `x-namespace`, `x-namespace-bin` and `Host` (namespaces are
 * enabled, so they all matter).
 *
 * Oracle: no crash, no reset, no hang; every 5xx on ALLOWED_5XX below; a 200 of a JSON route is
 * JSON; after each batch `SELECT 1` answers and the sentinel is unchanged (test/helpers/fuzz-server.ts).
 *
 * Replay: `FUZZ_SEED=<seed> npx vitest run test/fuzz/http-json.test.ts`; the long run for bench/ is
 * `FUZZ_RUNS=100000 npx vitest run test/fuzz`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Allowed5xx,
  closeHttpAgent,
  FUZZ_SEED,
  fuzzRuns,
  fuzzTimeout,
  type FuzzServer,
  judgeStatus,
  sendHttp,
  startFuzzServer,
  type HttpAnswer,
} from '../helpers/fuzz-server.js';
import { type BatonRef, batonArb, deepJson, hugeNumber, isObj, json, junk, loose, maybe, type Mode, mutateText, orJunk, sqlArb, strict, weird } from './arbitraries.js';

/**
 * The 5xx answers sqld documents for these routes, and the inputs that get them. Anything else at
 * or above 500 fails the run.
 */
const ALLOWED_5XX: Allowed5xx[] = [
  {
    route: /^POST \/$/,
    status: 500,
    inputClass: 'a query whose first statement does not parse',
    reason: 'spec §4.2: a SQL syntax or unsupported-statement error in the pre-execution check surfaces as 500 {"error":"Internal Error: `<parser message>`"} (an error-conversion quirk of sqld)',
    // the parser's message only: a generic `Internal Error` (an exception in the route) does not match
    matches: (body) => /^\{"error":"Internal Error: `(near \\".*\\": syntax error|incomplete input|unrecognized token: .*|SQL string could not be parsed: unsupported statement: .*)`"\}$/s.test(body),
  },
  {
    route: /^POST \/v1\/(execute|batch)$/,
    status: 500,
    inputClass: 'a statement failing with an SQLite error',
    reason: 'spec §4.3: statement-level errors of /v1 are a Hrana Error body with status 500 for SQLITE_* codes',
    matches: (body) => /^\{"message":".*","code":"SQLITE_[A-Z_]+"\}$/s.test(body),
  },
  {
    route: /^POST \/v1\/(execute|batch)$/,
    status: 501,
    inputClass: 'a statement with both positional and named arguments',
    reason: 'spec §4.3: ARGS_BOTH_POSITIONAL_AND_NAMED is 501 on /v1',
    matches: (body) => body.includes('"code":"ARGS_BOTH_POSITIONAL_AND_NAMED"'),
  },
  {
    route: /^POST \/v1\/(execute|batch)$/,
    status: 503,
    inputClass: 'a statement whose transaction timed out',
    reason: 'spec §4.3: TRANSACTION_TIMEOUT / TRANSACTION_BUSY are 503 on /v1',
    matches: (body) => /"code":"TRANSACTION_(TIMEOUT|BUSY)"/.test(body),
  },
];

const RUNS = fuzzRuns(120);
const JSON_ROUTES = ['/', '/v1/execute', '/v1/batch', '/v2/pipeline', '/v3/pipeline', '/v3/cursor'] as const;
const OTHER_PATHS = [
  '/health',
  '/version',
  '/v1',
  '/v2',
  '/v3',
  '/v3-protobuf',
  '/dump',
  '/dump?preserve_row_ids=true',
  '/dump?preserve_row_ids=maybe',
  '/dump?preserve_row_ids=true&preserve_row_ids=false',
  '/console',
  '/v1/jobs',
  '/v1/jobs/1',
  '/beta/listen?table=fz_a',
  '/dev/default/v2/pipeline',
  '/v2/pipeline',
  '/v3/cursor/x',
  '/%ff%fe',
  '/?a=1',
  '/nope',
];

interface Plan {
  mode: Mode;
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  /** A JSON value (its `baton` filled in at send time from `baton`), text, or bytes. */
  body: { value: unknown; baton?: BatonRef } | string | Uint8Array | null;
}

let fuzz: FuzzServer;
const batons: Record<Mode, string[]> = { full: [], limited: [] };

const b64 = (s: string): string => Buffer.from(s).toString('base64').replace(/=+$/, '');

/** Headers of a request; `ok`: ones that let it through to its body (credentials that authenticate, the default namespace). */
function headersArb(mode: Mode, ok: boolean): fc.Arbitrary<Plan['headers']> {
  const port = fuzz.port;
  if (ok) {
    return fc.record({
      authorization: fc.constantFrom(...fuzz.tokens[mode].httpOk),
      'content-type': maybe(fc.constantFrom('application/json', 'text/plain'), 0.5),
      host: fc.constant(`localhost:${port}`),
      'x-namespace': maybe(fc.constant('default'), 0.1),
      'x-namespace-bin': maybe(fc.constant(b64('default')), 0.05),
    });
  }
  const creds = fuzz.tokens[mode].http;
  return fc.record({
    authorization: fc.constantFrom(...creds),
    'x-authorization': maybe(fc.constantFrom(...creds), 0.15),
    'content-type': maybe(
      fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 3, arbitrary: fc.constantFrom('text/plain', 'application/x-protobuf', 'application/grpc-web', 'multipart/form-data; boundary=x') }, { weight: 1, arbitrary: fc.oneof(fc.constant(''), weird) }),
      0.5,
    ),
    host: fc.oneof(
      { weight: 12, arbitrary: fc.constant(`localhost:${port}`) },
      { weight: 1, arbitrary: fc.constantFrom('default.example', 'nope.example', `127.0.0.1:${port}`, '.', '') },
      { weight: 1, arbitrary: weird },
    ),
    'x-namespace': maybe(fc.oneof(fc.constantFrom('default', 'default', 'nope', ''), weird), 0.15),
    'x-namespace-bin': maybe(fc.oneof(fc.constantFrom(b64('default'), b64('default'), 'ZGVmYXVsdA==', '!!!', '', '/w', b64('\u00ff\u00fe'), 'A'), weird), 0.06),
    'content-encoding': maybe(fc.constantFrom('gzip', 'br', 'identity', 'x'), 0.05),
    'accept-encoding': maybe(fc.constantFrom('gzip', 'br, zstd', '*'), 0.1),
    'x-fuzz': maybe(weird, 0.1),
  });
}

const legacyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  hugeNumber,
  fc.double(),
  weird,
  fc.constantFrom({ base64: 'AAEC' }, { base64: 'AAE=' }, { base64: '!!' }, { base64: 1 }, { other: 1 }, [1, 2], { a: { b: [] } }),
);

function legacyBody(mode: Mode, ok: boolean): fc.Arbitrary<unknown> {
  if (ok) {
    const params = fc.oneof(fc.array(legacyValue, { maxLength: 3 }), fc.dictionary(fc.constantFrom(':a', 'a', '@b', '$c'), legacyValue, { maxKeys: 3 }));
    const query = fc.oneof(sqlArb(mode), fc.record({ q: sqlArb(mode), params }, { requiredKeys: ['q'] }));
    return fc.record({ statements: fc.array(query, { minLength: 1, maxLength: 5 }) });
  }
  const params = fc.oneof(fc.array(legacyValue, { maxLength: 3 }), fc.dictionary(fc.constantFrom(':a', 'a', '@b', '$c', 'x', ''), legacyValue, { maxKeys: 3 }), junk);
  const query = fc.oneof(
    { weight: 4, arbitrary: sqlArb(mode) },
    { weight: 3, arbitrary: fc.record({ q: orJunk(sqlArb(mode)), params: maybe(params, 0.6), extra: maybe(junk, 0.05) }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: junk },
  );
  return fc.record({ statements: orJunk(fc.array(query, { maxLength: 5 })), replication_index: maybe(orJunk(fc.nat()), 0.1) });
}

/** A new stream or the newest baton of the mode: what a well-behaved client sends. */
const okBaton: fc.Arbitrary<BatonRef> = fc.oneof(fc.constant({ literal: null }), fc.nat().map((n) => ({ pool: n * 4 + 1 })));

function jsonBody(route: (typeof JSON_ROUTES)[number], mode: Mode, ok: boolean): fc.Arbitrary<Plan['body']> {
  const sh = ok ? strict : loose;
  const baton = ok ? okBaton : batonArb;
  switch (route) {
    case '/':
      return legacyBody(mode, ok).map((value) => ({ value }));
    case '/v1/execute':
      return fc.oneof(
        { weight: 4, arbitrary: sh.stmt(mode).map((stmt) => ({ value: { stmt } })) },
        { weight: 1, arbitrary: sh.stmt(mode).map((stmt) => ({ value: [stmt] })) },
        { weight: 1, arbitrary: fc.tuple(sqlArb(mode), ok ? fc.constant(null) : junk).map((arr) => ({ value: { stmt: arr } })) },
      );
    case '/v1/batch':
      return fc.oneof({ weight: 4, arbitrary: sh.batch(mode).map((batch) => ({ value: { batch } })) }, { weight: 1, arbitrary: sh.batch(mode).map((batch) => ({ value: [batch] })) });
    case '/v3/cursor':
      return fc.tuple(baton, sh.batch(mode)).map(([b, batch]) => ({ value: { batch }, baton: b }));
    default:
      return fc
        .tuple(baton, ok ? fc.array(sh.streamRequest(mode), { maxLength: 6 }) : orJunk(fc.array(sh.streamRequest(mode), { maxLength: 6 }), 1), ok ? fc.constant(undefined) : maybe(junk, 0.05))
        .map(([b, requests, extra]) => ({ value: { requests, ...(extra === undefined ? {} : { extra }) }, baton: b }));
  }
}

function planArb(mode: Mode): fc.Arbitrary<Plan> {
  const rawBody = fc.oneof(
    fc.uint8Array({ maxLength: 256 }),
    weird,
    deepJson,
    fc.constantFrom('', '{}', '[]', 'null', '{"baton":null}', '{"requests":{}}', '{"statements":"SELECT 1"}'),
  );
  // Half the requests are well-formed up to their SQL (so that it runs), the others anything.
  const okRoute = fc.constantFrom(...JSON_ROUTES).chain((route) =>
    fc.record({ mode: fc.constant(mode), method: fc.constant('POST'), path: fc.constant(route), headers: headersArb(mode, true), body: jsonBody(route, mode, true) }),
  );
  const anyRoute = fc.constantFrom(...JSON_ROUTES).chain((route) =>
    fc.record({
      mode: fc.constant(mode),
      method: fc.constant('POST'),
      path: fc.constant(route),
      headers: headersArb(mode, false),
      body: fc.oneof(
        { weight: 8, arbitrary: jsonBody(route, mode, false) },
        { weight: 1, arbitrary: mutateText(jsonBody(route, mode, false).map((b) => json(isObj(b) && 'value' in b ? b.value : b))) },
        { weight: 1, arbitrary: rawBody },
      ),
    }),
  );
  const otherRoute = fc.record({
    mode: fc.constant(mode),
    method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'PATCH', 'POST'),
    path: fc.constantFrom(...OTHER_PATHS),
    headers: headersArb(mode, false),
    body: fc.option(rawBody, { freq: 4 }),
  });
  return fc.oneof({ weight: 5, arbitrary: okRoute }, { weight: 4, arbitrary: anyRoute }, { weight: 1, arbitrary: otherRoute });
}

function bodyBytes(plan: Plan): Buffer | null {
  const b = plan.body;
  if (b === null) return null;
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  if (b instanceof Uint8Array) return Buffer.from(b);
  if (b.baton === undefined) return Buffer.from(json(b.value));
  const pool = batons[plan.mode];
  const baton = 'pool' in b.baton ? pickBaton(pool, b.baton.pool) : b.baton.literal;
  return Buffer.from(json(isObj(b.value) ? { baton, ...b.value } : b.value));
}

/** Mostly the newest baton (still valid, unless a parallel request took it), sometimes an old one. */
function pickBaton(pool: string[], n: number): string | null {
  if (pool.length === 0) return null;
  return n % 4 === 0 ? pool[n % pool.length]! : pool.pop()!;
}

function keepBaton(mode: Mode, baton: unknown): void {
  if (typeof baton !== 'string') return;
  const pool = batons[mode];
  pool.push(baton);
  if (pool.length > 40) pool.shift();
}

/** A 200 of a JSON route must be JSON (JSON lines for the cursor); batons go into the mode's pool. */
function checkOk(plan: Plan, route: string, answer: HttpAnswer): string | null {
  if (answer.status !== 200 || plan.method !== 'POST' || !(JSON_ROUTES as readonly string[]).includes(plan.path)) return null;
  const text = answer.body.toString('utf8');
  try {
    if (plan.path === '/v3/cursor') {
      const lines = text.split('\n');
      if (lines.pop() !== '') return `${route}: the cursor body does not end with a newline`;
      const head = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
      for (const line of lines.slice(1)) JSON.parse(line);
      keepBaton(plan.mode, head.baton);
    } else {
      const body = JSON.parse(text) as unknown;
      if (isObj(body)) keepBaton(plan.mode, body.baton);
    }
  } catch (err) {
    return `${route} answered 200 with a body that is not JSON (${(err as Error).message}): ${text.slice(0, 300)}`;
  }
  return null;
}

async function run(plan: Plan): Promise<void> {
  const route = `${plan.method} ${plan.path.split('?', 1)[0]!}`;
  fuzz.counters.add(`http ${(JSON_ROUTES as readonly string[]).includes(plan.path) && plan.method === 'POST' ? route : 'other methods and paths'}`);
  let answer: HttpAnswer;
  try {
    answer = await sendHttp(fuzz.port, { method: plan.method, path: plan.path, headers: plan.headers, body: bodyBytes(plan) });
  } catch (err) {
    throw new Error(`${route}: ${(err as Error).message}`);
  }
  fuzz.counters.add(`status ${answer.status}`);
  fuzz.counters.detail(`${route} ${answer.status} ${answer.status >= 400 ? answer.body.toString('utf8').slice(0, 60) : ''}`);
  const problem = judgeStatus(ALLOWED_5XX, fuzz.counters, route, answer) ?? checkOk(plan, route, answer);
  if (problem !== null) throw new Error(problem);
}

function assertFuzz(property: fc.IAsyncProperty<[Plan[], boolean]>): Promise<void> {
  return fc.assert(property, { seed: FUZZ_SEED, numRuns: RUNS }).catch((err: unknown) => {
    const cause = (err as Error).cause;
    throw new Error(`replay with FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${RUNS}\n${(err as Error).message}\ncause: ${cause instanceof Error ? cause.message : String(cause)}`);
  });
}

describe('fuzz: JSON HTTP routes', () => {
  beforeAll(async () => {
    fuzz = await startFuzzServer({ namespaces: true });
  });

  afterAll(async () => {
    closeHttpAgent();
    if (!fuzz) return;
    console.log(fuzz.counters.report(`fuzz http-json (seed ${FUZZ_SEED}, ${RUNS} batches per property)`));
    await fuzz.close();
  });

  // Found by this suite: the UTF-8 check of `x-namespace-bin` threw a TypeError (500 Internal Error).
  it('answers 400 for an x-namespace-bin that is base64 of bytes that are not UTF-8', async () => {
    for (const [path, body] of [
      ['/v2/pipeline', '{"baton":null,"requests":[]}'],
      ['/', '{"statements":["SELECT 1"]}'],
      ['/v1/execute', '{"stmt":{"sql":"SELECT 1"}}'],
    ] as const) {
      const headers = { authorization: `Bearer ${fuzz.tokens.admin}`, host: `localhost:${fuzz.port}`, 'x-namespace-bin': '/w' };
      const answer = await sendHttp(fuzz.port, { method: 'POST', path, headers, body: Buffer.from(body) });
      expect([path, answer.status, answer.body.toString('utf8')]).toStrictEqual([path, 400, '{"error":"Invalid namespace bytes: `invalid utf-8`"}']);
    }
    await fuzz.check();
  });

  it(
    'never crashes, hangs or answers an undocumented 5xx; the sentinel survives',
    async () => {
      const batch = fc.array(fc.oneof({ weight: 3, arbitrary: planArb('full') }, { weight: 2, arbitrary: planArb('limited') }), { minLength: 1, maxLength: 8 });
      await assertFuzz(
        fc.asyncProperty(batch, fc.boolean(), async (plans, parallel) => {
          if (parallel) {
            const failed = (await Promise.allSettled(plans.map(run))).find((r) => r.status === 'rejected');
            if (failed) throw failed.reason;
          } else {
            for (const plan of plans) await run(plan);
          }
          await fuzz.check();
        }),
      );
      expect(fuzz.counters.total('http ')).toBeGreaterThan(RUNS);
      await fuzz.check();
    },
    fuzzTimeout(RUNS),
  );
});
