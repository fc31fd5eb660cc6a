import { createClient, LibsqlError, type Client, type InArgs } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * sqld's parameter binding (spec §4.7) against a real server: `?NNN` with holes, mixed `?` and `?NNN`,
 * surplus and missing values, named parameters; through `@libsql/client` over HTTP and through raw
 * Hrana pipelines on `/v2/pipeline`.
 */

let srv: TestServer;
let client: Client;

beforeAll(async () => {
  srv = await startTestServer();
  client = createClient({ url: srv.url, intMode: 'bigint' });
});

afterAll(async () => {
  client?.close();
  await srv?.close();
});

interface StreamResult {
  type: 'ok' | 'error';
  response?: { type: string; result?: { rows: { type: string; value?: unknown }[][] } };
  error?: { message: string; code: string };
}

const text = (value: string) => ({ type: 'text', value });

/** One `execute` on `/v2/pipeline` (then `close`); returns the execute's result after checking the HTTP level. */
async function pipelineExecute(stmt: Record<string, unknown>): Promise<StreamResult> {
  const r = await postJson(`${srv.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt }, { type: 'close' }] });
  expect(r.status, r.text).toBe(200);
  const results = (r.body as { results: StreamResult[] }).results;
  expect(results).toHaveLength(2);
  expect(results[1]?.type, r.text).toBe('ok');
  return results[0]!;
}

/** The values of the one row an ok execute result holds. */
function onlyRow(r: StreamResult): unknown[] {
  expect(r.type, JSON.stringify(r)).toBe('ok');
  const rows = r.response?.result?.rows ?? [];
  expect(rows).toHaveLength(1);
  return rows[0]!.map((v) => v.value ?? null);
}

async function clientRow(sql: string, args: InArgs): Promise<unknown[]> {
  const rs = await client.execute({ sql, args });
  expect(rs.rows).toHaveLength(1);
  return Array.from(rs.rows[0]!);
}

async function clientError(sql: string, args: InArgs): Promise<LibsqlError> {
  const err: unknown = await client.execute({ sql, args }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LibsqlError);
  return err as LibsqlError;
}

describe('?NNN with holes', () => {
  it('@libsql/client: an index the SQL never uses still takes its positional value', async () => {
    expect(await clientRow('SELECT ?3, ?1', ['one', 'two', 'three'])).toEqual(['three', 'one']);
    expect(await clientRow('SELECT ?2 || ?5', ['a', 'b', 'c', 'd', 'e'])).toEqual(['be']);
  });

  it('/v2/pipeline: SELECT ?3, ?1 answers ["three","one"]', async () => {
    const r = await pipelineExecute({ sql: 'SELECT ?3, ?1', args: [text('one'), text('two'), text('three')] });
    expect(onlyRow(r)).toEqual(['three', 'one']);
  });
});

describe('mixed ? and ?NNN', () => {
  it('@libsql/client: a bare ? takes one more than the largest index so far', async () => {
    expect(await clientRow('SELECT ?2, ?, ?3', ['one', 'two', 'three'])).toEqual(['two', 'three', 'three']);
    expect(await clientRow('SELECT ?, ?1, ?', ['a', 'b'])).toEqual(['a', 'a', 'b']);
  });

  it('/v2/pipeline: SELECT ?2, ?, ?3 answers ["two","three","three"]', async () => {
    const r = await pipelineExecute({ sql: 'SELECT ?2, ?, ?3', args: [text('one'), text('two'), text('three')] });
    expect(onlyRow(r)).toEqual(['two', 'three', 'three']);
  });
});

describe('too many and too few values', () => {
  it('@libsql/client: ARGS_INVALID with sqld texts', async () => {
    const many = await clientError('SELECT ?3, ?1', ['one', 'two', 'three', 'four']);
    expect(many.code).toBe('ARGS_INVALID');
    expect(many.message).toContain('too many parameters, expected 3 found 4');
    const hole = await clientError('SELECT ?3, ?1', ['one']);
    expect(hole.code).toBe('ARGS_INVALID');
    expect(hole.message).toContain('value for parameter 2 not found');
    const numbered = await clientError('SELECT ?1, ?3, ?2', ['one', 'two']);
    expect(numbered.code).toBe('ARGS_INVALID');
    expect(numbered.message).toContain('value for parameter ?3 not found');
  });

  it('/v2/pipeline: the execute fails with ARGS_INVALID and the exact message, the stream still closes', async () => {
    const hole = await pipelineExecute({ sql: 'SELECT ?3, ?1', args: [text('one')] });
    expect(hole).toEqual({ type: 'error', error: { message: 'value for parameter 2 not found', code: 'ARGS_INVALID' } });
    const many = await pipelineExecute({ sql: 'SELECT ?3, ?1', args: [text('1'), text('2'), text('3'), text('4')] });
    expect(many).toEqual({ type: 'error', error: { message: 'too many parameters, expected 3 found 4', code: 'ARGS_INVALID' } });
    const numbered = await pipelineExecute({ sql: 'SELECT ?1, ?3, ?2', args: [text('one'), text('two')] });
    expect(numbered).toEqual({ type: 'error', error: { message: 'value for parameter ?3 not found', code: 'ARGS_INVALID' } });
  });
});

describe('named parameters', () => {
  it('@libsql/client: :a, @b, $c by bare and full name; a missing one by its full name', async () => {
    expect(await clientRow('SELECT :a, @b, $c', { a: 'x', b: 'y', c: 'z' })).toEqual(['x', 'y', 'z']);
    expect(await clientRow('SELECT :a, @b, $c', { ':a': 'x', '@b': 'y', $c: 'z' })).toEqual(['x', 'y', 'z']);
    const err = await clientError('SELECT :a, :b', { a: 'x' });
    expect(err.code).toBe('ARGS_INVALID');
    expect(err.message).toContain('value for parameter :b not found');
  });

  it('/v2/pipeline: named_args bind, a missing one is ARGS_INVALID', async () => {
    const ok = await pipelineExecute({ sql: 'SELECT :a, $b', named_args: [{ name: 'a', value: text('x') }, { name: '$b', value: text('y') }] });
    expect(onlyRow(ok)).toEqual(['x', 'y']);
    const missing = await pipelineExecute({ sql: 'SELECT :a, :b', named_args: [{ name: 'a', value: text('x') }] });
    expect(missing).toEqual({ type: 'error', error: { message: 'value for parameter :b not found', code: 'ARGS_INVALID' } });
  });
});
