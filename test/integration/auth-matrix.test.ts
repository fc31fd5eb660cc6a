/**
 * The authentication matrix (issue: hardening): every kind of bad credential against every channel
 * that can write — legacy HTTP, Hrana v1/v2/v3 over HTTP (JSON and protobuf, pipelines and
 * cursors), Hrana over WebSocket (JSON and protobuf), gRPC-web `proxy.Proxy/Execute` — plus
 * `/dump`, which reads. Bad credentials never write or read; a read-only token reads and never
 * writes; a good token does both (so each row can fail); a WebSocket session loses its rights when
 * its token expires mid-session. The table at the bottom is the specification.
 */
import { createHmac, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createClient } from '@libsql/client';
import * as hrana from '@libsql/hrana-client';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeDataFrame, GrpcWebDecoder } from '../../src/rpc/grpc-web/framing.js';
import { codecs } from '../../src/rpc/proto.js';
import { overrideWsLimits } from '../../src/server/ws/ws-limits.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

type Outcome = 'ok' | 'unauthorized' | 'forbidden' | `other: ${string}`;

const MAIN = generateKeyPairSync('ed25519');
const FOREIGN = generateKeyPairSync('ed25519');
const PEM = MAIN.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const now = (): number => Math.floor(Date.now() / 1000);
const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function sign(claims: Record<string, unknown>, key: KeyObject = MAIN.privateKey): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key);
}

/** Credentials by name; null = no authorization header at all. */
async function credentials(): Promise<Record<string, string | null>> {
  const hsHead = b64url({ alg: 'HS256', typ: 'JWT' });
  const hsBody = b64url({});
  return {
    none: null,
    wrong: 'not-a-jwt',
    expired: await sign({ exp: now() - 3600 }),
    foreignKey: await sign({}, FOREIGN.privateKey),
    algNone: `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({})}.`,
    hs256WithPublicKey: `${hsHead}.${hsBody}.${createHmac('sha256', PEM).update(`${hsHead}.${hsBody}`).digest('base64url')}`,
    readOnly: await sign({ a: 'ro' }),
    full: await sign({}),
  };
}

let srv: TestServer;
let tokens: Record<string, string | null>;
let seq = 0;

function headers(token: string | null, extra: Record<string, string> = {}): Record<string, string> {
  return token === null ? extra : { ...extra, authorization: `Bearer ${token}` };
}

function byStatus(status: number, text: string): Outcome {
  if (status === 200) return 'ok';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  return `other: ${status} ${text.slice(0, 120)}`;
}

/** Hrana results carry per-statement errors in a 200; a forbidden statement aborts the request (403). */
function hranaOutcome(status: number, text: string): Outcome {
  const first = byStatus(status, text);
  if (first !== 'ok') return first;
  return /"type":"error"/.test(text) ? `other: ${text.slice(0, 120)}` : 'ok';
}

function byError(err: unknown): Outcome {
  const e = err as { code?: string; message?: string; status?: number };
  const text = `${e.code ?? ''} ${e.message ?? String(err)}`;
  if (e.status === 401 || /AUTH_|Unauthorized|401/.test(text)) return 'unauthorized';
  if (e.status === 403 || /FORBIDDEN|forbidden|403/.test(text)) return 'forbidden';
  return `other: ${text.slice(0, 160)}`;
}

async function attempt(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return byError(err);
  }
}

async function post(path: string, token: string | null, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers: headers(token, { 'content-type': 'application/json' }), body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

const insert = (): string => `INSERT INTO t (v) VALUES ('${++seq}')`;
const READ = 'SELECT count(*) FROM t';

interface Channel {
  name: string;
  run(token: string | null, sql: string): Promise<Outcome>;
}

const wsOffered = (protocol: string): WebSocket => new WebSocket(srv.wsUrl, [protocol]);

async function grpcWebExecute(token: string | null, sql: string): Promise<Outcome> {
  const req = codecs.ProgramReq.encode({ clientId: randomUUID(), pgm: { steps: [{ query: { stmt: sql, params: { positional: { values: [] } }, skipRows: false } }] } });
  const res = await fetch(`${srv.url}/proxy.Proxy/Execute`, {
    method: 'POST',
    headers: headers(token, { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' }),
    body: encodeDataFrame(req),
  });
  if (res.status !== 200) return byStatus(res.status, await res.text());
  const frames = new GrpcWebDecoder().push(Buffer.from(await res.arrayBuffer()));
  const trailer = frames.find((f) => f.kind === 'trailer');
  const status = (trailer?.kind === 'trailer' ? trailer.trailers.get('grpc-status') : undefined) ?? res.headers.get('grpc-status') ?? '';
  const message = (trailer?.kind === 'trailer' ? trailer.trailers.get('grpc-message') : undefined) ?? res.headers.get('grpc-message') ?? '';
  if (status === '0') {
    const data = frames.find((f) => f.kind === 'data');
    const results = data?.kind === 'data' ? codecs.ExecuteResults.decode(data.payload) : null;
    const failed = results?.results.some((r) => 'error' in r);
    return failed ? `other: ${JSON.stringify(results)}` : 'ok';
  }
  // sqld answers a missing header with INTERNAL "Error parsing auth header: …" (spec §3.3), a bad one with UNAUTHENTICATED.
  if (status === '16' || (status === '13' && /^Error parsing auth header/.test(decodeURIComponent(message)))) return 'unauthorized';
  if (status === '7') return 'forbidden';
  return `other: grpc-status ${status} ${decodeURIComponent(message)}`;
}

const CHANNELS: Channel[] = [
  { name: 'legacy POST /', run: async (t, sql) => ((r) => byStatus(r.status, r.text))(await post('/', t, { statements: [sql] })) },
  { name: '/v1/execute', run: async (t, sql) => ((r) => byStatus(r.status, r.text))(await post('/v1/execute', t, { stmt: { sql } })) },
  { name: '/v1/batch', run: async (t, sql) => ((r) => byStatus(r.status, r.text))(await post('/v1/batch', t, { batch: { steps: [{ stmt: { sql } }] } })) },
  ...[2, 3].map((v) => ({
    name: `/v${v}/pipeline`,
    run: async (t: string | null, sql: string) => ((r) => hranaOutcome(r.status, r.text))(await post(`/v${v}/pipeline`, t, { baton: null, requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] })),
  })),
  {
    name: '/v3/cursor',
    run: async (t, sql) => {
      const r = await post('/v3/cursor', t, { baton: null, batch: { steps: [{ stmt: { sql } }] } });
      return r.status === 200 && /step_error/.test(r.text) ? `other: ${r.text.slice(0, 160)}` : byStatus(r.status, r.text);
    },
  },
  {
    name: '/v3-protobuf/pipeline (hrana-client)',
    run: (t, sql) =>
      attempt(async () => {
        const c = hrana.openHttp(srv.url, t ?? undefined, undefined, undefined, 3);
        try {
          await c.openStream().query(sql);
        } finally {
          c.close();
        }
      }),
  },
  {
    name: '/v3-protobuf/cursor (hrana-client batch)',
    run: (t, sql) =>
      attempt(async () => {
        const c = hrana.openHttp(srv.url, t ?? undefined, undefined, undefined, 3);
        try {
          const batch = c.openStream().batch(false);
          const step = batch.step().run(sql);
          await batch.execute();
          await step;
        } finally {
          c.close();
        }
      }),
  },
  {
    name: 'WebSocket hrana3 (JSON, @libsql/client)',
    run: (t, sql) =>
      attempt(async () => {
        const c = createClient({ url: srv.wsUrl, ...(t === null ? {} : { authToken: t }) });
        try {
          await c.execute(sql);
        } finally {
          c.close();
        }
      }),
  },
  {
    name: 'WebSocket hrana3-protobuf (hrana-client)',
    run: (t, sql) =>
      attempt(async () => {
        const c = new hrana.WsClient(wsOffered('hrana3-protobuf'), t ?? undefined);
        try {
          await c.openStream().query(sql);
        } finally {
          c.close();
        }
      }),
  },
  { name: 'gRPC-web proxy.Proxy/Execute', run: grpcWebExecute },
];

beforeAll(async () => {
  srv = await startTestServer({}, { SQLD_AUTH_JWT_KEY: PEM });
  tokens = await credentials();
  const setup = createClient({ url: srv.url, authToken: tokens.full! });
  await setup.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  setup.close();
});

afterAll(() => srv.close());

async function rows(): Promise<number> {
  const c = createClient({ url: srv.url, authToken: tokens.full! });
  try {
    return Number((await c.execute(READ)).rows[0]?.[0]);
  } finally {
    c.close();
  }
}

const BAD = ['none', 'wrong', 'expired', 'foreignKey', 'algNone', 'hs256WithPublicKey'] as const;

describe('auth matrix', () => {
  for (const channel of CHANNELS) {
    it(`${channel.name}: bad credentials neither write nor read; read-only reads only; a good token writes`, async () => {
      const table: Record<string, { write: Outcome; read: Outcome }> = {};
      for (const name of [...BAD, 'readOnly', 'full']) {
        const before = await rows();
        const write = await channel.run(tokens[name]!, insert());
        const wrote = (await rows()) - before;
        expect(wrote, `${name}: ${write}, rows written`).toBe(write === 'ok' ? 1 : 0);
        table[name] = { write, read: await channel.run(tokens[name]!, READ) };
      }
      const expected: Record<string, { write: Outcome; read: Outcome }> = { readOnly: { write: 'forbidden', read: 'ok' }, full: { write: 'ok', read: 'ok' } };
      for (const n of BAD) expected[n] = { write: 'unauthorized', read: 'unauthorized' };
      expect(table).toEqual(expected);
    });
  }

  it('/dump (reads): bad credentials are refused, a read-only token may dump', async () => {
    const status = async (t: string | null): Promise<number> => (await fetch(`${srv.url}/dump`, { headers: headers(t) })).status;
    for (const name of BAD) expect(await status(tokens[name]!), name).toBe(401);
    expect(await status(tokens.readOnly!)).toBe(200);
  });

  it('a WebSocket session whose token expires mid-session loses its rights (JSON and protobuf)', async () => {
    const token = await sign({ exp: now() + 120 });
    for (const protocol of ['hrana3', 'hrana3-protobuf']) {
      const c = new hrana.WsClient(wsOffered(protocol), token);
      try {
        const stream = c.openStream();
        await stream.query(insert());
        const before = await rows();
        // Ten minutes later (the session's clock): the token has expired, leeway included.
        const restore = overrideWsLimits({ now: () => Date.now() + 600_000 });
        try {
          expect(await attempt(() => stream.query(insert())), protocol).toBe('unauthorized');
          expect(await rows()).toBe(before);
        } finally {
          restore();
        }
      } finally {
        c.close();
      }
    }
  });
});
