import { LibsqlError, type Client as LibsqlClient } from '@libsql/client';
import { WsClient as LibsqlWsClient } from '@libsql/client/ws';
import * as hrana from '@libsql/hrana-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { ProtoReader } from '../../src/server/hrana/protobuf/wire.js';
import type { RunningServer } from '../../src/server/server.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/*
 * @libsql/client 0.18 itself always speaks protocol 2 (it calls openHttp/openWs without a version).
 * Protocol 3 is @libsql/hrana-client's `protocolVersion = 3`: over HTTP it probes `GET /v3-protobuf`
 * and then uses /v3-protobuf/{pipeline,cursor}; over WebSocket it offers `hrana3-protobuf` first.
 * So these tests drive hrana-client in that mode (with a fetch spy counting the paths), and
 * @libsql/client's WsClient on top of such a hrana-client (its constructor takes one).
 */

const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);
const BLOB = new Uint8Array([0, 1, 2, 0xfe, 0xff]);
const OFFERED = ['hrana3-protobuf', 'hrana3', 'hrana2', 'hrana1'];

let srv: TestServer;
const paths: string[] = [];
const wsFrames: boolean[] = [];
const spyFetch = (req: Request): Promise<Response> => {
  paths.push(new URL(req.url).pathname);
  return fetch(req);
};

function openHttp(): hrana.Client {
  const client = hrana.openHttp(srv.url, undefined, spyFetch, undefined, 3);
  client.intMode = 'bigint';
  return client;
}

/** A hrana-client WsClient on a socket whose incoming frames we watch (true = binary). */
function openWs(): hrana.WsClient {
  const socket = new WebSocket(srv.wsUrl, OFFERED);
  socket.on('message', (_data, isBinary) => wsFrames.push(isBinary));
  const client = new hrana.WsClient(socket, undefined);
  client.intMode = 'bigint';
  return client;
}

function codeOf(err: unknown): string | undefined {
  return err instanceof hrana.ResponseError || err instanceof LibsqlError ? err.code : undefined;
}

/** Observes a promise at once (batch steps may fail before they are awaited). */
function settle<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.unreachable('expected a failure'),
    (err: unknown) => err,
  );
}

beforeAll(async () => {
  srv = await startTestServer();
});

afterAll(async () => {
  await srv?.close();
});

describe('protocol selection', () => {
  it('answers the /v3-protobuf probe like /v3', async () => {
    const [probe, v3] = await Promise.all([fetch(`${srv.url}/v3-protobuf`), fetch(`${srv.url}/v3`)]);
    expect(probe.status).toBe(200);
    expect(await probe.text()).toBe(await v3.text());
  });

  it('prefers hrana3-protobuf: binary frames, text frames close 1003, bad protobuf closes 1007', async () => {
    const open = (protocols: string[]): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(srv.wsUrl, protocols);
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    const closed = (ws: WebSocket): Promise<number> => new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    const ws = await open(['hrana3', 'hrana3-protobuf']);
    expect(ws.protocol).toBe('hrana3-protobuf');
    const reply = new Promise<[Buffer, boolean]>((resolve) => ws.once('message', (data: Buffer, isBinary) => resolve([data, isBinary])));
    ws.send(Buffer.from([0x0a, 0x00])); // ClientMsg { hello: {} }
    expect(await reply).toEqual([Buffer.from([0x0a, 0x00]), true]); // ServerMsg { hello_ok: {} }
    ws.send(JSON.stringify({ type: 'hello', jwt: null }));
    expect(await closed(ws)).toBe(1003);
    const bad = await open(['hrana3-protobuf']);
    bad.send(Buffer.from([0x0a, 0x05, 0x00]));
    expect(await closed(bad)).toBe(1007);
  });
});

describe.each([
  ['HTTP /v3-protobuf', openHttp],
  ['WebSocket hrana3-protobuf', openWs],
] as const)('hrana-client over %s', (name, open) => {
  let client: hrana.Client;
  const table = name.startsWith('HTTP') ? 'vals_http' : 'vals_ws';

  beforeAll(async () => {
    client = open();
    expect(await client.getVersion()).toBe(3);
  });

  afterAll(() => {
    client?.close();
    if (name.startsWith('HTTP')) {
      expect(paths.length).toBeGreaterThan(0);
      expect(new Set(paths)).toEqual(new Set(['/v3-protobuf', '/v3-protobuf/pipeline', '/v3-protobuf/cursor']));
    } else {
      expect(wsFrames.length).toBeGreaterThan(0);
      expect(wsFrames.every((binary) => binary)).toBe(true);
    }
  });

  it('executes with every value type, including 2^63-1, -2^63 and blobs', async () => {
    const s = client.openStream();
    try {
      await s.run(`CREATE TABLE ${table} (i INTEGER, f REAL, t TEXT, b BLOB, n)`);
      const ins = await s.run([`INSERT INTO ${table} VALUES (?, ?, ?, ?, ?)`, [I64_MAX, 1.5, 'ünï 🙂', BLOB, null]]);
      expect(ins.affectedRowCount).toBe(1);
      expect(ins.lastInsertRowid).toBe(1n);
      await s.run(new hrana.Stmt(`INSERT INTO ${table} VALUES (:i, :f, :t, :b, :n)`).bindName(':i', I64_MIN).bindName(':f', -0.25).bindName(':t', '').bindName(':b', new Uint8Array()).bindName(':n', null));
      const rows = await s.query(`SELECT i, f, t, b, n FROM ${table} ORDER BY rowid`);
      expect(rows.columnNames).toEqual(['i', 'f', 't', 'b', 'n']);
      expect(rows.columnDecltypes).toEqual(['INTEGER', 'REAL', 'TEXT', 'BLOB', undefined]);
      const [a, b] = rows.rows;
      expect([a?.i, a?.f, a?.t, a?.n]).toEqual([I64_MAX, 1.5, 'ünï 🙂', null]);
      expect(new Uint8Array(a?.b as ArrayBuffer)).toEqual(BLOB);
      expect([b?.i, b?.f, b?.t, b?.n]).toEqual([I64_MIN, -0.25, '', null]);
      expect(new Uint8Array(b?.b as ArrayBuffer)).toEqual(new Uint8Array());
      expect((await s.queryValue('SELECT 9223372036854775807')).value).toBe(I64_MAX);
    } finally {
      s.close();
    }
  });

  it('runs a batch with conditions and errors (BatchResult maps)', async () => {
    const s = client.openStream();
    try {
      const batch = s.batch(false);
      const [okStep, badStep, afterBadStep] = [batch.step(), batch.step(), batch.step()];
      const ok = settle(okStep.queryValue('SELECT 1'));
      const bad = settle(badStep.run('SELECT * FROM no_such_table'));
      const afterBad = settle(afterBadStep.condition(hrana.BatchCond.ok(badStep)).queryValue('SELECT 3'));
      const afterOk = settle(batch.step().condition(hrana.BatchCond.ok(okStep)).queryValue('SELECT 2'));
      const onError = settle(batch.step().condition(hrana.BatchCond.error(badStep)).queryValue('SELECT 4'));
      const notSkipped = hrana.BatchCond.not(hrana.BatchCond.ok(afterBadStep));
      const combined = settle(batch.step().condition(hrana.BatchCond.and(batch, [notSkipped, hrana.BatchCond.or(batch, [hrana.BatchCond.isAutocommit(batch)])])).queryValue('SELECT 5'));
      await batch.execute();
      expect((await ok).value?.value).toBe(1n);
      expect(codeOf((await bad).error)).toBe('SQLITE_UNKNOWN');
      expect(await afterBad).toEqual({ value: undefined });
      expect((await afterOk).value?.value).toBe(2n);
      expect((await onError).value?.value).toBe(4n);
      expect((await combined).value?.value).toBe(5n);
    } finally {
      s.close();
    }
  });

  it('streams a cursor batch with conditions and step errors', async () => {
    const s = client.openStream();
    try {
      const batch = s.batch(true);
      const rows = settle(batch.step().query('SELECT value FROM json_each(\'[1,2,3]\')'));
      const badStep = batch.step();
      const bad = settle(badStep.run('SELEC 1'));
      const skipped = settle(batch.step().condition(hrana.BatchCond.ok(badStep)).run('SELECT 1'));
      const ran = settle(batch.step().condition(hrana.BatchCond.error(badStep)).queryValue(`SELECT count(*) FROM ${table}`));
      // No sqld replication_index entry on this transport: hrana-client-ts 0.10 would reject it.
      await batch.execute();
      expect((await rows).value?.rows.map((r) => r.value)).toEqual([1n, 2n, 3n]);
      expect(codeOf((await bad).error)).toBe('SQL_PARSE_ERROR');
      expect(await skipped).toEqual({ value: undefined });
      expect((await ran).value?.value).toBe(2n);
    } finally {
      s.close();
    }
  });

  it('keeps an interactive transaction on its stream', async () => {
    const s = client.openStream();
    const other = client.openStream();
    try {
      await s.run('BEGIN');
      expect(await s.getAutocommit()).toBe(false);
      await s.run(`INSERT INTO ${table} (i) VALUES (100)`);
      expect((await s.queryValue(`SELECT count(*) FROM ${table}`)).value).toBe(3n);
      expect((await other.queryValue(`SELECT count(*) FROM ${table}`)).value).toBe(2n);
      await s.run('ROLLBACK');
      expect(await s.getAutocommit()).toBe(true);
      await s.sequence(`BEGIN; INSERT INTO ${table} (i) VALUES (200); COMMIT`);
      expect((await other.queryValue(`SELECT count(*) FROM ${table}`)).value).toBe(3n);
      const d = await s.describe(`SELECT i FROM ${table} WHERE i = :x`);
      expect([d.paramNames, d.columns.map((c) => c.name), d.isReadonly]).toEqual([[':x'], ['i'], true]);
    } finally {
      s.close();
      other.close();
    }
  });

  it('reports errors with their codes', async () => {
    const s = client.openStream();
    try {
      expect(codeOf(await failure(s.run('SELEC 1')))).toBe('SQL_PARSE_ERROR');
      expect(codeOf(await failure(s.run('SELECT * FROM nope')))).toBe('SQLITE_UNKNOWN');
      expect(codeOf(await failure(s.run(new hrana.Stmt('SELECT ?').bindIndex(1, 1).bindName(':a', 2))))).toBe('ARGS_BOTH_POSITIONAL_AND_NAMED');
      await s.run('CREATE TABLE IF NOT EXISTS uniq (x UNIQUE)');
      await s.run('INSERT OR REPLACE INTO uniq VALUES (1)');
      expect(codeOf(await failure(s.run('INSERT INTO uniq VALUES (1)')))).toBe('SQLITE_CONSTRAINT');
      expect((await s.queryValue('SELECT 1')).value).toBe(1n);
    } finally {
      s.close();
    }
  });
});

describe('@libsql/client over hrana3-protobuf', () => {
  let db: LibsqlClient;
  beforeAll(() => {
    db = new LibsqlWsClient(openWs(), new URL(srv.wsUrl), undefined, 'bigint', 20);
  });
  afterAll(() => db?.close());

  it('executes, runs sequences and maps error codes', async () => {
    await db.executeMultiple('CREATE TABLE lc (i INTEGER, b BLOB); INSERT INTO lc VALUES (1, x\'00ff\')');
    const ins = await db.execute({ sql: 'INSERT INTO lc VALUES (?, ?)', args: [I64_MAX, BLOB] });
    expect(ins.lastInsertRowid).toBe(2n);
    const rs = await db.execute('SELECT i, b FROM lc ORDER BY rowid');
    expect(rs.rows.map((r) => r.i)).toEqual([1n, I64_MAX]);
    expect(new Uint8Array(rs.rows[1]?.b as ArrayBuffer)).toEqual(BLOB);
    const err = await failure(db.execute('SELECT * FROM nope'));
    expect(err).toBeInstanceOf(LibsqlError);
    expect(codeOf(err)).toBe('SQLITE_UNKNOWN');
  });

  it('batch() and transaction() work over cursors (no sqld trailing entry here, spec §14.4)', async () => {
    const [one] = await db.batch(['SELECT 1 AS one'], 'read');
    expect(one?.rows[0]?.one).toBe(1n);
    await expect(db.batch(['INSERT INTO lc VALUES (10, NULL)', 'INSERT INTO nope VALUES (1)'], 'write')).rejects.toThrow();
    expect((await db.execute('SELECT count(*) AS n FROM lc WHERE i = 10')).rows[0]?.n).toBe(0n);
    const tx = await db.transaction('write');
    await tx.execute('INSERT INTO lc VALUES (11, NULL)');
    expect((await tx.execute('SELECT count(*) AS n FROM lc WHERE i = 11')).rows[0]?.n).toBe(1n);
    await tx.commit();
    expect((await db.execute('SELECT count(*) AS n FROM lc WHERE i = 11')).rows[0]?.n).toBe(1n);
  });
});

describe('raw /v3-protobuf requests', () => {
  it('frames the cursor body as length-delimited messages, without sqld\'s trailing entry', async () => {
    // CursorReqBody { batch { steps { stmt { sql: "SELECT 7" } } } }
    const sql = Buffer.from('SELECT 7');
    const stmt = Buffer.concat([Buffer.from([0x0a, sql.length]), sql]);
    const step = Buffer.concat([Buffer.from([0x12, stmt.length]), stmt]);
    const batch = Buffer.concat([Buffer.from([0x0a, step.length]), step]);
    const res = await fetch(`${srv.url}/v3-protobuf/cursor`, { method: 'POST', body: Buffer.concat([Buffer.from([0x12, batch.length]), batch]) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const body = new Uint8Array(await res.arrayBuffer());
    const fields: number[] = [];
    for (let pos = 0; pos < body.length; ) {
      const len = body[pos] ?? 0; // every frame here is shorter than 128 bytes
      const r = new ProtoReader(body, pos + 1, pos + 1 + len);
      fields.push(r.more() ? r.field() : 0);
      pos += 1 + len;
    }
    // head (baton = 1), step_begin, row, step_end
    expect(fields).toEqual([1, 1, 4, 2]);
  });

  it('answers protocol errors with 400 text/plain', async () => {
    const badBaton = Buffer.concat([Buffer.from([0x0a, 0x04]), Buffer.from('nope')]);
    const res = await fetch(`${srv.url}/v3-protobuf/pipeline`, { method: 'POST', body: badBaton });
    expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([400, 'text/plain; charset=utf-8', 'Received an invalid baton']);
    const garbage = await fetch(`${srv.url}/v3-protobuf/pipeline`, { method: 'POST', body: Buffer.from([0x12, 0x7f]) });
    expect(garbage.status).toBe(400);
    expect(await garbage.text()).toMatch(/^Cannot decode client message from Protobuf/);
  });

  it('answers STREAM_EXPIRED with a protobuf Error body', async () => {
    const started = await startTestServer({}, {}, { streamExpiryMs: 200 });
    const fast: RunningServer = started.server;
    try {
      const url = `http://127.0.0.1:${fast.httpAddress.port}/v3-protobuf/pipeline`;
      // PipelineReqBody { requests { get_autocommit {} } } → PipelineRespBody { baton = 1, ... }
      const first = new Uint8Array(await (await fetch(url, { method: 'POST', body: Buffer.from([0x12, 0x02, 0x42, 0x00]) })).arrayBuffer());
      const head = new ProtoReader(first);
      expect(head.field()).toBe(1);
      const baton = Buffer.from(head.string());
      await vi.waitFor(() => expect(fast.context.httpStreams.size).toBe(0), { timeout: 3000, interval: 25 });
      const res = await fetch(url, { method: 'POST', body: Buffer.concat([Buffer.from([0x0a, baton.length]), baton]) });
      expect([res.status, res.headers.get('content-type')]).toEqual([400, 'application/x-protobuf']);
      const r = new ProtoReader(new Uint8Array(await res.arrayBuffer()));
      expect([r.field(), r.string(), r.field(), r.string()]).toEqual([1, 'The stream has expired due to inactivity', 2, 'STREAM_EXPIRED']);
    } finally {
      await started.close();
    }
  });
});
