/**
 * Fuzzing Hrana over WebSocket (`GET /` upgrade), JSON (hrana1, hrana2, hrana3) and protobuf
 * (hrana3-protobuf): per connection a subprotocol offer (also none, unknown ones, odd case),
 * namespace headers, then a sequence of frames — `hello` with the mode's credentials (or none, or
 * garbage), requests with mutated shapes, huge and reused stream/cursor ids (duplicate
 * `open_stream`, requests to closed streams, cursors on them), requests before `hello`, frames of
 * the wrong kind for the subprotocol, mutated encodings and random bytes.
 *
 * Oracle per connection: after the fuzzed frames a probe request must be answered, or the server
 * must have closed the connection with a close frame whose code is on WS_ALLOWED (a connection that
 * just drops — 1006 — or that neither answers nor closes within the bound fails); a refused upgrade
 * must be below 500 or on WS_ALLOWED; every server frame is of the subprotocol's kind (and JSON
 * parses). After each batch of connections the checks of test/helpers/fuzz-server.ts run.
 *
 * Replay: `FUZZ_SEED=<seed> npx vitest run test/fuzz/websocket.test.ts`; long run:
 * `FUZZ_RUNS=100000 npx vitest run test/fuzz`.
 */
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ANSWER_TIMEOUT_MS, FUZZ_SEED, fuzzRuns, fuzzTimeout, type FuzzServer, headerSafe, startFuzzServer } from '../helpers/fuzz-server.js';
import { hugeNumber, json, junk, loose, maybe, type Mode, mutateBytes, mutateText, orJunk, type Shapes, sqlArb, strict, weird } from './arbitraries.js';
import { encodeWsClientMsg } from './protobuf.js';

type Obj = Record<string, unknown>;

interface WsCase {
  mode: Mode;
  /** Offered subprotocols; null sends no header (hrana1). */
  protocols: string[] | null;
  headers: Record<string, string | undefined>;
  /** A message (encoded as the subprotocol wants, or as the other kind), or raw text/bytes. */
  frames: ({ msg: unknown; wrongKind: boolean } | { text: string } | { bytes: Uint8Array })[];
}

interface Outcome {
  kind: 'answered' | 'closed' | 'refused';
  code: number;
  reason: string;
}

/**
 * What the server may do to a connection other than answer it, and when. Codes 1003, 1007, 1008,
 * 1009 are the protocol-violation closes of spec §5.4-5.5 and always allowed; 1000 after a failed
 * hello. 1011 and 5xx upgrade refusals stand for server faults and are allowed only here.
 */
const WS_ALLOWED: { outcome: Outcome['kind']; code: number; inputClass: string; reason: string; matches(c: WsCase, o: Outcome): boolean }[] = [
  {
    outcome: 'refused',
    code: 503,
    inputClass: 'an upgrade whose namespace headers cannot be parsed',
    reason: 'spec §5.1: a namespace resolution failure on the upgrade is 503 "sqld was not able to process the HTTP upgrade"',
    matches: (c, o) => o.reason.includes('sqld was not able to process the HTTP upgrade') && namespaceOf(c) === null,
  },
  {
    outcome: 'closed',
    code: 1011,
    inputClass: 'a hello on a connection to a namespace that does not exist',
    reason: 'spec §5.4: a namespace that cannot be loaded during hello closes with 1011 "Internal server error"',
    matches: (c, o) => o.reason === 'Internal server error' && namespaceOf(c) !== 'default',
  },
  {
    outcome: 'closed',
    code: 1011,
    inputClass: 'a request of a principal that may not read the namespace',
    reason: 'spec §2: a principal without read access is told the namespace does not exist; §5.5: on a WebSocket that kills the connection',
    matches: (c, o) => /^Namespace `.*` doesn't exist$/.test(o.reason) && c.frames.some((f) => 'msg' in f && isHello(f.msg) && fuzz.tokens.noRead.includes(f.msg.jwt as string)),
  },
  {
    outcome: 'closed',
    code: 1011,
    inputClass: 'a request refused by authorization (a write with read-only rights, ATTACH)',
    reason: 'spec §3.7, §5.5: a permission error kills the connection (sqld drops it; we close with 1011 and the message)',
    matches: (_c, o) => o.reason.startsWith('Authorization forbidden'),
  },
];
const PROTOCOL_CLOSES = new Set([1000, 1003, 1007, 1008, 1009]);

const RUNS = fuzzRuns(60);
const PROBE_ID = 2_000_000_000;
const SUBPROTOCOLS: (string[] | null)[] = [['hrana3'], ['hrana2'], ['hrana1'], ['hrana3-protobuf'], ['hrana3-protobuf'], ['hrana2', 'hrana1'], null, ['bogus'], ['hrana3', 'hrana3-protobuf']];

let fuzz: FuzzServer;

/** The namespace the upgrade headers select (spec §2); null when they cannot be parsed. */
function namespaceOf(c: WsCase): string | null {
  const bin = c.headers['x-namespace-bin'];
  if (bin !== undefined) {
    if (!/^[A-Za-z0-9+/]*$/.test(bin) || bin.length % 4 === 1) return null;
    try {
      const name = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(bin, 'base64'));
      return name === '' ? null : name;
    } catch {
      return null;
    }
  }
  const ns = c.headers['x-namespace'];
  if (ns !== undefined) return ns === '' ? null : headerSafe(ns);
  const host = headerSafe(c.headers.host ?? '');
  return host.includes('.') ? host.slice(0, host.indexOf('.')) : 'default';
}

const isHello = (m: unknown): m is Obj => typeof m === 'object' && m !== null && (m as Obj).type === 'hello';

const isProtobuf = (c: WsCase): boolean => c.protocols?.some((p) => p.toLowerCase() === 'hrana3-protobuf') === true;

/** Requests after `sh` (strict: they pass the decoder; loose: some do not, and end the connection). */
function requestArb(mode: Mode, sh: Shapes, version: number): fc.Arbitrary<unknown> {
  const edge = sh === strict ? fc.constantFrom(2 ** 31 - 1, -(2 ** 31), 2, 3) : fc.oneof(fc.integer(), hugeNumber, junk);
  const id = fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 1 }) }, { weight: 1, arbitrary: edge });
  // strict requests stay within the connection's version (a newer request type is a protocol error)
  const v = (min: number, weight: number): number => (sh === strict && version < min ? 0 : weight);
  const text = sh === strict ? sqlArb(mode) : orJunk(sqlArb(mode));
  const sql = sh === strict ? { sql: text, replication_index: sh.replicationIndex } : { sql: maybe(text, 0.8), sql_id: maybe(id, 0.3), replication_index: sh.replicationIndex };
  return fc.oneof(
    // mostly a fresh id (a duplicate `open_stream` ends the connection)
    { weight: 4, arbitrary: fc.record({ type: fc.constant('open_stream'), stream_id: sh === strict ? fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 4, max: 40 }) }, { weight: 1, arbitrary: id }) : id }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('close_stream'), stream_id: id }) },
    { weight: v(3, 1), arbitrary: fc.record({ type: fc.constant('get_autocommit'), stream_id: id }) },
    { weight: 8, arbitrary: fc.record({ type: fc.constant('execute'), stream_id: id, stmt: sh.stmt(mode), replication_index: sh.replicationIndex }) },
    { weight: 3, arbitrary: fc.record({ type: fc.constant('batch'), stream_id: id, batch: sh.batch(mode) }) },
    { weight: v(2, 2), arbitrary: fc.record({ type: fc.constantFrom('sequence', 'describe'), stream_id: id, ...sql }) },
    { weight: v(2, 2), arbitrary: fc.record({ type: fc.constant('store_sql'), sql_id: id, sql: text }) },
    { weight: v(2, 1), arbitrary: fc.record({ type: fc.constant('close_sql'), sql_id: id }) },
    { weight: v(3, 2), arbitrary: fc.record({ type: fc.constant('open_cursor'), stream_id: id, cursor_id: id, batch: sh.batch(mode) }) },
    { weight: v(3, 1), arbitrary: fc.record({ type: fc.constant('close_cursor'), cursor_id: id }) },
    { weight: v(3, 2), arbitrary: fc.record({ type: fc.constant('fetch_cursor'), cursor_id: id, max_count: sh === strict ? fc.nat(20) : fc.oneof(fc.nat(20), hugeNumber) }) },
    ...(sh === strict ? [] : [{ weight: 1, arbitrary: fc.oneof(fc.record({ type: orJunk(weird) }), junk) }]),
  );
}

function messageArb(mode: Mode, sh: Shapes, version: number): fc.Arbitrary<unknown> {
  const jwt = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...fuzz.tokens[mode].jwtOk) }, { weight: 1, arbitrary: fc.constantFrom(...fuzz.tokens[mode].jwt) });
  const okId = fc.oneof(fc.nat(1000), fc.constantFrom(-1, 2 ** 31 - 1));
  const requestId = sh === strict ? okId : fc.oneof({ weight: 3, arbitrary: okId }, { weight: 1, arbitrary: fc.oneof(hugeNumber, junk) });
  return fc.oneof(
    { weight: 1, arbitrary: fc.record({ type: fc.constant('hello'), jwt: sh === strict ? jwt : fc.oneof(jwt, junk) }) },
    { weight: 25, arbitrary: fc.record({ type: fc.constant('request'), request_id: requestId, request: requestArb(mode, sh, version) }) },
  );
}

/** The Hrana version the server picks from an offer (spec §5.2), 0 when it picks none. */
function versionOf(protocols: string[] | null): number {
  if (protocols === null) return 1;
  const offered = protocols.map((p) => p.toLowerCase());
  if (offered.some((p) => p.startsWith('hrana3'))) return 3;
  return offered.includes('hrana2') ? 2 : offered.includes('hrana1') ? 1 : 0;
}

function caseArb(mode: Mode): fc.Arbitrary<WsCase> {
  return fc.constantFrom(...SUBPROTOCOLS).chain((protocols) => caseFor(mode, protocols));
}

function caseFor(mode: Mode, protocols: string[] | null): fc.Arbitrary<WsCase> {
  const version = versionOf(protocols);
  const b64 = (s: string): string => Buffer.from(s).toString('base64').replace(/=+$/, '');
  const creds = fuzz.tokens[mode];
  const hello = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...creds.jwtOk) }, { weight: 1, arbitrary: fc.constantFrom(...creds.jwt) }).map((jwt) => ({ msg: { type: 'hello', jwt }, wrongKind: false }));
  const message = messageArb(mode, strict, version);
  // Frames that may end the connection (wrong kind, undecodable), at most one, last: what comes before gets to run.
  const fatal = fc.oneof(
    message.map((msg) => ({ msg, wrongKind: true })),
    fc.oneof(messageArb(mode, loose, version), fc.record({ type: orJunk(weird), jwt: junk }), junk).map((msg) => ({ msg, wrongKind: false })),
    fc.oneof(mutateText(message.map(json)), weird).map((text) => ({ text })),
    fc.oneof(mutateBytes(message.map(encodeWsClientMsg)), fc.uint8Array({ maxLength: 64 })).map((bytes) => ({ bytes })),
  );
  return fc.record({
    mode: fc.constant(mode),
    protocols: fc.constant(protocols),
    headers: fc.record({
      host: fc.oneof({ weight: 20, arbitrary: fc.constant(`localhost:${fuzz.port}`) }, { weight: 1, arbitrary: fc.constantFrom('nope.example', `127.0.0.1:${fuzz.port}`) }),
      'x-namespace': maybe(fc.constantFrom('default', 'default', 'nope', ''), 0.06),
      'x-namespace-bin': maybe(fc.constantFrom(b64('default'), '!!!', '/w', ''), 0.04),
    }),
    frames: fc
      .tuple(
        fc.option(hello, { freq: 12, nil: undefined }),
        fc.constantFrom([0, 1], [0, 1], [0, 1], [0, 1], [0, 1, 2], [0], []).map((ids) => ids.map((id, i) => ({ msg: { type: 'request', request_id: 900 + i, request: { type: 'open_stream', stream_id: id } }, wrongKind: false }))),
        fc.array(message.map((msg) => ({ msg, wrongKind: false })), { maxLength: 12 }),
        fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fatal }),
      )
      .map(([h, opens, rest, end]) => [...(h === undefined ? [] : [h]), ...opens, ...rest, ...(end === undefined ? [] : [end])]),
  });
}

/** `request_id` of a protobuf ServerMsg response (response_ok = 3, response_error = 4), else null. */
function protobufRequestId(buf: Buffer): number | null {
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; pos < buf.length; shift += 7) {
      const b = buf[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    return v;
  };
  const key = varint();
  if ((key !== 0x1a && key !== 0x22) || pos >= buf.length) return null;
  const end = varint() + pos;
  while (pos < end) {
    const k = varint();
    if (k === 0x08) return varint() | 0;
    if ((k & 7) === 2) pos += varint();
    else if ((k & 7) === 0) varint();
    else return null;
  }
  return null;
}

function encodeFrame(c: WsCase, f: WsCase['frames'][number]): { data: Buffer | string; binary: boolean } {
  if ('text' in f) return { data: f.text, binary: false };
  if ('bytes' in f) return { data: Buffer.from(f.bytes), binary: true };
  const binary = isProtobuf(c) !== f.wrongKind;
  return binary ? { data: encodeWsClientMsg(f.msg), binary } : { data: json(f.msg), binary };
}

/** Runs one connection to its end: the probe answered, the server closed it, or the upgrade refused. */
function runCase(c: WsCase): Promise<Outcome> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.headers)) if (v !== undefined) headers[k] = headerSafe(v);
  const ws = new WebSocket(`ws://127.0.0.1:${fuzz.port}/`, c.protocols ?? [], { headers, handshakeTimeout: ANSWER_TIMEOUT_MS });
  const protobuf = isProtobuf(c);
  return new Promise<Outcome>((resolve, reject) => {
    let answered = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer to the probe and no close within ${ANSWER_TIMEOUT_MS} ms (a hang)`));
    }, ANSWER_TIMEOUT_MS);
    const done = (o: Outcome): void => {
      clearTimeout(timer);
      resolve(o);
    };
    const fail = (err: Error): void => {
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => done({ kind: 'refused', code: res.statusCode ?? 0, reason: body }));
    });
    ws.on('error', (err) => fail(new Error(`WebSocket error: ${err.message}`)));
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary !== protobuf) return fail(new Error(`the server sent a ${isBinary ? 'binary' : 'text'} frame on ${c.protocols?.join(',') ?? 'hrana1'}`));
      let id: unknown = null;
      if (protobuf) id = protobufRequestId(data);
      else {
        try {
          id = (JSON.parse(data.toString('utf8')) as Obj).request_id;
        } catch {
          return fail(new Error(`the server sent a text frame that is not JSON: ${data.toString('utf8').slice(0, 200)}`));
        }
      }
      if (id === PROBE_ID && !answered) {
        answered = true;
        ws.close(1000);
      }
    });
    ws.on('close', (code, reason) => done({ kind: answered ? 'answered' : 'closed', code, reason: reason.toString('utf8') }));
    ws.on('open', () => {
      fuzz.counters.add(`ws connections ${c.protocols?.join(',') ?? '(no subprotocol)'}`);
      for (const f of c.frames) {
        const { data, binary } = encodeFrame(c, f);
        fuzz.counters.add(`ws frames ${protobuf ? 'protobuf' : 'json'}`);
        ws.send(data, { binary });
      }
      const probe = { type: 'request', request_id: PROBE_ID, request: { type: 'open_stream', stream_id: 1_000_000 + PROBE_ID } };
      ws.send(protobuf ? encodeWsClientMsg(probe) : json(probe), { binary: protobuf });
    });
  });
}

function judge(c: WsCase, o: Outcome): string | null {
  fuzz.counters.add(`ws outcome ${o.kind} ${o.code}`);
  fuzz.counters.detail(`${o.kind} ${o.code} ${o.reason.slice(0, 90)}`);
  if (o.kind === 'refused' && o.code < 500) return null;
  // After the probe was answered our close may cross a close of the server's (a later request failed).
  if (o.kind !== 'refused' && PROTOCOL_CLOSES.has(o.code)) return null;
  const allowed = WS_ALLOWED.find((a) => (a.outcome === o.kind || (a.outcome === 'closed' && o.kind === 'answered')) && a.code === o.code && a.matches(c, o));
  if (allowed) {
    fuzz.counters.add(`allowed ${o.kind} ${o.code}: ${allowed.inputClass}`);
    return null;
  }
  return `connection ${o.kind} with ${o.code} (${o.reason.slice(0, 200)}), which WS_ALLOWED does not cover`;
}

async function run(c: WsCase): Promise<void> {
  const outcome = await runCase(c).catch((err: unknown) => {
    throw new Error(`${c.protocols?.join(',') ?? '(no subprotocol)'}: ${(err as Error).message}`);
  });
  const problem = judge(c, outcome);
  if (problem !== null) throw new Error(problem);
}

describe('fuzz: Hrana over WebSocket', () => {
  beforeAll(async () => {
    fuzz = await startFuzzServer({ namespaces: true });
  });

  afterAll(async () => {
    if (!fuzz) return;
    console.log(fuzz.counters.report(`fuzz websocket (seed ${FUZZ_SEED}, ${RUNS} batches per property)`));
    await fuzz.close();
  });

  // Found by this suite: a principal that may not read the namespace got 1011 "Internal server error"
  // on its first open_stream, the reason of a crash; it is told the namespace does not exist.
  it('closes with the reason a principal may not use the namespace, and with sqld\'s for a missing one', async () => {
    const [noRead] = fuzz.tokens.noRead;
    const opening = [{ msg: { type: 'hello', jwt: noRead }, wrongKind: false }, { msg: { type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }, wrongKind: false }];
    const host = `localhost:${fuzz.port}`;
    for (const protocols of [['hrana3'], ['hrana3-protobuf']]) {
      const denied = await runCase({ mode: 'limited', protocols, headers: { host }, frames: opening });
      expect(denied).toStrictEqual({ kind: 'closed', code: 1011, reason: "Namespace `default` doesn't exist" });
      const missing = await runCase({ mode: 'full', protocols, headers: { host, 'x-namespace': 'nope' }, frames: [{ msg: { type: 'hello', jwt: fuzz.tokens.admin }, wrongKind: false }] });
      expect(missing).toStrictEqual({ kind: 'closed', code: 1011, reason: 'Internal server error' });
    }
    await fuzz.check();
  });

  it(
    'never crashes, hangs, drops a connection or closes it with an undocumented code; the sentinel survives',
    async () => {
      const cases = fc.array(fc.oneof({ weight: 3, arbitrary: caseArb('full') }, { weight: 2, arbitrary: caseArb('limited') }), { minLength: 1, maxLength: 3 });
      await fc
        .assert(
          fc.asyncProperty(cases, async (batch) => {
            const failed = (await Promise.allSettled(batch.map(run))).find((r) => r.status === 'rejected');
            if (failed) throw failed.reason;
            await fuzz.check();
          }),
          { seed: FUZZ_SEED, numRuns: RUNS },
        )
        .catch((err: unknown) => {
          const cause = (err as Error).cause;
          throw new Error(`replay with FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${RUNS}\n${(err as Error).message}\ncause: ${cause instanceof Error ? cause.message : String(cause)}`);
        });
      expect(fuzz.counters.total('ws connections')).toBeGreaterThan(RUNS / 2);
      await fuzz.check();
    },
    fuzzTimeout(RUNS),
  );
});
