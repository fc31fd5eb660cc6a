import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

const CREDENTIAL = 'dXNlcjpwYXNzd29yZA==';
const AUTH = { authorization: `Basic ${CREDENTIAL}` };

interface Answer {
  status: number;
  type: string;
  text: string;
  body: unknown;
}

let srv: TestServer;

function post(path: string, body: unknown, headers: Record<string, string> = AUTH): Promise<Answer> {
  return postJson(`${srv.url}${path}`, body, headers);
}

function legacy(statements: unknown[]): Promise<Answer> {
  return post('/', { statements });
}

/** Rows of the first result of a legacy answer. */
function rowsOf(a: Answer, i = 0): unknown[][] {
  const entry = (a.body as { results: { rows: unknown[][] } }[])[i];
  return entry!.results.rows;
}

async function expectServing(): Promise<void> {
  const a = await legacy(['SELECT 1']);
  expect(a.status).toBe(200);
  expect(rowsOf(a)).toEqual([[1]]);
}

beforeAll(async () => {
  srv = await startTestServer({ 'http-auth': `basic:${CREDENTIAL}` });
});

afterAll(async () => {
  await srv.close();
});

describe('compose example: POST / then /v1/execute with basic auth', () => {
  it('creates books and counts them through an array-form Stmt', async () => {
    const created = await legacy([
      'CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT)',
      "INSERT INTO books (title) VALUES ('Dune'), ('Emma'), ('Ulysses')",
    ]);
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject([{ results: { columns: [], rows: [] } }, { results: { rows_written: 3 } }]);

    const count = await post('/v1/execute', '{"stmt": ["SELECT COUNT(1) FROM books"]}');
    expect(count.status).toBe(200);
    expect(count.body).toMatchObject({
      result: { cols: [{ name: 'COUNT(1)' }], rows: [[{ type: 'integer', value: '3' }]], affected_row_count: 0 },
    });
  });

  it('rejects missing and wrong credentials with 401', async () => {
    const missing = await post('/v1/execute', { stmt: ['SELECT 1'] }, {});
    expect(missing.status).toBe(401);
    expect((missing.body as { error: string }).error).toMatch(/^Unauthorized: /);
    const wrong = await post('/v1/execute', { stmt: ['SELECT 1'] }, { authorization: 'Basic d3Jvbmc6Y3JlZHM=' });
    expect(wrong.status).toBe(401);
    expect((wrong.body as { error: string }).error).toMatch(/^Unauthorized: /);
    const legacyMissing = await post('/', { statements: ['SELECT 1'] }, {});
    expect(legacyMissing.status).toBe(401);
  });
});

describe('POST / (legacy)', () => {
  it("gives Appendix A's documented shape", async () => {
    const a = await legacy(['CREATE TABLE foo (x INT)', 'INSERT INTO foo VALUES (42)', { q: 'SELECT * FROM foo WHERE x = ?', params: [42] }]);
    expect(a.status).toBe(200);
    expect(a.type).toMatch(/^application\/json/);
    const body = a.body as { results: Record<string, unknown> }[];
    expect(body).toHaveLength(3);
    for (const entry of body) {
      expect(Object.keys(entry.results)).toEqual(['columns', 'rows', 'rows_read', 'rows_written', 'query_duration_ms']);
      expect(typeof entry.results.query_duration_ms).toBe('number');
    }
    expect(body[1]!.results).toMatchObject({ columns: [], rows: [], rows_written: 1 });
    expect(body[2]!.results).toMatchObject({ columns: ['x'], rows: [[42]], rows_written: 0 });
  });

  it('binds positional and named parameters and legacy value types', async () => {
    const a = await legacy([
      { q: 'SELECT ?, ?, ?, ?, ?', params: [1, 'two', 3.5, true, null] },
      { q: 'SELECT :a, @b, $c', params: { ':a': 'full', b: 'bare', $c: false } },
      { q: 'SELECT ?2, ?1', params: [10, 20] },
    ]);
    expect(a.status).toBe(200);
    expect(rowsOf(a, 0)).toEqual([[1, 'two', 3.5, 1, null]]);
    expect(rowsOf(a, 1)).toEqual([['full', 'bare', 0]]);
    expect(rowsOf(a, 2)).toEqual([[20, 10]]);
    // a JSON real stays a real, spelled like sqld does
    const real = await post('/', '{"statements":[{"q":"SELECT ?1, typeof(?1), 2.0 * 1, 1e20, 1.5e-7","params":[1.0]},{"q":"SELECT typeof(?)","params":[1]}]}');
    expect(real.text).toContain('"rows":[[1.0,"real",2.0,1e20,1.5e-7]]');
    expect(rowsOf(real, 1)).toEqual([['integer']]);
  });

  it('round-trips blobs as unpadded base64', async () => {
    const a = await legacy([{ q: 'SELECT ?1, length(?1), typeof(?1)', params: [{ base64: 'aGVsbG8K' }] }, "SELECT x'00ff'"]);
    expect(a.status).toBe(200);
    expect(rowsOf(a, 0)).toEqual([[{ base64: 'aGVsbG8K' }, 6, 'blob']]);
    expect(rowsOf(a, 1)).toEqual([[{ base64: 'AP8' }]]);
  });

  it('keeps 64-bit integers exact both ways', async () => {
    const body = '{"statements":["CREATE TABLE big (v INTEGER)",{"q":"INSERT INTO big VALUES (?), (?)","params":[9223372036854775807,-9223372036854775808]},"SELECT v, typeof(v) FROM big"]}';
    const a = await post('/', body);
    expect(a.status).toBe(200);
    expect(a.text).toContain('"rows":[[9223372036854775807,"integer"],[-9223372036854775808,"integer"]]');
    // a u64 above i64::MAX wraps around, as in sqld
    const wrapped = await post('/', '{"statements":[{"q":"SELECT ?","params":[18446744073709551615]}]}');
    expect(wrapped.text).toContain('"rows":[[-1]]');
  });

  it('reports a failing statement, skips the rest and rolls back', async () => {
    await legacy(['CREATE TABLE u (x INTEGER UNIQUE)', 'INSERT INTO u VALUES (1)']);
    const a = await legacy(['BEGIN', 'INSERT INTO u VALUES (2)', 'INSERT INTO u VALUES (1)', 'COMMIT']);
    expect(a.status).toBe(200);
    const body = a.body as unknown[];
    expect(body[0]).toHaveProperty('results');
    expect(body[1]).toHaveProperty('results');
    expect(body[2]).toEqual({ error: 'UNIQUE constraint failed: u.x' });
    expect(body[3]).toBeNull();
    const after = await legacy(['SELECT x FROM u ORDER BY x']);
    expect(rowsOf(after)).toEqual([[1]]);
    // the hidden rollback left no transaction (nor write lock) behind
    const again = await legacy(['INSERT INTO u VALUES (3)']);
    expect(again.body).toMatchObject([{ results: { rows_written: 1 } }]);
  });

  it('rejects an unclosed transaction without running anything', async () => {
    await legacy(['CREATE TABLE t_open (x)']);
    const a = await legacy(['BEGIN', 'INSERT INTO t_open VALUES (1)']);
    expect(a.status).toBe(400);
    expect(a.body).toEqual({ error: 'Query error: `interactive transaction not allowed in HTTP queries`' });
    expect(rowsOf(await legacy(['SELECT count(*) FROM t_open']))).toEqual([[0]]);
    const closed = await legacy(['BEGIN', 'INSERT INTO t_open VALUES (1)', 'COMMIT']);
    expect(closed.status).toBe(200);
    expect(rowsOf(await legacy(['SELECT count(*) FROM t_open']))).toEqual([[1]]);
  });

  it('rejects several commands in one string, RELEASE and ROLLBACK TO', async () => {
    const many = await legacy(['SELECT 1; SELECT 2']);
    expect(many.status).toBe(400);
    expect(many.body).toEqual({
      error: 'Failed to parse query: `found more than one command in a single statement string. It is allowed to issue only one command per string.`',
    });
    const savepointError = { error: 'Query error: `savepoints are not supported in HTTP API, use hrana protocol instead`' };
    const release = await legacy(['SAVEPOINT s', 'RELEASE s']);
    expect(release.status).toBe(400);
    expect(release.body).toEqual(savepointError);
    const rollbackTo = await legacy(['SAVEPOINT s', 'ROLLBACK TO s', 'RELEASE s']);
    expect(rollbackTo.body).toEqual(savepointError);
  });

  it('answers a syntax error with 500, like sqld', async () => {
    const a = await legacy(['SELEC 1']);
    expect(a.status).toBe(500);
    expect((a.body as { error: string }).error).toMatch(/^Internal Error: `.*syntax error.*`$/);
  });

  it('rejects malformed JSON (400) and a bad shape (422) as text', async () => {
    const bad = await post('/', '{"statements": [');
    expect(bad.status).toBe(400);
    expect(bad.type).toMatch(/^text\/plain/);
    expect(bad.text).toMatch(/^Failed to parse the request body as JSON: EOF while parsing/);
    const shape = await post('/', { statements: [{ q: 'SELECT 1', extra: 1 }] });
    expect(shape.status).toBe(422);
    expect(shape.text).toBe('Failed to deserialize the JSON body into the target type: statements[0]: unknown field `extra`, expected `q` or `params`');
    const missing = await post('/', { queries: [] });
    expect(missing.status).toBe(422);
    expect(missing.text).toMatch(/missing field `statements`/);
    await expectServing();
  });

  it('answers 413 to a body over 2 MB and keeps serving', async () => {
    const big = { statements: [`SELECT '${'x'.repeat(2 * 1024 * 1024)}'`] };
    const a = await post('/', big);
    expect(a.status).toBe(413);
    await expectServing();
  });

  it('accepts replication_index on a primary', async () => {
    const a = await post('/', { statements: ['SELECT 1'], replication_index: 5 });
    expect(a.status).toBe(200);
    expect(rowsOf(a)).toEqual([[1]]);
  });
});

describe('POST /v1/execute and /v1/batch', () => {
  it('runs a batch with conditions', async () => {
    const a = await post('/v1/batch', {
      batch: {
        steps: [
          { stmt: { sql: 'CREATE TABLE vb (x INTEGER PRIMARY KEY)' } },
          { condition: { type: 'ok', step: 0 }, stmt: { sql: 'INSERT INTO vb VALUES (1)' } },
          { condition: { type: 'ok', step: 1 }, stmt: { sql: 'INSERT INTO vb VALUES (1)' } },
          { condition: { type: 'error', step: 2 }, stmt: { sql: 'SELECT count(*) FROM vb' } },
          { condition: { type: 'ok', step: 2 }, stmt: { sql: 'SELECT 42' } },
        ],
      },
    });
    expect(a.status).toBe(200);
    const result = (a.body as { result: { step_results: unknown[]; step_errors: unknown[] } }).result;
    expect(result.step_results[0]).not.toBeNull();
    expect(result.step_results[2]).toBeNull();
    expect(result.step_errors[2]).toMatchObject({ code: 'SQLITE_CONSTRAINT' });
    expect(result.step_results[3]).toMatchObject({ rows: [[{ type: 'integer', value: '1' }]] });
    expect(result.step_results[4]).toBeNull();
    expect(result.step_errors[4]).toBeNull();
  });

  it('accepts array forms of Batch, BatchStep and NamedArg', async () => {
    const a = await post('/v1/batch', { batch: [[[null, ['SELECT :v', null, [], [[':v', { type: 'text', value: 'hi' }]]]]]] });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ result: { step_results: [{ rows: [[{ type: 'text', value: 'hi' }]] }] } });
  });

  it('answers a constraint error with 500 and a Hrana error body', async () => {
    await post('/v1/execute', { stmt: { sql: 'CREATE TABLE ve (x INTEGER PRIMARY KEY)' } });
    await post('/v1/execute', { stmt: { sql: 'INSERT INTO ve VALUES (1)' } });
    const a = await post('/v1/execute', { stmt: { sql: 'INSERT INTO ve VALUES (1)' } });
    expect(a.status).toBe(500);
    expect(a.body).toMatchObject({ code: 'SQLITE_CONSTRAINT' });
    expect(typeof (a.body as { message: unknown }).message).toBe('string');
  });

  it('maps statement errors to v1 statuses', async () => {
    const parse = await post('/v1/execute', { stmt: { sql: 'SELEC 1' } });
    expect(parse.status).toBe(400);
    expect(parse.body).toMatchObject({ code: 'SQL_PARSE_ERROR' });
    const both = await post('/v1/execute', { stmt: { sql: 'SELECT ?', args: [{ type: 'null' }], named_args: [{ name: 'a', value: { type: 'null' } }] } });
    expect(both.status).toBe(501);
    // a batch step that does not parse fails the whole request, as sqld converts all steps first
    const batch = await post('/v1/batch', { batch: { steps: [{ stmt: { sql: 'SELECT 1' } }, { stmt: { sql: 'SELEC 2' } }] } });
    expect(batch.status).toBe(400);
    expect(batch.body).toMatchObject({ code: 'SQL_PARSE_ERROR' });
  });

  it('rejects sql_id and is_autocommit (hrana1) and bad JSON with 400 text', async () => {
    const sqlId = await post('/v1/execute', { stmt: { sql_id: 1 } });
    expect(sqlId.status).toBe(400);
    expect(sqlId.type).toMatch(/^text\/plain/);
    const cond = await post('/v1/batch', { batch: { steps: [{ stmt: { sql: 'SELECT 1' } }, { condition: { type: 'is_autocommit' }, stmt: { sql: 'SELECT 2' } }] } });
    expect(cond.status).toBe(400);
    const bad = await post('/v1/execute', '{"stmt":');
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/^Cannot deserialize client message from JSON: /);
    const nostmt = await post('/v1/execute', {});
    expect(nostmt.status).toBe(400);
    await expectServing();
  });
});
