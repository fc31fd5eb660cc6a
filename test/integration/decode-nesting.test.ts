import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * Deeply nested client messages (batch conditions, JSON arrays) are decode errors on every
 * transport: 400 over HTTP, the malformed-message close over WebSocket; never a stack overflow
 * (500, close 1011). Conditions may nest 100 levels; JSON and protobuf messages 128.
 */

type Kind = 'not' | 'and';

const DEEP = 10_000;
const DEEPER = 100_000;
const JSON_TOO_DEEP = /^Cannot deserialize client message from JSON: recursion limit exceeded at line 1 column \d+$/;
const COND_TOO_DEEP = 'Cannot deserialize client message: batch condition nested deeper than 100 levels';
const PROTOBUF_TOO_DEEP = 'Cannot decode client message from Protobuf: recursion limit reached';

/**
 * A condition `levels` deep that holds once step 0 succeeded: `levels - 1` wrappers around a leaf
 * (`error` under an odd number of `not`s).
 */
function jsonCond(kind: Kind, levels: number): string {
  const wrappers = levels - 1;
  const leaf = kind === 'not' && wrappers % 2 === 1 ? '{"type":"error","step":0}' : '{"type":"ok","step":0}';
  const open = kind === 'not' ? '{"type":"not","cond":' : '{"type":"and","conds":[';
  const close = kind === 'not' ? '}' : ']}';
  return open.repeat(wrappers) + leaf + close.repeat(wrappers);
}

const insertSql = (label: string): string => `INSERT INTO t VALUES ('${label}')`;

/** `SELECT 1`, then an INSERT of `label` under `cond` (JSON text). */
const jsonBatch = (cond: string, label: string): string => `{"steps":[{"stmt":{"sql":"SELECT 1"}},{"condition":${cond},"stmt":{"sql":"${insertSql(label)}"}}]}`;

const jsonPipeline = (cond: string, label: string): string => `{"baton":null,"requests":[{"type":"batch","batch":${jsonBatch(cond, label)}},{"type":"close"}]}`;

const deepArray = (n: number): string => '['.repeat(n) + ']'.repeat(n);

// ---- protobuf, by hand (proto/hrana.proto, hrana_http.proto, hrana_ws.proto) -----------------

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

const key = (field: number, wireType: number): Buffer => varint(field * 8 + wireType);
const uint = (field: number, value: number): Buffer => Buffer.concat([key(field, 0), varint(value)]);
const nested = (field: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([key(field, 2), varint(body.length), body]);
};
const text = (field: number, s: string): Buffer => nested(field, Buffer.from(s, 'utf8'));

/**
 * A BatchCond `levels` deep (its fields, without a tag), as jsonCond. Lengths are worked out from
 * the inside so the prefixes are written once, outermost first: linear even at 100 000 levels.
 */
function protoCond(kind: Kind, levels: number): Buffer {
  const wrappers = levels - 1;
  // step_ok = 1, step_error = 2, not = 3, and = 4 (CondList: conds = 1)
  const leaf = kind === 'not' && wrappers % 2 === 1 ? uint(2, 0) : uint(1, 0);
  const prefixes: Buffer[] = [];
  let size = leaf.length;
  const wrap = (field: number): void => {
    const prefix = Buffer.concat([key(field, 2), varint(size)]);
    prefixes.push(prefix);
    size += prefix.length;
  };
  for (let i = 0; i < wrappers; i++) {
    if (kind === 'not') wrap(3);
    else {
      wrap(1);
      wrap(4);
    }
  }
  return Buffer.concat([...prefixes.reverse(), leaf]);
}

/** Batch { steps = 1: BatchStep { condition = 1, stmt = 2: Stmt { sql = 1 } } } */
const protoBatch = (cond: Buffer, label: string): Buffer =>
  Buffer.concat([nested(1, nested(2, text(1, 'SELECT 1'))), nested(1, nested(1, cond), nested(2, text(1, insertSql(label))))]);

/** PipelineReqBody { requests = 2: StreamRequest { batch = 3: BatchStreamReq { batch = 1 } }, { close = 1 } } */
const protoPipeline = (cond: Buffer, label: string): Buffer => Buffer.concat([nested(2, nested(3, nested(1, protoBatch(cond, label)))), nested(2, nested(1))]);

// ---- helpers ----------------------------------------------------------------------------------

let srv: TestServer;

async function post(path: string, body: string | Buffer): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${srv.url}${path}`, { method: 'POST', body, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function inserted(label: string): Promise<number> {
  const r = await post('/v2/pipeline', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: `SELECT count(*) FROM t WHERE x = '${label}'` } }, { type: 'close' }] }));
  expect(r.status, r.text).toBe(200);
  const body = JSON.parse(r.text) as { results: { response: { result: { rows: { value: string }[][] } } }[] };
  return Number(body.results[0]?.response.result.rows[0]?.[0]?.value);
}

function expect400(r: Awaited<ReturnType<typeof post>>, message: string | RegExp): void {
  expect(r.status, r.text).toBe(400);
  expect(r.type).toMatch(/^text\/plain/);
  if (typeof message === 'string') expect(r.text).toBe(message);
  else expect(r.text).toMatch(message);
}

let labels = 0;
const label = (): string => `row${++labels}`;

beforeAll(async () => {
  srv = await startTestServer();
  const r = await post('/v2/pipeline', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'CREATE TABLE t (x TEXT)' } }, { type: 'close' }] }));
  expect(r.status, r.text).toBe(200);
});
afterAll(async () => {
  await srv?.close();
});

describe.each(['/v2/pipeline', '/v3/pipeline'])('%s', (path) => {
  it.each([
    ['and', 50],
    ['not', 50],
    ['not', 100],
  ] as const)('runs a step under `%s` conditions %i levels deep', async (kind, levels) => {
    const l = label();
    const r = await post(path, jsonPipeline(jsonCond(kind, levels), l));
    expect(r.status, r.text).toBe(200);
    expect(await inserted(l)).toBe(1);
  });

  it('refuses conditions 101 levels deep', async () => {
    expect400(await post(path, jsonPipeline(jsonCond('not', 101), label())), COND_TOO_DEEP);
    expect(await inserted('none')).toBe(0);
  });

  it(`answers a decode error to conditions ${DEEP} levels deep and a ${DEEPER}-deep array`, async () => {
    expect400(await post(path, jsonPipeline(jsonCond('and', DEEP), label())), JSON_TOO_DEEP);
    expect400(await post(path, jsonPipeline(jsonCond('not', DEEP), label())), JSON_TOO_DEEP);
    expect400(await post(path, deepArray(DEEPER)), 'Cannot deserialize client message from JSON: recursion limit exceeded at line 1 column 129');
    expect(await inserted('none')).toBe(0);
  });
});

it('counts only brackets outside strings (escaped quotes and trailing backslashes included)', async () => {
  const brackets = '['.repeat(200) + '{'.repeat(200);
  const stmt = { sql: `SELECT ? || '${brackets}"'`, args: [{ type: 'text', value: '\\' }] };
  const r = await post('/v2/pipeline', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt }, { type: 'close' }] }));
  expect(r.status, r.text).toBe(200);
  expect(r.text).toContain(JSON.stringify({ type: 'text', value: `\\${brackets}"` }));
});

it.each([
  ['/v3/cursor', 'Cannot deserialize client message from JSON: '],
  ['/v1/batch', 'Cannot deserialize client message from JSON: '],
  ['/v1/execute', 'Cannot deserialize client message from JSON: '],
  ['/', 'Failed to parse the request body as JSON: '],
])(`%s answers a decode error to a ${DEEPER}-deep array`, async (path, prefix) => {
  expect400(await post(path, deepArray(DEEPER)), `${prefix}recursion limit exceeded at line 1 column 129`);
  expect(await inserted('none')).toBe(0);
});

it(`/v3/cursor answers a decode error to conditions ${DEEP} levels deep`, async () => {
  expect400(await post('/v3/cursor', `{"baton":null,"batch":${jsonBatch(jsonCond('and', DEEP), label())}}`), JSON_TOO_DEEP);
});

describe('/v3-protobuf/pipeline', () => {
  it.each([
    ['and', 50],
    ['not', 50],
    ['not', 100],
  ] as const)('runs a step under `%s` conditions %i levels deep', async (kind, levels) => {
    const l = label();
    const r = await post('/v3-protobuf/pipeline', protoPipeline(protoCond(kind, levels), l));
    expect(r.status, r.text).toBe(200);
    expect(await inserted(l)).toBe(1);
  });

  it('refuses conditions 101 levels deep', async () => {
    expect400(await post('/v3-protobuf/pipeline', protoPipeline(protoCond('not', 101), label())), COND_TOO_DEEP);
  });

  it(`answers a decode error to conditions ${DEEP} and ${DEEPER} levels deep`, async () => {
    expect400(await post('/v3-protobuf/pipeline', protoPipeline(protoCond('and', DEEP), label())), PROTOBUF_TOO_DEEP);
    expect400(await post('/v3-protobuf/pipeline', protoPipeline(protoCond('not', DEEPER), label())), PROTOBUF_TOO_DEEP);
    expect(await inserted('none')).toBe(0);
  });
});

// ---- WebSocket --------------------------------------------------------------------------------

/** A Hrana WebSocket: incoming frames in order and the close event. */
class Ws {
  private readonly inbox: Buffer[] = [];
  private readonly waiters: ((m: Buffer) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(data);
      else this.inbox.push(data);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
  }

  static open(protocol: string): Promise<Ws> {
    const ws = new WebSocket(srv.wsUrl, [protocol]);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Ws(ws)));
      ws.once('error', reject);
    });
  }

  send(data: string | Buffer): void {
    this.ws.send(data);
  }

  next(): Promise<Buffer> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.ws.close();
  }
}

interface WsDialect {
  protocol: string;
  hello: string | Buffer;
  openStream: string | Buffer;
  /** A batch request (request id 2, stream 1) with `levels` deep conditions. */
  batch(kind: Kind, levels: number, label: string): string | Buffer;
  /** Whether an answer is a `hello_ok` / `response_ok`. */
  isOk(frame: Buffer): boolean;
  decodeError: string | RegExp;
}

const jsonWs: WsDialect = {
  protocol: 'hrana3',
  hello: JSON.stringify({ type: 'hello', jwt: null }),
  openStream: JSON.stringify({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }),
  batch: (kind, levels, l) => `{"type":"request","request_id":2,"request":{"type":"batch","stream_id":1,"batch":${jsonBatch(jsonCond(kind, levels), l)}}}`,
  isOk: (frame) => ['hello_ok', 'response_ok'].includes((JSON.parse(frame.toString('utf8')) as { type: string }).type),
  decodeError: /^Cannot deserialize client message from JSON: recursion limit exceeded at line 1 column \d+$/,
};

// ClientMsg { hello = 1, request = 2: RequestMsg { request_id = 1, open_stream = 2, batch = 5: BatchReq { stream_id = 1, batch = 2 } } }
const protobufWs: WsDialect = {
  protocol: 'hrana3-protobuf',
  hello: nested(1),
  openStream: nested(2, uint(1, 1), nested(2, uint(1, 1))),
  batch: (kind, levels, l) => nested(2, uint(1, 2), nested(5, uint(1, 1), nested(2, protoBatch(protoCond(kind, levels), l)))),
  // ServerMsg { hello_ok = 1, hello_error = 2, response_ok = 3, response_error = 4 }
  isOk: (frame) => frame[0] === 0x0a || frame[0] === 0x1a,
  decodeError: 'Cannot deserialize client message from Protobuf: recursion limit reached',
};

describe.each([jsonWs, protobufWs])('WebSocket $protocol', (dialect) => {
  async function session(): Promise<Ws> {
    const ws = await Ws.open(dialect.protocol);
    ws.send(dialect.hello);
    expect(dialect.isOk(await ws.next())).toBe(true);
    ws.send(dialect.openStream);
    expect(dialect.isOk(await ws.next())).toBe(true);
    return ws;
  }

  it.each([
    ['and', 50],
    ['not', 50],
    ['not', 100],
  ] as const)('runs a step under `%s` conditions %i levels deep', async (kind, levels) => {
    const ws = await session();
    const l = label();
    ws.send(dialect.batch(kind, levels, l));
    expect(dialect.isOk(await ws.next())).toBe(true);
    ws.close();
    await ws.closed;
    expect(await inserted(l)).toBe(1);
  });

  it('closes with 1008 on conditions 101 levels deep, as on other invalid conditions', async () => {
    const ws = await session();
    ws.send(dialect.batch('not', 101, label()));
    expect(await ws.closed).toEqual({ code: 1008, reason: COND_TOO_DEEP });
  });

  it(`closes with 1007 (malformed message) on conditions ${DEEP} levels deep`, async () => {
    for (const kind of ['and', 'not'] as const) {
      const ws = await session();
      ws.send(dialect.batch(kind, DEEP, label()));
      const { code, reason } = await ws.closed;
      expect(code).toBe(1007);
      if (typeof dialect.decodeError === 'string') expect(reason).toBe(dialect.decodeError);
      else expect(reason).toMatch(dialect.decodeError);
    }
    (await session()).close();
    expect(await inserted('none')).toBe(0);
  });
});

it(`WebSocket hrana3 closes with 1007 on a ${DEEPER}-deep array`, async () => {
  const ws = await Ws.open('hrana3');
  ws.send(deepArray(DEEPER));
  expect(await ws.closed).toEqual({ code: 1007, reason: 'Cannot deserialize client message from JSON: recursion limit exceeded at line 1 column 129' });
  const again = await Ws.open('hrana3');
  again.send(jsonWs.hello);
  expect(jsonWs.isOk(await again.next())).toBe(true);
  again.close();
});
