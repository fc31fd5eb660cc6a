/**
 * Hrana over WebSocket against hostile and careless clients: a client that pipelines without
 * reading, a session whose JWT expires, sockets that never say hello or send huge messages first,
 * and one connection opening every stream it can. Each test checks that other clients keep working.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createClient } from '@libsql/client';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { overrideWsLimits } from '../../src/server/ws/ws-limits.js';
import { isObj, pipeline } from '../helpers/pipeline.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

type Msg = Record<string, unknown>;

/** Rejects after `ms` unless `p` settled first. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A raw Hrana (JSON) WebSocket: queued incoming messages and the close event as a promise. */
class RawWs {
  private readonly inbox: Msg[] = [];
  private readonly waiters: ((m: Msg) => void)[] = [];
  private nextId = 1;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as Msg;
      const waiter = this.waiters.shift();
      if (waiter) waiter(msg);
      else this.inbox.push(msg);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
  }

  static open(url: string, protocols = ['hrana3']): Promise<RawWs> {
    const ws = new WebSocket(url, protocols);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new RawWs(ws)));
      ws.once('error', reject);
    });
  }

  static async hello(url: string, jwt: string | null = null, protocols = ['hrana3']): Promise<RawWs> {
    const raw = await RawWs.open(url, protocols);
    raw.send({ type: 'hello', jwt });
    expect(await raw.next()).toEqual({ type: 'hello_ok' });
    return raw;
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  next(ms = 5000): Promise<Msg> {
    return within(this.take(), ms, 'next message');
  }

  private take(): Promise<Msg> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  sendAll(requests: Msg[]): number[] {
    return requests.map((request) => {
      const id = this.nextId++;
      this.send({ type: 'request', request_id: id, request });
      return id;
    });
  }

  async request(request: Msg): Promise<Msg> {
    const [id] = this.sendAll([request]);
    const msg = await this.next();
    expect(msg.request_id).toBe(id);
    return msg;
  }

  async ok(request: Msg): Promise<Msg> {
    const msg = await this.request(request);
    expect(msg.type, JSON.stringify(msg)).toBe('response_ok');
    return msg.response as Msg;
  }

  /** The next `n` messages, in arrival order, within `ms` in all. */
  collect(n: number, ms = 5000): Promise<Msg[]> {
    const all = async (): Promise<Msg[]> => {
      const out: Msg[] = [];
      while (out.length < n) out.push(await this.take());
      return out;
    };
    return within(all(), ms, `${n} messages`);
  }
}

/**
 * Resolves once `probe` gave the same answer `stableProbes` times in a row, 50 ms apart: the server
 * stopped making progress on a client that does not read (there is no event for "nothing happens
 * any more"). Counted in probes, not time, so a blocked event loop cannot fake a quiet server.
 */
async function quiescent(probe: () => string, stableProbes = 10, deadlineMs = 15_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = probe();
  let stable = 0;
  while (stable < stableProbes) {
    if (Date.now() > deadline) throw new Error(`server still busy after ${deadlineMs} ms (${last})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = probe();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

/** The first result of a `/v2/pipeline` call, or a description of what went wrong. */
function firstResult(res: { status: number; body: unknown; raw: string }): Msg {
  if (res.status !== 200 || !isObj(res.body) || !Array.isArray(res.body.results)) return { status: res.status, raw: res.raw };
  return res.body.results[0] as Msg;
}

const BIG_SELECT = 'SELECT hex(zeroblob(51200)) AS h'; // a 100 KB text value

describe('WebSocket backpressure', () => {
  let srv: TestServer;

  beforeAll(async () => {
    srv = await startTestServer();
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('stops reading a client that pipelines 40 000 requests without reading, and answers them all later', async () => {
    const ctx = srv.server.context;
    const rssBefore = process.memoryUsage().rss;
    const greedy = await RawWs.hello(srv.wsUrl);
    await greedy.ok({ type: 'open_stream', stream_id: 1 });
    greedy.ws.pause(); // stop reading: the server's answers pile up in the kernel, then at the server
    const count = 40_000;
    const ids = greedy.sendAll(Array.from({ length: count }, () => ({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT hex(zeroblob(500)) AS h' } })));
    await quiescent(() => `${ctx.responses.inUse}/${greedy.ws.bufferedAmount}`);
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    const budgetHeld = ctx.responses.inUse;

    const http = firstResult(await pipeline(srv.url, [{ type: 'execute', stmt: { sql: BIG_SELECT } }]));
    expect(http.type, JSON.stringify(http).slice(0, 300)).toBe('ok');
    const other = createClient({ url: srv.wsUrl });
    try {
      const rs = await within(other.execute(BIG_SELECT), 10_000, 'other WebSocket client');
      expect(rs.rows[0]!.h).toHaveLength(102_400);
    } finally {
      other.close();
    }
    expect(budgetHeld).toBeLessThan(8 * 1024 * 1024);
    expect(rssGrowth).toBeLessThan(200 * 1024 * 1024);

    greedy.ws.resume();
    const answers = await greedy.collect(count, 10_000);
    expect(answers.map((m) => m.request_id)).toEqual(ids);
    expect(answers.every((m) => m.type === 'response_ok')).toBe(true);
    greedy.ws.close();
    await within(greedy.closed, 5000, 'greedy close');
    await quiescent(() => String(ctx.responses.inUse), 2);
    expect(ctx.responses.inUse).toBe(0);
  });
});

describe('WebSocket session and JWT expiry', () => {
  let srv: TestServer;
  let privateKey: KeyObject;
  let restore: (() => void) | null = null;

  const token = (exp?: number): Promise<string> => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' });
    if (exp !== undefined) jwt.setExpirationTime(exp);
    return jwt.sign(privateKey);
  };

  const count = async (table: string): Promise<unknown> => {
    const res = await fetch(`${srv.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await token()}` },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: `SELECT count(*) FROM ${table}` } }, { type: 'close' }] }),
    });
    const body = (await res.json()) as { results: { response: { result: { rows: { value: unknown }[][] } } }[] };
    return body.results[0]!.response.result.rows[0]![0]!.value;
  };

  beforeAll(async () => {
    const pair = generateKeyPairSync('ed25519');
    privateKey = pair.privateKey;
    const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
    srv = await startTestServer({}, { SQLD_AUTH_JWT_KEY: spki.subarray(spki.length - 32).toString('base64url') });
  });

  afterEach(() => {
    restore?.();
    restore = null;
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('refuses requests once the token expired (same leeway as HTTP) and accepts a new hello', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const raw = await RawWs.hello(srv.wsUrl, await token(exp));
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'CREATE TABLE exp_t (x)' } });

    // Within the 60 s leeway the session still works.
    restore = overrideWsLimits({ now: () => (exp + 59) * 1000 });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'INSERT INTO exp_t VALUES (1)' } });
    restore();

    // 6 s past exp + leeway.
    restore = overrideWsLimits({ now: () => (exp + 66) * 1000 });
    const refused = await raw.request({ type: 'execute', stream_id: 1, stmt: { sql: 'INSERT INTO exp_t VALUES (2)' } });
    expect(refused).toMatchObject({ type: 'response_error', error: { code: 'AUTH_JWT_EXPIRED', message: 'Authentication failed: The JWT has expired' } });
    expect(await count('exp_t')).toBe('1');

    raw.send({ type: 'hello', jwt: await token(exp + 3600) });
    expect(await raw.next()).toEqual({ type: 'hello_ok' });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'INSERT INTO exp_t VALUES (3)' } });
    expect(await count('exp_t')).toBe('2');
    raw.ws.close();
  });

  it('still lets an expired session close what it holds', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const raw = await RawWs.hello(srv.wsUrl, await token(exp));
    await raw.ok({ type: 'open_stream', stream_id: 7 });
    restore = overrideWsLimits({ now: () => (exp + 120) * 1000 });
    expect(await raw.request({ type: 'open_stream', stream_id: 8 })).toMatchObject({ type: 'response_error', error: { code: 'AUTH_JWT_EXPIRED' } });
    await raw.ok({ type: 'close_stream', stream_id: 7 });
    raw.ws.close();
    await within(raw.closed, 5000, 'close');
  });
});

describe('WebSocket hello timeout and pre-hello size', () => {
  let srv: TestServer;
  let restore: (() => void) | null = null;

  beforeAll(async () => {
    srv = await startTestServer();
  });

  afterEach(() => {
    restore?.();
    restore = null;
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('closes a socket that never sends hello with 1008', async () => {
    restore = overrideWsLimits({ helloTimeoutMs: 300 });
    const started = Date.now();
    const silent = await RawWs.open(srv.wsUrl);
    const closed = await within(silent.closed, 3000, 'hello timeout');
    expect(closed).toEqual({ code: 1008, reason: 'Timed out waiting for the hello message' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const ok = await RawWs.hello(srv.wsUrl);
    await ok.ok({ type: 'open_stream', stream_id: 1 });
    ok.ws.close();
  });

  it('closes with 1009 when 1 MB arrives before hello, and keeps serving', async () => {
    restore = overrideWsLimits({ dropAfterMs: 200 });
    const hostile = await RawWs.open(srv.wsUrl);
    hostile.ws.on('error', () => {});
    hostile.send({ type: 'hello', jwt: 'x'.repeat(1024 * 1024) });
    expect(await within(hostile.closed, 3000, 'pre-hello close')).toEqual({ code: 1009, reason: 'Too much data before the hello message' });

    const ok = await RawWs.hello(srv.wsUrl);
    await ok.ok({ type: 'open_stream', stream_id: 1 });
    const res = await ok.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1' } });
    expect(res.type).toBe('execute');
    ok.ws.close();
  });

  it('accepts a 1 MB request pipelined right after hello', async () => {
    const raw = await RawWs.open(srv.wsUrl);
    raw.send({ type: 'hello', jwt: null });
    const big = 'y'.repeat(1024 * 1024);
    const [, id] = raw.sendAll([
      { type: 'open_stream', stream_id: 1 },
      { type: 'execute', stream_id: 1, stmt: { sql: 'SELECT length(?) AS n', args: [{ type: 'text', value: big }] } },
    ]);
    const [hello, open, exec] = await raw.collect(3);
    expect(hello).toEqual({ type: 'hello_ok' });
    expect(open).toMatchObject({ type: 'response_ok' });
    expect(exec).toMatchObject({ type: 'response_ok', request_id: id, response: { result: { rows: [[{ type: 'integer', value: String(big.length) }]] } } });
    raw.ws.close();
  });
});

describe('WebSocket streams per connection', () => {
  let srv: TestServer;

  beforeAll(async () => {
    srv = await startTestServer();
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('refuses open_stream beyond 32 streams on one connection; other clients keep working', async () => {
    const hog = await RawWs.hello(srv.wsUrl);
    hog.sendAll(Array.from({ length: 128 }, (_, i) => ({ type: 'open_stream', stream_id: i + 1 })));
    const answers = await hog.collect(128);
    const refused = answers.filter((m) => m.type === 'response_error');
    expect(answers.filter((m) => m.type === 'response_ok')).toHaveLength(32);
    expect(refused).toHaveLength(96);
    expect(refused[0]).toMatchObject({ error: { code: 'TOO_MANY_STREAMS' } });
    expect(srv.server.context.slots.inUse).toBe(32);

    // A refused stream behaves like one that failed to open; closing it is fine.
    expect(await hog.request({ type: 'execute', stream_id: 128, stmt: { sql: 'SELECT 1' } })).toMatchObject({ type: 'response_error', error: { code: 'STREAM_NOT_OPEN' } });
    await hog.ok({ type: 'close_stream', stream_id: 128 });

    const http = firstResult(await pipeline(srv.url, [{ type: 'execute', stmt: { sql: 'SELECT 1' } }]));
    expect(http.type, JSON.stringify(http)).toBe('ok');
    const other = createClient({ url: srv.wsUrl });
    try {
      // The default client runs 20 requests at once, each on its own stream: all must fit.
      const results = await within(Promise.all(Array.from({ length: 40 }, (_, i) => other.execute({ sql: 'SELECT ? AS i', args: [i] }))), 10_000, 'other client');
      expect(results.map((r) => Number(r.rows[0]!.i))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    } finally {
      other.close();
    }

    // Closing one of its streams makes room for a new one.
    await hog.ok({ type: 'close_stream', stream_id: 1 });
    await hog.ok({ type: 'open_stream', stream_id: 500 });
    hog.ws.close();
    await within(hog.closed, 5000, 'close');
  });
});
