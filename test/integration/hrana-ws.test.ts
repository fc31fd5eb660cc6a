import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createClient, LibsqlError, type Client } from '@libsql/client';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

type Msg = Record<string, unknown>;

/** A raw Hrana WebSocket: queued incoming messages and the close event as a promise. */
class RawWs {
  private readonly inbox: Msg[] = [];
  private readonly waiters: ((m: Msg) => void)[] = [];
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

  static open(url: string, protocols?: string[]): Promise<RawWs> {
    const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new RawWs(ws)));
      ws.once('error', reject);
    });
  }

  /** Opens a socket and completes `hello`. */
  static async hello(url: string, protocols: string[] | null = ['hrana3'], jwt: string | null = null): Promise<RawWs> {
    const raw = await RawWs.open(url, protocols ?? undefined);
    raw.send({ type: 'hello', jwt });
    expect(await raw.next()).toEqual({ type: 'hello_ok' });
    return raw;
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  next(): Promise<Msg> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private nextId = 1;

  /** Sends a request and waits for its answer (other answers must not be pending). */
  async request(request: Msg): Promise<Msg> {
    const id = this.nextId++;
    this.send({ type: 'request', request_id: id, request });
    const msg = await this.next();
    expect(msg.request_id).toBe(id);
    return msg;
  }

  /** Sends requests without waiting for answers; returns their ids. */
  sendAll(requests: Msg[]): number[] {
    return requests.map((request) => {
      const id = this.nextId++;
      this.send({ type: 'request', request_id: id, request });
      return id;
    });
  }

  /** The next `n` messages, in arrival order. */
  async collect(n: number): Promise<Msg[]> {
    const out: Msg[] = [];
    while (out.length < n) out.push(await this.next());
    return out;
  }

  async ok(request: Msg): Promise<Msg> {
    const msg = await this.request(request);
    expect(msg.type, JSON.stringify(msg)).toBe('response_ok');
    return msg.response as Msg;
  }
}

/** Result of a refused upgrade: status, headers and body text. */
function refusedUpgrade(url: string, protocols?: string[]): Promise<{ status: number; server: string | undefined; body: string }> {
  const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
  return new Promise((resolve, reject) => {
    ws.on('error', () => {});
    ws.once('open', () => reject(new Error('upgrade unexpectedly succeeded')));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, server: res.headers['server']?.toString(), body }));
    });
  });
}

const int = (v: bigint | number): Msg => ({ type: 'integer', value: String(v) });

describe('Hrana over WebSocket with @libsql/client', () => {
  let srv: TestServer;
  let client: Client;

  beforeAll(async () => {
    srv = await startTestServer();
    client = createClient({ url: srv.wsUrl, intMode: 'bigint' });
    await client.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)');
  });

  afterAll(async () => {
    client?.close();
    await srv?.close();
  });

  it('executes with positional and named arguments', async () => {
    await client.execute({ sql: 'INSERT INTO t (name, n) VALUES (?, ?)', args: ['pos', 1n] });
    await client.execute({ sql: 'INSERT INTO t (name, n) VALUES (:name, $n)', args: { name: 'named', n: 2n } });
    const rs = await client.execute({ sql: 'SELECT name, n FROM t WHERE name IN (?, ?) ORDER BY n', args: ['pos', 'named'] });
    expect(rs.columns).toEqual(['name', 'n']);
    expect(rs.rows.map((r) => [r.name, r.n])).toEqual([['pos', 1n], ['named', 2n]]);
  });

  it('round-trips every value type', async () => {
    const blob = new Uint8Array([0, 1, 2, 254, 255]);
    const rs = await client.execute({
      sql: 'SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f',
      args: [null, 9223372036854775807n, -9223372036854775808n, 3.5, 'héllo ✓', blob],
    });
    const row = rs.rows[0]!;
    expect(row.a).toBeNull();
    expect(row.b).toBe(9223372036854775807n);
    expect(row.c).toBe(-9223372036854775808n);
    expect(row.d).toBe(3.5);
    expect(row.e).toBe('héllo ✓');
    expect(new Uint8Array(row.f as ArrayBuffer)).toEqual(blob);
  });

  it('rolls back a whole batch when one statement fails', async () => {
    await client.execute('CREATE TABLE b (x INTEGER PRIMARY KEY)');
    const failing = client.batch(['INSERT INTO b VALUES (1)', 'INSERT INTO b VALUES (2)', 'INSERT INTO b VALUES (1)'], 'write');
    await expect(failing).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT' });
    expect((await client.execute('SELECT count(*) AS c FROM b')).rows[0]!.c).toBe(0n);
    const ok = await client.batch(['INSERT INTO b VALUES (1)', 'SELECT x FROM b'], 'write');
    expect(ok[1]!.rows[0]!.x).toBe(1n);
  });

  it('commits and rolls back interactive transactions', async () => {
    await client.execute('CREATE TABLE tx (v TEXT)');
    const commit = await client.transaction('write');
    await commit.execute({ sql: 'INSERT INTO tx VALUES (?)', args: ['kept'] });
    expect((await commit.execute('SELECT count(*) AS c FROM tx')).rows[0]!.c).toBe(1n);
    await commit.commit();
    const rollback = await client.transaction('write');
    await rollback.execute({ sql: 'INSERT INTO tx VALUES (?)', args: ['dropped'] });
    await rollback.rollback();
    const rs = await client.execute('SELECT v FROM tx');
    expect(rs.rows.map((r) => r.v)).toEqual(['kept']);
  });

  it('serializes two concurrent write transactions from two clients', async () => {
    await client.execute('CREATE TABLE w (who TEXT)');
    const other = createClient({ url: srv.wsUrl, intMode: 'bigint' });
    try {
      const tx1 = await client.transaction('write');
      await tx1.execute("INSERT INTO w VALUES ('one')");
      const second = (async () => {
        const tx2 = await other.transaction('write');
        await tx2.execute("INSERT INTO w VALUES ('two')");
        await tx2.commit();
      })();
      await tx1.commit();
      await second;
      const rs = await client.execute('SELECT who FROM w ORDER BY rowid');
      expect(rs.rows.map((r) => r.who)).toEqual(['one', 'two']);
    } finally {
      other.close();
    }
  });

  it('runs executeMultiple', async () => {
    await client.executeMultiple('CREATE TABLE m (x); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2);');
    expect((await client.execute('SELECT sum(x) AS s FROM m')).rows[0]!.s).toBe(3n);
  });

  it('reports errors with their codes', async () => {
    await client.execute({ sql: 'INSERT INTO t (name, n) VALUES (?, ?)', args: ['dup', 1n] });
    const dup = client.execute({ sql: 'INSERT INTO t (name, n) VALUES (?, ?)', args: ['dup', 2n] });
    await expect(dup).rejects.toBeInstanceOf(LibsqlError);
    await expect(dup).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT' });
    await expect(client.execute('SELEC 1')).rejects.toMatchObject({ code: 'SQL_PARSE_ERROR' });
    // the connection survives statement errors
    expect((await client.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1n);
  });

  it('returns a 20 000-row result', async () => {
    const rs = await client.execute(
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, 'row ' || x AS label FROM c",
    );
    expect(rs.rows).toHaveLength(20000);
    expect(rs.rows[19999]!.x).toBe(20000n);
    expect(rs.rows[19999]!.label).toBe('row 20000');
  });
});

describe('Hrana over WebSocket, raw protocol', () => {
  let srv: TestServer;

  beforeAll(async () => {
    srv = await startTestServer();
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('negotiates subprotocols by the server preference', async () => {
    const v2 = await RawWs.open(srv.wsUrl, ['hrana2', 'hrana1']);
    expect(v2.ws.protocol).toBe('hrana2');
    v2.ws.close();
    const v3 = await RawWs.open(srv.wsUrl, ['hrana1', 'hrana2', 'hrana3']);
    expect(v3.ws.protocol).toBe('hrana3');
    v3.ws.close();
    // protobuf comes first in sqld's order (its own tests are in hrana-protobuf.test.ts)
    const json = await RawWs.open(srv.wsUrl, ['hrana3', 'hrana2', 'hrana1']);
    expect(json.ws.protocol).toBe('hrana3');
    json.ws.close();
    const pb = await RawWs.open(srv.wsUrl, ['hrana3', 'hrana3-protobuf']);
    expect(pb.ws.protocol).toBe('hrana3-protobuf');
    pb.ws.close();
  });

  it('sends the sqld server header on the 101 response', async () => {
    const ws = new WebSocket(srv.wsUrl, ['hrana3']);
    const server = await new Promise<string | undefined>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(res.headers['server']?.toString()));
      ws.once('error', reject);
    });
    expect(server).toBe('sqld-hrana-upgrade');
    ws.close();
  });

  it('speaks hrana1 without a subprotocol header', async () => {
    const raw = await RawWs.hello(srv.wsUrl, null);
    expect(raw.ws.protocol).toBe('');
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    const res = await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1 AS one', want_rows: true } });
    expect((res.result as Msg).rows).toEqual([[int(1)]]);
    // a repeated hello needs hrana2
    raw.send({ type: 'hello', jwt: null });
    expect((await raw.closed).code).toBe(1008);
    const v1 = await RawWs.hello(srv.wsUrl, null);
    v1.send({ type: 'request', request_id: 1, request: { type: 'store_sql', sql_id: 1, sql: 'SELECT 1' } });
    expect((await v1.closed).code).toBe(1008);
  });

  it('refuses unknown subprotocols and other paths', async () => {
    const bad = await refusedUpgrade(srv.wsUrl, ['hrana9']);
    expect(bad.status).toBe(400);
    expect(bad.server).toBe('sqld-hrana-upgrade');
    expect(bad.body).toBe('Only these WebSocket subprotocols are supported: hrana3-protobuf hrana3 hrana2 hrana1');
    expect((await refusedUpgrade(`${srv.wsUrl}/v2/pipeline`, ['hrana3'])).status).toBe(404);
  });

  it('closes with 1008 on a request before hello', async () => {
    const raw = await RawWs.open(srv.wsUrl, ['hrana3']);
    raw.send({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } });
    expect(await raw.closed).toEqual({ code: 1008, reason: 'Received a request before hello message' });
  });

  it('closes with 1007 on bad JSON and 1003 on binary frames', async () => {
    const json = await RawWs.hello(srv.wsUrl);
    json.ws.send('{"type": "request", ');
    expect((await json.closed).code).toBe(1007);
    const binary = await RawWs.hello(srv.wsUrl);
    binary.ws.send(Buffer.from([1, 2, 3]));
    expect((await binary.closed).code).toBe(1003);
  });

  it('closes with 1008 on an unknown stream id', async () => {
    const raw = await RawWs.hello(srv.wsUrl);
    raw.send({ type: 'request', request_id: 1, request: { type: 'execute', stream_id: 42, stmt: { sql: 'SELECT 1' } } });
    expect(await raw.closed).toEqual({ code: 1008, reason: 'Stream 42 not found' });
  });

  it('answers statement errors with response_error and keeps going', async () => {
    const raw = await RawWs.hello(srv.wsUrl, ['hrana2']);
    await raw.ok({ type: 'open_stream', stream_id: 7 });
    const err = await raw.request({ type: 'execute', stream_id: 7, stmt: { sql: 'SELECT * FROM nowhere' } });
    expect(err.type).toBe('response_error');
    expect((err.error as Msg).code).toBe('SQLITE_UNKNOWN');
    const seq = await raw.ok({ type: 'sequence', stream_id: 7, sql: 'CREATE TABLE s (x); INSERT INTO s VALUES (5);' });
    expect(seq).toEqual({ type: 'sequence' });
    const desc = await raw.ok({ type: 'describe', stream_id: 7, sql: 'SELECT x FROM s WHERE x = ?' });
    expect(desc.result).toMatchObject({ params: [{ name: null }], cols: [{ name: 'x' }], is_readonly: true });
    await raw.ok({ type: 'close_stream', stream_id: 7 });
    // cursors are a hrana3 feature
    raw.send({ type: 'request', request_id: 99, request: { type: 'get_autocommit', stream_id: 7 } });
    expect((await raw.closed).code).toBe(1008);
  });

  it('opens, fetches and closes cursors', async () => {
    const raw = await RawWs.hello(srv.wsUrl);
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    const batch = {
      steps: [
        { stmt: { sql: 'SELECT 1 AS a UNION ALL SELECT 2 UNION ALL SELECT 3' } },
        { stmt: { sql: 'SELECT * FROM missing_table' } },
        { condition: { type: 'ok', step: 0 }, stmt: { sql: "SELECT 'x' AS b" } },
      ],
    };
    await raw.ok({ type: 'open_cursor', stream_id: 1, cursor_id: 10, batch });
    const entries: Msg[] = [];
    for (;;) {
      const res = await raw.ok({ type: 'fetch_cursor', cursor_id: 10, max_count: 2 });
      const got = res.entries as Msg[];
      expect(got.length).toBeLessThanOrEqual(2);
      entries.push(...got);
      if (res.done === true) break;
    }
    // no trailing sqld replication_index entry over WebSocket: hrana-client-ts rejects unknown entries
    expect(entries.map((e) => e.type)).toEqual(['step_begin', 'row', 'row', 'row', 'step_end', 'step_error', 'step_begin', 'row', 'step_end']);
    expect(entries[1]).toEqual({ type: 'row', row: [int(1)] });
    expect((entries[5]!.error as Msg).code).toBe('SQLITE_UNKNOWN');
    await raw.ok({ type: 'close_cursor', cursor_id: 10 });
    const auto = await raw.ok({ type: 'get_autocommit', stream_id: 1 });
    expect(auto).toEqual({ type: 'get_autocommit', is_autocommit: true });
    // a second cursor on the same stream while one is open is a protocol error
    await raw.ok({ type: 'open_cursor', stream_id: 1, cursor_id: 11, batch: { steps: [{ stmt: { sql: 'SELECT 1' } }] } });
    raw.send({ type: 'request', request_id: 100, request: { type: 'open_cursor', stream_id: 1, cursor_id: 12, batch: { steps: [] } } });
    expect(await raw.closed).toEqual({ code: 1008, reason: 'Stream 1 already has an open cursor' });
  });

  it('limits stored SQL texts to 150 per connection', async () => {
    const raw = await RawWs.hello(srv.wsUrl, ['hrana2']);
    for (let id = 0; id < 150; id++) await raw.ok({ type: 'store_sql', sql_id: id, sql: `SELECT ${id} AS v` });
    const tooMany = await raw.request({ type: 'store_sql', sql_id: 150, sql: 'SELECT 150' });
    expect(tooMany.type).toBe('response_error');
    expect((tooMany.error as Msg).code).toBe('SQL_STORE_TOO_MANY');
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    const res = await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql_id: 149 } });
    expect((res.result as Msg).rows).toEqual([[int(149)]]);
    await raw.ok({ type: 'close_sql', sql_id: 0 });
    await raw.ok({ type: 'store_sql', sql_id: 150, sql: 'SELECT 150' });
    // an id that is in use is a protocol error
    raw.send({ type: 'request', request_id: 1000, request: { type: 'store_sql', sql_id: 150, sql: 'SELECT 1' } });
    expect((await raw.closed).code).toBe(1008);
  });

  it('keeps each stream in order while different streams run concurrently', async () => {
    const raw = await RawWs.hello(srv.wsUrl);
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    await raw.ok({ type: 'open_stream', stream_id: 2 });
    await raw.ok({ type: 'open_stream', stream_id: 3 });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'CREATE TABLE conc (x)' } });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'BEGIN IMMEDIATE' } });
    // stream 2 waits for the write lock held by stream 1; its later request queues behind it,
    // while stream 3 answers at once
    const [insert, count, other] = raw.sendAll([
      { type: 'execute', stream_id: 2, stmt: { sql: 'INSERT INTO conc VALUES (2)' } },
      { type: 'execute', stream_id: 2, stmt: { sql: 'SELECT count(*) FROM conc' } },
      { type: 'execute', stream_id: 3, stmt: { sql: 'SELECT 3' } },
    ]);
    const [first] = await raw.collect(1);
    expect(first!.request_id).toBe(other);
    expect(((first!.response as Msg).result as Msg).rows).toEqual([[int(3)]]);
    // committing stream 1 lets stream 2 go on, in order
    const [commit] = raw.sendAll([{ type: 'execute', stream_id: 1, stmt: { sql: 'COMMIT' } }]);
    const rest = await raw.collect(3);
    expect(rest.map((m) => m.type)).toEqual(['response_ok', 'response_ok', 'response_ok']);
    const ids = rest.map((m) => m.request_id);
    // answers across streams may come in any order; within stream 2 they keep request order
    expect([...ids].sort()).toEqual([commit, insert, count].sort());
    expect(ids.filter((id) => id !== commit)).toEqual([insert, count]);
    expect(((rest.find((m) => m.request_id === count)!.response as Msg).result as Msg).rows).toEqual([[int(1)]]);
    raw.ws.close();
  });

  it('rolls back open transactions when the connection closes', async () => {
    const raw = await RawWs.hello(srv.wsUrl);
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'CREATE TABLE gone (x)' } });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'BEGIN' } });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'INSERT INTO gone VALUES (1)' } });
    raw.ws.close();
    await raw.closed;
    const other = await RawWs.hello(srv.wsUrl);
    await other.ok({ type: 'open_stream', stream_id: 1 });
    // the write lock was released: this write does not wait for the 5 s transaction timeout
    await other.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'INSERT INTO gone VALUES (2)' } });
    const res = await other.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'SELECT x FROM gone' } });
    expect((res.result as Msg).rows).toEqual([[int(2)]]);
    other.ws.close();
  });
});

describe('Hrana over WebSocket: namespaces and shutdown', () => {
  it('answers 503 for bad namespace headers and closes with 1011 for a missing namespace', async () => {
    const srv = await startTestServer({ 'enable-namespaces': true });
    try {
      const bad = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(srv.wsUrl, ['hrana3'], { headers: { 'x-namespace-bin': '!!!' } });
        ws.on('error', () => {});
        ws.once('open', () => reject(new Error('upgrade unexpectedly succeeded')));
        ws.once('unexpected-response', (_req, res: IncomingMessage) => resolve(res.statusCode ?? 0));
      });
      expect(bad).toBe(503);
      const ws = new WebSocket(srv.wsUrl, ['hrana3'], { headers: { 'x-namespace': 'nope' } });
      await new Promise((resolve) => ws.once('open', resolve));
      const closed = new Promise<number>((resolve) => ws.once('close', resolve));
      ws.send(JSON.stringify({ type: 'hello', jwt: null }));
      expect(await closed).toBe(1011);
    } finally {
      await srv.close();
    }
  });

  it('closes open sessions with 1001 when the server stops', async () => {
    const srv = await startTestServer();
    const raw = await RawWs.hello(srv.wsUrl);
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    await srv.close();
    expect((await raw.closed).code).toBe(1001);
    expect(srv.server.context.slots.inUse).toBe(0);
  });
});

describe('Hrana over WebSocket with JWT authentication', () => {
  let srv: TestServer;
  let privateKey: KeyObject;

  const token = (claims: Record<string, unknown> = {}, key: KeyObject = privateKey, expiresAt?: number): Promise<string> => {
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' });
    if (expiresAt !== undefined) jwt.setExpirationTime(expiresAt);
    return jwt.sign(key);
  };

  beforeAll(async () => {
    const pair = generateKeyPairSync('ed25519');
    privateKey = pair.privateKey;
    const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
    const rawKey = spki.subarray(spki.length - 32).toString('base64url');
    srv = await startTestServer({}, { SQLD_AUTH_JWT_KEY: rawKey });
  });

  afterAll(async () => {
    await srv?.close();
  });

  it('accepts a valid token', async () => {
    const c = createClient({ url: srv.wsUrl, authToken: await token(), intMode: 'bigint' });
    try {
      expect((await c.execute('SELECT 1 AS one')).rows[0]!.one).toBe(1n);
    } finally {
      c.close();
    }
  });

  it('rejects missing, expired and foreign tokens with hello_error codes', async () => {
    const expect401 = async (authToken: string | undefined, code: string): Promise<void> => {
      const c = createClient({ url: srv.wsUrl, ...(authToken === undefined ? {} : { authToken }) });
      try {
        await expect(c.execute('SELECT 1')).rejects.toMatchObject({ code });
      } finally {
        c.close();
      }
    };
    await expect401(undefined, 'AUTH_HEADER_NOT_FOUND');
    await expect401(await token({}, privateKey, Math.floor(Date.now() / 1000) - 3600), 'AUTH_JWT_EXPIRED');
    await expect401(await token({}, generateKeyPairSync('ed25519').privateKey), 'AUTH_JWT_INVALID');
  });

  it('sends hello_error and closes with 1000', async () => {
    const raw = await RawWs.open(srv.wsUrl, ['hrana3']);
    raw.send({ type: 'hello', jwt: null });
    expect(await raw.next()).toEqual({
      type: 'hello_error',
      error: { message: 'Authentication failed: Expected authorization header but none given', code: 'AUTH_HEADER_NOT_FOUND' },
    });
    expect(await raw.closed).toEqual({ code: 1000, reason: 'Thank you for using sqld' });
  });

  it('lets a re-hello replace the principal (hrana2+)', async () => {
    const raw = await RawWs.hello(srv.wsUrl, ['hrana2'], await token({ a: 'ro' }));
    raw.send({ type: 'hello', jwt: await token() });
    expect(await raw.next()).toEqual({ type: 'hello_ok' });
    await raw.ok({ type: 'open_stream', stream_id: 1 });
    await raw.ok({ type: 'execute', stream_id: 1, stmt: { sql: 'CREATE TABLE IF NOT EXISTS rehello (x)' } });
    raw.ws.close();
  });

  it('lets a read-only token read but not write', async () => {
    const admin = createClient({ url: srv.wsUrl, authToken: await token() });
    const ro = createClient({ url: srv.wsUrl, authToken: await token({ a: 'ro' }), intMode: 'bigint' });
    try {
      await admin.execute('CREATE TABLE IF NOT EXISTS ro_t (x)');
      await admin.execute('INSERT INTO ro_t VALUES (1)');
      expect((await ro.execute('SELECT count(*) AS c FROM ro_t')).rows[0]!.c).toBe(1n);
      await expect(ro.execute('INSERT INTO ro_t VALUES (2)')).rejects.toThrow(/Write permission/);
      expect((await admin.execute('SELECT count(*) AS c FROM ro_t')).rows[0]!.c).toBe(1);
    } finally {
      admin.close();
      ro.close();
    }
  });
});
