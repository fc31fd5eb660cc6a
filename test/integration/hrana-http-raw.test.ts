import { createClient, LibsqlError } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningServer } from '../../src/server/server.js';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

/** Raw Hrana over HTTP (spec §4.4–§4.8): `/v2/pipeline`, `/v3/pipeline`, `/v3/cursor`. */

type Json = Record<string, unknown>;
type Value = { type: string; value?: unknown; base64?: string };
interface StreamResult {
  type: 'ok' | 'error';
  response?: Json & { type: string; result?: Json };
  error?: { message: string; code: string };
}
interface PipelineBody {
  baton: string | null;
  base_url: string | null;
  results: StreamResult[];
}
interface Answer {
  status: number;
  type: string;
  text: string;
  body: PipelineBody;
}

let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

async function pipe(requests: unknown[], baton: string | null = null, version: 2 | 3 = 3, url = srv.url): Promise<Answer> {
  const r = await postJson(`${url}/v${version}/pipeline`, { baton, requests });
  return { ...r, body: r.body as PipelineBody };
}

/** A pipeline that must succeed at the HTTP level. */
async function ok(requests: unknown[], baton: string | null = null, version: 2 | 3 = 3, url = srv.url): Promise<PipelineBody> {
  const r = await pipe(requests, baton, version, url);
  expect(r.status, r.text).toBe(200);
  return r.body;
}

const exec = (sql: string, extra: Json = {}): Json => ({ type: 'execute', stmt: { sql, ...extra } });
const int = (v: bigint | number): Value => ({ type: 'integer', value: String(v) });

/** The StmtResult of an ok execute result. */
function stmtResult(r: StreamResult | undefined): Json & { rows: Value[][]; cols: Json[] } {
  expect(r?.type, JSON.stringify(r)).toBe('ok');
  return r?.response?.result as Json & { rows: Value[][]; cols: Json[] };
}

function errorCode(r: StreamResult | undefined): string | undefined {
  expect(r?.type, JSON.stringify(r)).toBe('error');
  return r?.error?.code;
}

function expectProtocolError(r: Answer, message: RegExp): void {
  expect(r.status).toBe(400);
  expect(r.type).toMatch(/^text\/plain/);
  expect(r.text).toMatch(message);
}

async function stillServing(url = srv.url): Promise<void> {
  const body = await ok([exec('SELECT 42'), { type: 'close' }], null, 3, url);
  expect(stmtResult(body.results[0]).rows).toEqual([[int(42)]]);
}

describe('batons', () => {
  it('issues a new baton per response; a reused baton is refused', async () => {
    const first = await ok([exec('SELECT 1')]);
    expect(typeof first.baton).toBe('string');
    const second = await ok([exec('SELECT 2')], first.baton);
    expect(typeof second.baton).toBe('string');
    expect(second.baton).not.toBe(first.baton);
    expectProtocolError(await pipe([exec('SELECT 3')], first.baton), /^Received a baton that has already been used$/);
  });

  it('refuses forged and tampered batons', async () => {
    const forged = Buffer.alloc(48, 7).toString('base64').replace(/=+$/, '');
    expectProtocolError(await pipe([exec('SELECT 1')], forged), /^Received an invalid baton$/);
    expectProtocolError(await pipe([exec('SELECT 1')], 'not a baton!'), /^Received an invalid baton$/);
    const real = (await ok([exec('SELECT 1')])).baton ?? '';
    const last = real.at(-1) === 'A' ? 'B' : 'A';
    expectProtocolError(await pipe([exec('SELECT 1')], real.slice(0, -1) + last), /^Received an invalid baton$/);
    await ok([{ type: 'close' }], real);
  });

  it('close ends the stream: baton null, the old baton is no longer valid', async () => {
    const open = await ok([exec('SELECT 1')]);
    const closed = await ok([{ type: 'close' }], open.baton);
    expect(closed.baton).toBeNull();
    expect(closed.results).toEqual([{ type: 'ok', response: { type: 'close' } }]);
    expect((await pipe([exec('SELECT 1')], open.baton)).status).toBe(400);
  });
});

describe('protocol errors abort the request with 400 text/plain', () => {
  it('unknown request type; the stream is destroyed (its transaction rolled back) and the server keeps serving', async () => {
    await ok([exec('CREATE TABLE proto_t (x)'), { type: 'close' }]);
    const open = await ok([exec('BEGIN'), exec('INSERT INTO proto_t VALUES (1)')]);
    const r = await pipe([{ type: 'no_such_request' }], open.baton);
    expectProtocolError(r, /./);
    expect((await pipe([exec('SELECT 1')], open.baton)).status).toBe(400);
    await stillServing();
    // the aborted stream's write transaction was rolled back and its lock released
    const after = await ok([exec('INSERT INTO proto_t VALUES (2)'), exec('SELECT count(*) FROM proto_t'), { type: 'close' }]);
    expect(stmtResult(after.results[1]).rows).toEqual([[int(1)]]);
  });

  it('a value without a type', async () => {
    expectProtocolError(await pipe([exec('SELECT ?', { args: [{ value: '1' }] })]), /Value type not recognized/);
    expectProtocolError(await pipe([exec('SELECT ?', { args: [{ type: 'decimal', value: '1' }] })]), /Value type not recognized/);
    await stillServing();
  });

  it('an integer value given as a JSON number', async () => {
    expect((await pipe([exec('SELECT ?', { args: [{ type: 'integer', value: 1 }] })])).status).toBe(400);
  });

  it('malformed JSON', async () => {
    for (const path of ['/v2/pipeline', '/v3/pipeline', '/v3/cursor']) {
      const r = await postJson(`${srv.url}${path}`, '{"baton": null, "requests": [');
      expect(r.status, path).toBe(400);
      expect(r.type).toMatch(/^text\/plain/);
    }
    await stillServing();
  });

  it('get_autocommit is v3 only', async () => {
    expectProtocolError(await pipe([{ type: 'get_autocommit' }], null, 2), /hrana3/);
    const body = await ok([{ type: 'get_autocommit' }, exec('BEGIN'), { type: 'get_autocommit' }, exec('ROLLBACK'), { type: 'close' }]);
    expect(body.results[0]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } });
    expect(body.results[2]).toEqual({ type: 'ok', response: { type: 'get_autocommit', is_autocommit: false } });
  });

  it('a condition referencing a later step', async () => {
    const steps = [{ stmt: { sql: 'SELECT 1' } }, { condition: { type: 'ok', step: 1 }, stmt: { sql: 'SELECT 2' } }];
    expectProtocolError(await pipe([{ type: 'batch', batch: { steps } }]), /^Invalid reference to step in a batch condition$/);
  });
});

describe('is_autocommit batch condition', () => {
  const steps = [
    { stmt: { sql: 'BEGIN' } },
    { condition: { type: 'is_autocommit' }, stmt: { sql: 'SELECT 1' } },
    { condition: { type: 'not', cond: { type: 'is_autocommit' } }, stmt: { sql: 'SELECT 2' } },
    { stmt: { sql: 'COMMIT' } },
    { condition: { type: 'is_autocommit' }, stmt: { sql: 'SELECT 3' } },
  ];

  it('is evaluated against the connection state on v3', async () => {
    const body = await ok([{ type: 'batch', batch: { steps } }, { type: 'close' }]);
    const res = stmtResult(body.results[0]) as unknown as { step_results: (Json | null)[] };
    expect(res.step_results.map((s) => s !== null)).toEqual([true, false, true, true, true]);
  });

  it('is a protocol error on v2', async () => {
    expectProtocolError(await pipe([{ type: 'batch', batch: { steps } }], null, 2), /hrana3/);
  });
});

describe('stored SQL', () => {
  it('store_sql, execute/describe/sequence by sql_id, close_sql', async () => {
    const body = await ok([
      { type: 'store_sql', sql_id: 1, sql: 'SELECT ? + 1' },
      exec('', { sql: undefined, sql_id: 1, args: [int(41)] }),
      { type: 'describe', sql_id: 1 },
      { type: 'store_sql', sql_id: 2, sql: 'CREATE TABLE stored_t (x); INSERT INTO stored_t VALUES (5)' },
      { type: 'sequence', sql_id: 2 },
      exec('SELECT x FROM stored_t'),
      { type: 'close_sql', sql_id: 1 },
      { type: 'close_sql', sql_id: 999 },
    ]);
    expect(body.results[0]).toEqual({ type: 'ok', response: { type: 'store_sql' } });
    expect(stmtResult(body.results[1]).rows).toEqual([[int(42)]]);
    expect(body.results[2]?.response?.type).toBe('describe');
    expect(body.results[4]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    expect(stmtResult(body.results[5]).rows).toEqual([[int(5)]]);
    expect(body.results[6]).toEqual({ type: 'ok', response: { type: 'close_sql' } });
    expect(body.results[7]).toEqual({ type: 'ok', response: { type: 'close_sql' } });
    // a closed id is unknown: protocol error
    expectProtocolError(await pipe([exec('', { sql: undefined, sql_id: 1 })], body.baton), /./);
  });

  it('sql and sql_id together, or an id stored twice, are protocol errors', async () => {
    expectProtocolError(await pipe([{ type: 'store_sql', sql_id: 1, sql: 'SELECT 1' }, exec('SELECT 1', { sql_id: 1 })]), /./);
    expectProtocolError(await pipe([{ type: 'store_sql', sql_id: 1, sql: 'SELECT 1' }, { type: 'store_sql', sql_id: 1, sql: 'SELECT 2' }]), /./);
  });

  it('at most 50 texts per stream (SQL_STORE_TOO_MANY) of at most 5000 bytes (SQL_STORE_TOO_LARGE)', async () => {
    const stores = Array.from({ length: 51 }, (_, i) => ({ type: 'store_sql', sql_id: i, sql: `SELECT ${i}` }));
    const body = await ok([...stores, exec('', { sql: undefined, sql_id: 49 }), { type: 'close_sql', sql_id: 0 }, { type: 'store_sql', sql_id: 50, sql: 'SELECT 50' }]);
    expect(body.results.slice(0, 50).every((r) => r.type === 'ok')).toBe(true);
    expect(errorCode(body.results[50])).toBe('SQL_STORE_TOO_MANY');
    expect(body.results[50]?.error?.message).toMatch(/cannot store more/);
    expect(stmtResult(body.results[51]).rows).toEqual([[int(49)]]);
    // closing one frees a slot
    expect(body.results[53]).toEqual({ type: 'ok', response: { type: 'store_sql' } });
    const sqlOfBytes = (n: number): string => `SELECT '${'x'.repeat(n - 9)}'`;
    expect(Buffer.byteLength(sqlOfBytes(5000))).toBe(5000);
    const fresh = await ok([
      { type: 'store_sql', sql_id: 1, sql: sqlOfBytes(5001) },
      { type: 'store_sql', sql_id: 2, sql: sqlOfBytes(5000) },
      { type: 'close' },
    ]);
    expect(errorCode(fresh.results[0])).toBe('SQL_STORE_TOO_LARGE');
    expect(fresh.results[0]?.error?.message).toMatch(/too large to be stored/);
    expect(fresh.results[1]).toEqual({ type: 'ok', response: { type: 'store_sql' } });
  });
});

describe('sequence', () => {
  it('runs statements in order and stops at the first failure', async () => {
    const body = await ok([
      { type: 'sequence', sql: 'CREATE TABLE seq_t (x UNIQUE); INSERT INTO seq_t VALUES (1); INSERT INTO seq_t VALUES (2);' },
      { type: 'sequence', sql: 'INSERT INTO seq_t VALUES (3); INSERT INTO seq_t VALUES (1); INSERT INTO seq_t VALUES (4);' },
      exec('SELECT group_concat(x) FROM seq_t'),
      { type: 'close' },
    ]);
    expect(body.results[0]).toEqual({ type: 'ok', response: { type: 'sequence' } });
    expect(errorCode(body.results[1])).toBe('SQLITE_CONSTRAINT');
    expect(stmtResult(body.results[2]).rows).toEqual([[{ type: 'text', value: '1,2,3' }]]);
  });
});

describe('describe', () => {
  it('reports params, cols, is_readonly and is_explain', async () => {
    const body = await ok([
      exec('CREATE TABLE desc_t (id INTEGER PRIMARY KEY, name TEXT)'),
      { type: 'describe', sql: 'SELECT id, name AS n, 1 + 1 AS two FROM desc_t WHERE id = ? AND name = :name OR id = ?3' },
      { type: 'describe', sql: 'INSERT INTO desc_t (name) VALUES (@n)' },
      { type: 'describe', sql: 'EXPLAIN SELECT 1' },
      { type: 'close' },
    ]);
    expect(body.results[1]).toEqual({
      type: 'ok',
      response: {
        type: 'describe',
        result: {
          params: [{ name: null }, { name: ':name' }, { name: '?3' }],
          cols: [
            { name: 'id', decltype: 'INTEGER' },
            { name: 'n', decltype: 'TEXT' },
            { name: 'two', decltype: null },
          ],
          is_explain: false,
          is_readonly: true,
        },
      },
    });
    const ins = body.results[2]?.response?.result;
    expect(ins).toEqual({ params: [{ name: '@n' }], cols: [], is_explain: false, is_readonly: false });
    expect(body.results[3]?.response?.result).toMatchObject({ is_explain: true, is_readonly: true });
  });
});

describe('batch conditions', () => {
  it('ok / error / not / and / or, including sqld’s `error` on a skipped step', async () => {
    const s = (sql: string, condition?: Json): Json => ({ condition: condition ?? null, stmt: { sql } });
    const okc = (step: number): Json => ({ type: 'ok', step });
    const errc = (step: number): Json => ({ type: 'error', step });
    const steps = [
      s('SELECT 0'), // 0 runs, ok
      s('SELECT * FROM no_such_table'), // 1 runs, error
      s('SELECT 2', okc(0)), // 2 runs
      s('SELECT 3', okc(1)), // 3 skipped
      s('SELECT 4', errc(1)), // 4 runs
      s('SELECT 5', errc(3)), // 5 runs: sqld treats a skipped step as failed
      s('SELECT 6', { type: 'not', cond: okc(3) }), // 6 runs
      s('SELECT 7', { type: 'and', conds: [okc(0), errc(1)] }), // 7 runs
      s('SELECT 8', { type: 'and', conds: [okc(0), okc(1)] }), // 8 skipped
      s('SELECT 9', { type: 'or', conds: [okc(1), okc(3)] }), // 9 skipped
      s('SELECT 10', { type: 'or', conds: [okc(1), okc(0)] }), // 10 runs
      s('SELECT 11', errc(0)), // 11 skipped
      s('SELECT 12', { type: 'and', conds: [] }), // 12 runs (empty and)
      s('SELECT 13', { type: 'or', conds: [] }), // 13 skipped (empty or)
    ];
    const body = await ok([{ type: 'batch', batch: { steps } }, { type: 'close' }]);
    const res = body.results[0]?.response?.result as { step_results: (Json | null)[]; step_errors: (Json | null)[]; replication_index: unknown };
    expect(res.step_results.map((r) => r !== null)).toEqual([true, false, true, false, true, true, true, true, false, false, true, false, true, false]);
    expect(res.step_errors.map((e) => (e === null ? null : e.code))).toEqual([null, 'SQLITE_UNKNOWN', ...Array<null>(12).fill(null)]);
    expect(res.step_results[0]).toMatchObject({ rows: [[int(0)]], replication_index: null });
  });
});

describe('statement-level errors are per-request results', () => {
  it('SQL_MANY_STATEMENTS, SQL_NO_STATEMENT, ARGS_BOTH_POSITIONAL_AND_NAMED; later requests still run', async () => {
    const body = await ok([
      exec('SELECT 1; SELECT 2'),
      exec(''),
      exec('  -- only a comment'),
      exec('SELECT ?, :a', { args: [int(1)], named_args: [{ name: ':a', value: int(2) }] }),
      exec('SELECT 1'),
      { type: 'close' },
    ]);
    expect(body.results.map((r) => (r.type === 'error' ? r.error?.code : 'ok'))).toEqual([
      'SQL_MANY_STATEMENTS',
      'SQL_NO_STATEMENT',
      'SQL_NO_STATEMENT',
      'ARGS_BOTH_POSITIONAL_AND_NAMED',
      'ok',
      'ok',
    ]);
    for (const r of body.results.slice(0, 4)) expect(typeof r.error?.message).toBe('string');
  });
});

describe('response JSON shape', () => {
  it('has every key; integers as strings; floats as numbers; blobs as unpadded base64', async () => {
    const body = await ok([
      exec('CREATE TABLE shape_t (i INTEGER, f REAL, t TEXT, b BLOB, n)'),
      exec('INSERT INTO shape_t VALUES (?, ?, ?, ?, ?)', {
        args: [int(9007199254740993n), { type: 'float', value: 1 }, { type: 'text', value: 'é' }, { type: 'blob', base64: '/w==' }, { type: 'null' }],
      }),
      exec('SELECT i, f, t, b, n, x\'00ff10\' AS b3 FROM shape_t'),
      { type: 'close' },
    ]);
    expect(Object.keys(body).sort()).toEqual(['base_url', 'baton', 'results']);
    expect(body.base_url).toBeNull();
    const keys = ['affected_row_count', 'cols', 'last_insert_rowid', 'query_duration_ms', 'replication_index', 'rows', 'rows_read', 'rows_written'];
    const ins = stmtResult(body.results[1]);
    expect(Object.keys(ins).sort()).toEqual(keys);
    expect(ins.last_insert_rowid).toBe('1');
    expect(ins.affected_row_count).toBe(1);
    expect(ins.rows).toEqual([]);
    const sel = stmtResult(body.results[2]);
    expect(Object.keys(sel).sort()).toEqual(keys);
    expect(sel.last_insert_rowid).toBeNull();
    expect(sel.affected_row_count).toBe(0);
    expect(typeof sel.rows_read).toBe('number');
    expect(typeof sel.rows_written).toBe('number');
    expect(typeof sel.query_duration_ms).toBe('number');
    expect(sel.cols).toEqual([
      { name: 'i', decltype: 'INTEGER' },
      { name: 'f', decltype: 'REAL' },
      { name: 't', decltype: 'TEXT' },
      { name: 'b', decltype: 'BLOB' },
      { name: 'n', decltype: null },
      { name: 'b3', decltype: null },
    ]);
    expect(sel.rows).toEqual([
      [
        { type: 'integer', value: '9007199254740993' },
        { type: 'float', value: 1 },
        { type: 'text', value: 'é' },
        { type: 'blob', base64: '/w' },
        { type: 'null' },
        { type: 'blob', base64: 'AP8Q' },
      ],
    ]);
    // the raw text too: the integer is a JSON string, the float a JSON number
    const r = await pipe([exec('SELECT 9223372036854775807, -9223372036854775808, 1.0'), { type: 'close' }]);
    expect(r.text).toContain('{"type":"integer","value":"9223372036854775807"}');
    expect(r.text).toContain('{"type":"integer","value":"-9223372036854775808"}');
    expect(r.text).toContain('{"type":"float","value":1}');
  });
});

describe('RESPONSE_TOO_LARGE', () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startTestServer({ 'max-response-size': '1KB' });
  });
  afterAll(async () => {
    await small?.close();
  });

  it('fails only the oversized statement; committed data stays; the server keeps serving', async () => {
    const body = await ok(
      [
        exec('CREATE TABLE big_t (x TEXT)'),
        exec("INSERT INTO big_t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 200) SELECT printf('%050d', n) FROM c"),
        exec('SELECT x FROM big_t'),
        exec('SELECT count(*) FROM big_t'),
        { type: 'close' },
      ],
      null,
      3,
      small.url,
    );
    expect(stmtResult(body.results[1]).affected_row_count).toBe(200);
    expect(errorCode(body.results[2])).toBe('RESPONSE_TOO_LARGE');
    expect(stmtResult(body.results[3]).rows).toEqual([[int(200)]]);
    await stillServing(small.url);
    const again = await ok([exec('SELECT count(*) FROM big_t'), { type: 'close' }], null, 2, small.url);
    expect(stmtResult(again.results[0]).rows).toEqual([[int(200)]]);
  });
});

describe('cursor', () => {
  it('streams text/plain lines: baton first, one entry per line, trailing replication_index', async () => {
    const steps = [
      { stmt: { sql: 'CREATE TABLE cur_t (id INTEGER PRIMARY KEY, v TEXT)' } },
      { stmt: { sql: "INSERT INTO cur_t (v) VALUES ('a'), ('b')" } },
      { stmt: { sql: 'SELECT id, v FROM cur_t ORDER BY id' } },
      { stmt: { sql: 'SELECT * FROM no_such_table' } },
      { condition: { type: 'ok', step: 3 }, stmt: { sql: 'SELECT 1' } },
    ];
    const res = await fetch(`${srv.url}/v3/cursor`, { method: 'POST', body: JSON.stringify({ baton: null, batch: { steps } }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as Json);
    const head = lines[0] as { baton: unknown; base_url: unknown };
    expect(Object.keys(head).sort()).toEqual(['base_url', 'baton']);
    expect(typeof head.baton).toBe('string');
    expect(head.base_url).toBeNull();
    const entries = lines.slice(1);
    expect(entries.slice(0, -2)).toEqual([
      { type: 'step_begin', step: 0, cols: [] },
      { type: 'step_end', affected_row_count: 0, last_insert_rowid: null },
      { type: 'step_begin', step: 1, cols: [] },
      { type: 'step_end', affected_row_count: 2, last_insert_rowid: 2 },
      { type: 'step_begin', step: 2, cols: [{ name: 'id', decltype: 'INTEGER' }, { name: 'v', decltype: 'TEXT' }] },
      { type: 'row', row: [int(1), { type: 'text', value: 'a' }] },
      { type: 'row', row: [int(2), { type: 'text', value: 'b' }] },
      { type: 'step_end', affected_row_count: 0, last_insert_rowid: null },
    ]);
    const stepError = entries.at(-2) as { type: string; step: number; error: { code: string } };
    expect(stepError).toMatchObject({ type: 'step_error', step: 3, error: { code: 'SQLITE_UNKNOWN' } });
    const last = entries.at(-1) as { type: string; replication_index: unknown };
    expect(Object.keys(last).sort()).toEqual(['replication_index', 'type']);
    expect(last.type).toBe('replication_index');
    expect(last.replication_index === null || typeof last.replication_index === 'number').toBe(true);
    // the head's baton continues the stream on the pipeline
    const cont = await ok([exec('SELECT count(*) FROM cur_t'), { type: 'close' }], head.baton as string);
    expect(stmtResult(cont.results[0]).rows).toEqual([[int(2)]]);
  });
});

describe('stream expiry', () => {
  describe('with a short expiry', () => {
    let fast: RunningServer;
    let url: string;
    let started: TestServer | undefined;
    beforeAll(async () => {
      // No flag sets the expiry (sqld hard-codes 10 s), so the limit is overridden for this server.
      started = await startTestServer({}, {}, { streamExpiryMs: 300 });
      fast = started.server;
      url = started.url;
    });
    afterAll(async () => {
      await started?.close();
    });

    const streamsGone = (): Promise<void> => vi.waitFor(() => expect(fast.context.httpStreams.size).toBe(0), { timeout: 3000, interval: 25 });

    it('answers STREAM_EXPIRED as a Hrana error body and rolls back the idle transaction', async () => {
      await ok([exec('CREATE TABLE exp_t (x)'), { type: 'close' }], null, 3, url);
      const open = await ok([exec('BEGIN'), exec('INSERT INTO exp_t VALUES (1)')], null, 3, url);
      await streamsGone();
      const r = await pipe([exec('SELECT 1')], open.baton, 3, url);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text)).toEqual({ message: 'The stream has expired due to inactivity', code: 'STREAM_EXPIRED' });
      const after = await ok([exec('INSERT INTO exp_t VALUES (2)'), exec('SELECT group_concat(x) FROM exp_t'), { type: 'close' }], null, 3, url);
      expect(stmtResult(after.results[1]).rows).toEqual([[{ type: 'text', value: '2' }]]);
      // exactly `application/json`, as sqld's axum Json sends it: hrana-client reads the code only then
      expect(r.type).toBe('application/json');
    });

    it('@libsql/client surfaces it with code STREAM_EXPIRED', async () => {
      const client = createClient({ url, intMode: 'bigint' });
      try {
        const tx = await client.transaction('write');
        await tx.execute('SELECT 1');
        await streamsGone();
        const err: unknown = await tx.execute('SELECT 2').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(LibsqlError);
        expect((err as LibsqlError).code).toBe('STREAM_EXPIRED');
      } finally {
        client.close();
      }
    });
  });
});

describe('content type', () => {
  it.each(['', 'aé', 'x y', '??', 'application/json', 'text/plain; charset=utf-8'])('is ignored as in sqld, even when it does not parse: %j', async (type) => {
    for (const path of ['/v2/pipeline', '/v1/execute', '/']) {
      const body = path === '/v2/pipeline' ? { baton: null, requests: [{ type: 'close' }] } : path === '/' ? { statements: ['SELECT 1'] } : { stmt: { sql: 'SELECT 1' } };
      const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(body) });
      expect(res.status, `${path} ${await res.text()}`).toBe(200);
    }
  });
});
