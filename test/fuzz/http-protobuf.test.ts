/**
 * Fuzzing the binary routes of the user port: `/v3-protobuf/pipeline`, `/v3-protobuf/cursor`, and
 * gRPC-web (`/wal_log.ReplicationLog/*`, `/proxy.Proxy/*`, all four content types). Bodies are
 * messages encoded by our own writer (test/fuzz/protobuf.ts) from the same mutated shapes as the JSON
 * suite, then bit-flipped, truncated, extended or overwritten; random bytes; and protobuf nested
 * near the decoders' 128-level bound.
 *
 * Oracle: as in http-json.test.ts (no crash, reset, hang; 5xx only on ALLOWED_5XX; `SELECT 1` and
 * the sentinel after each batch), plus: a gRPC-web answer with HTTP 200 carries a trailer, and its
 * `grpc-status` is not INTERNAL/UNKNOWN unless GRPC_ALLOWED names the case.
 *
 * Replay: `FUZZ_SEED=<seed> npx vitest run test/fuzz/http-protobuf.test.ts`; long run:
 * `FUZZ_RUNS=100000 npx vitest run test/fuzz`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Allowed5xx, closeHttpAgent, FUZZ_SEED, fuzzRuns, fuzzTimeout, type FuzzServer, type HttpAnswer, judgeStatus, sendHttp, startFuzzServer } from '../helpers/fuzz-server.js';
import { type BatonRef, batonArb, loose, maybe, type Mode, mutateBytes, sqlArb, strict, weird } from './arbitraries.js';
import { encodeCursorReq, encodeDescribeReq, encodeDisconnect, encodeHelloReq, encodeLogOffset, encodePipelineReq, encodeProgramReq, grpcWebFrame, grpcWebTrailer } from './protobuf.js';

const ALLOWED_5XX: Allowed5xx[] = [
  {
    route: /^POST \/v3-protobuf\//,
    status: 500,
    inputClass: 'bytes that are not a protobuf message of the schema',
    reason: 'spec §4.10: sqld maps `Unable to decode protobuf: …` to 500 (we answer 400, which is also fine)',
    matches: (body) => body.includes('Unable to decode protobuf'),
  },
];

/** gRPC statuses that stand for a server fault, allowed only for these documented cases. */
const GRPC_ALLOWED: { status: number; inputClass: string; reason: string; message: RegExp }[] = [
  {
    status: 13,
    inputClass: 'a call without credentials',
    reason: 'spec §3.3: no authorization / x-authorization metadata under an auth strategy is INTERNAL "Error parsing auth header: …"',
    message: /^Error parsing auth header: /,
  },
];

const RUNS = fuzzRuns(100);

const GRPC_METHODS = [
  '/wal_log.ReplicationLog/Hello',
  '/wal_log.ReplicationLog/LogEntries',
  '/wal_log.ReplicationLog/BatchLogEntries',
  '/wal_log.ReplicationLog/Snapshot',
  '/proxy.Proxy/Execute',
  '/proxy.Proxy/Describe',
  '/proxy.Proxy/Disconnect',
  '/proxy.Proxy/StreamExec',
] as const;
type GrpcMethod = (typeof GRPC_METHODS)[number];

interface Plan {
  mode: Mode;
  path: string;
  headers: Record<string, string | undefined>;
  /** Bytes, or a Hrana body whose baton is filled in at send time. */
  body: Buffer | { value: Record<string, unknown>; baton: BatonRef; encode: 'pipeline' | 'cursor' };
}

let fuzz: FuzzServer;
const batons: Record<Mode, string[]> = { full: [], limited: [] };

const b64 = (s: string): string => Buffer.from(s).toString('base64').replace(/=+$/, '');

/** Protobuf nested `depth` levels deep: field 2 (requests) of field 2 … around the 128-level bound. */
const deepProtobuf = fc.integer({ min: 100, max: 200 }).map((depth) => {
  let body = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) body = Buffer.concat([Buffer.from([0x12]), varintLength(body.length), body]);
  return body;
});

function varintLength(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/** `ok`: credentials that authenticate (so the body gets decoded and run); else any of the mode's. */
const credential = (mode: Mode, ok: boolean): fc.Arbitrary<string | undefined> => fc.constantFrom(...(ok ? fuzz.tokens[mode].httpOk : fuzz.tokens[mode].http));

/** A Hrana protobuf request; `ok`: well-formed up to its SQL, else anything (mutated, random, deep). */
function hranaPlan(mode: Mode, ok: boolean): fc.Arbitrary<Plan> {
  const headers = fc.record({
    authorization: credential(mode, ok),
    'content-type': maybe(fc.constantFrom('application/x-protobuf', 'application/octet-stream', 'application/json'), 0.5),
    host: fc.constant(`localhost:${fuzz.port}`),
    'x-namespace': maybe(ok ? fc.constant('default') : fc.constantFrom('default', 'nope', ''), 0.08),
  });
  const sh = ok ? strict : loose;
  const baton = ok ? fc.oneof(fc.constant({ literal: null }), fc.nat().map((n) => ({ pool: n * 4 + 1 }))) : batonArb;
  const structured = fc.oneof(
    fc.tuple(baton, fc.record({ requests: fc.array(sh.streamRequest(mode), { maxLength: 6 }) })).map(([b, value]) => ({ value, baton: b, encode: 'pipeline' as const })),
    fc.tuple(baton, fc.record({ batch: sh.batch(mode) })).map(([b, value]) => ({ value, baton: b, encode: 'cursor' as const })),
  );
  const encoded = structured.map((b) => (b.encode === 'pipeline' ? encodePipelineReq({ ...b.value, baton: null }) : encodeCursorReq({ ...b.value, baton: null })));
  const body = ok
    ? structured
    : fc.oneof(
        { weight: 3, arbitrary: structured },
        { weight: 3, arbitrary: mutateBytes(encoded) },
        { weight: 1, arbitrary: fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), deepProtobuf) },
      );
  return fc.record({ mode: fc.constant(mode), path: fc.constantFrom('/v3-protobuf/pipeline', '/v3-protobuf/cursor'), headers, body });
}

/** A gRPC-web request message for `method`, valid in shape; SQL after the mode's grammar. */
function grpcMessage(method: GrpcMethod, mode: Mode, ok: boolean): fc.Arbitrary<Buffer> {
  const clientId = ok ? fc.uuid() : fc.oneof({ weight: 6, arbitrary: fc.uuid() }, { weight: 1, arbitrary: weird });
  const sh = ok ? strict : loose;
  switch (method) {
    case '/wal_log.ReplicationLog/Hello':
      return fc.record({ handshake_version: maybe(fc.oneof(fc.constantFrom(1, 2, 0), fc.nat()), 0.7) }).map(encodeHelloReq);
    case '/proxy.Proxy/Execute':
      return fc.record({ client_id: clientId, batch: sh.batch(mode) }).map(encodeProgramReq);
    case '/proxy.Proxy/Describe':
      return fc.record({ client_id: clientId, sql: sqlArb(mode) }).map(encodeDescribeReq);
    case '/proxy.Proxy/Disconnect':
    case '/proxy.Proxy/StreamExec':
      return fc.record({ client_id: clientId }).map(encodeDisconnect);
    default:
      return fc.record({ next_offset: fc.oneof(fc.nat(10), sh.replicationIndex), wal_flavor: maybe(fc.constantFrom(0, 1, 7), 0.3) }).map(encodeLogOffset);
  }
}

/** A gRPC-web call; `ok`: one well-formed frame, a gRPC-web content type, credentials that authenticate. */
function grpcPlan(mode: Mode, ok: boolean): fc.Arbitrary<Plan> {
  return fc.constantFrom(...GRPC_METHODS).chain((method) => {
    const message = ok
      ? grpcMessage(method, mode, true)
      : fc.oneof({ weight: 3, arbitrary: grpcMessage(method, mode, false) }, { weight: 3, arbitrary: mutateBytes(grpcMessage(method, mode, false)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) });
    const framing = ok ? fc.constant('one') : fc.oneof({ weight: 6, arbitrary: fc.constant('one') }, { weight: 1, arbitrary: fc.constantFrom('none', 'two', 'trailer', 'short') });
    const body = fc.tuple(message, framing).map(([m, how]) => {
      if (how === 'none') return m;
      if (how === 'two') return Buffer.concat([grpcWebFrame(m), grpcWebFrame(m)]);
      if (how === 'trailer') return grpcWebFrame(Buffer.from('grpc-status:0\r\n'), 0x80);
      if (how === 'short') return grpcWebFrame(m).subarray(0, Math.max(1, m.length));
      return grpcWebFrame(m);
    });
    const grpcTypes = fc.constantFrom('application/grpc-web', 'application/grpc-web+proto', 'application/grpc-web-text', 'application/grpc-web-text+proto');
    const contentType = ok ? grpcTypes : fc.oneof({ weight: 8, arbitrary: grpcTypes }, { weight: 1, arbitrary: fc.constantFrom('application/grpc', 'application/json', 'application/grpc-web+json') });
    const namespace = ok ? fc.constantFrom(b64('default'), Buffer.from('default').toString('base64')) : maybe(fc.constantFrom(b64('default'), b64('default'), b64('nope'), '!!', ''), 0.9);
    return fc
      .record({
        mode: fc.constant(mode),
        path: fc.constant(method),
        headers: fc.record({
          authorization: credential(mode, ok),
          'x-authorization': maybe(credential(mode, ok), 0.1),
          'content-type': contentType,
          'x-namespace-bin': namespace,
          // A real token never: LogEntries with one (or a legacy Hello's peer) streams until the server stops.
          'x-session-token': method.endsWith('/LogEntries') ? fc.constant('not-a-session') : maybe(fc.oneof(fc.uuid(), weird), 0.5),
          'x-proxy-authorization': maybe(fc.constantFrom('"FullAccess"', '{"Legacy":{"namespace":null,"perm":"rw"}}', 'x'), 0.1),
          'x-libsql-client-version': maybe(weird, 0.1),
        }),
        body,
      })
      .map((p) => (p.headers['content-type'].includes('-text') ? { ...p, body: Buffer.from(p.body.toString('base64')) } : p));
  });
}

function bodyBytes(plan: Plan): Buffer {
  const b = plan.body;
  if (Buffer.isBuffer(b)) return b;
  const pool = batons[plan.mode];
  const baton = 'pool' in b.baton ? (pool.length === 0 ? null : b.baton.pool % 4 === 0 ? pool[b.baton.pool % pool.length] : pool.pop()) : b.baton.literal;
  const value = { ...b.value, baton };
  return b.encode === 'pipeline' ? encodePipelineReq(value) : encodeCursorReq(value);
}

/** The baton of a 200 answer (field 1 of PipelineRespBody, or of the length-delimited CursorRespBody). */
function keepBaton(plan: Plan, answer: HttpAnswer): void {
  if (answer.status !== 200 || !plan.path.startsWith('/v3-protobuf/')) return;
  let body = answer.body;
  if (plan.path.endsWith('/cursor')) {
    const len = body[0] ?? 0;
    if (len >= 0x80) return; // a head this long has no room left for our batons' size: skip it
    body = body.subarray(1, 1 + len);
  }
  if (body[0] !== 0x0a) return;
  const len = body[1] ?? 0;
  if (len >= 0x80) return;
  const pool = batons[plan.mode];
  pool.push(body.subarray(2, 2 + len).toString('utf8'));
  if (pool.length > 40) pool.shift();
}

function checkGrpc(route: string, answer: HttpAnswer): string | null {
  if (answer.status !== 200 || !route.startsWith('POST /wal_log.') && !route.startsWith('POST /proxy.')) return null;
  const text = String(answer.headers['content-type']).includes('-text');
  const trailer = grpcWebTrailer(text ? Buffer.from(answer.body.toString('latin1'), 'base64') : answer.body);
  if (trailer === null) return `${route}: a 200 answer without a gRPC-web trailer`;
  fuzz.counters.add(`grpc-status ${trailer.status}`);
  fuzz.counters.detail(`${route} grpc-status ${trailer.status} ${trailer.message.slice(0, 70)}`);
  if (trailer.status !== 13 && trailer.status !== 2) return null;
  const allowed = GRPC_ALLOWED.find((a) => a.status === trailer.status && a.message.test(trailer.message));
  if (allowed) return null;
  return `${route}: grpc-status ${trailer.status} (${trailer.message}), which GRPC_ALLOWED does not cover`;
}

async function run(plan: Plan): Promise<void> {
  const route = `POST ${plan.path}`;
  fuzz.counters.add(`http ${route}`);
  let answer: HttpAnswer;
  try {
    answer = await sendHttp(fuzz.port, { method: 'POST', path: plan.path, headers: plan.headers, body: bodyBytes(plan) });
  } catch (err) {
    throw new Error(`${route}: ${(err as Error).message}`);
  }
  fuzz.counters.add(`status ${answer.status}`);
  if (plan.path.startsWith('/v3-protobuf/')) fuzz.counters.detail(`${route} ${answer.status} ${answer.status >= 400 ? answer.body.toString('utf8').slice(0, 60) : ''}`);
  const problem = judgeStatus(ALLOWED_5XX, fuzz.counters, route, answer) ?? checkGrpc(route, answer);
  if (problem !== null) throw new Error(problem);
  keepBaton(plan, answer);
}

describe('fuzz: protobuf and gRPC-web routes', () => {
  beforeAll(async () => {
    fuzz = await startFuzzServer({ namespaces: true });
  });

  afterAll(async () => {
    closeHttpAgent();
    if (!fuzz) return;
    console.log(fuzz.counters.report(`fuzz http-protobuf (seed ${FUZZ_SEED}, ${RUNS} batches per property)`));
    await fuzz.close();
  });

  it(
    'never crashes, hangs or answers an undocumented 5xx or gRPC INTERNAL; the sentinel survives',
    async () => {
      const plan = fc.oneof(
        ...(['full', 'limited'] as const).flatMap((mode) =>
          [true, false].flatMap((ok) => [
            { weight: mode === 'full' ? 3 : 2, arbitrary: hranaPlan(mode, ok) },
            { weight: 2, arbitrary: grpcPlan(mode, ok) },
          ]),
        ),
      );
      await fc
        .assert(
          fc.asyncProperty(fc.array(plan, { minLength: 1, maxLength: 8 }), fc.boolean(), async (plans, parallel) => {
            if (parallel) {
              const failed = (await Promise.allSettled(plans.map(run))).find((r) => r.status === 'rejected');
              if (failed) throw failed.reason;
            } else {
              for (const p of plans) await run(p);
            }
            await fuzz.check();
          }),
          { seed: FUZZ_SEED, numRuns: RUNS },
        )
        .catch((err: unknown) => {
          const cause = (err as Error).cause;
          throw new Error(`replay with FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${RUNS}\n${(err as Error).message}\ncause: ${cause instanceof Error ? cause.message : String(cause)}`);
        });
      expect(fuzz.counters.total('http ')).toBeGreaterThan(RUNS);
      await fuzz.check();
    },
    fuzzTimeout(RUNS),
  );
});
