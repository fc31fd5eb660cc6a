/**
 * Hrana over HTTP pipelines run synchronously until a request has to wait (docs/PERFORMANCE.md,
 * "The synchronous path"): what follows the wait still runs in order, with the same errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

interface StreamResult {
  type: 'ok' | 'error';
  response?: { type: string; result?: { rows: unknown[][] } };
}
interface PipelineBody {
  baton: string | null;
  results: StreamResult[];
}

let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const exec = (sql: string): unknown => ({ type: 'execute', stmt: { sql } });
const CLOSE = { type: 'close' };
const int = (v: number): unknown => ({ type: 'integer', value: String(v) });

async function pipe(requests: unknown[], baton: string | null = null): Promise<{ status: number; text: string; body: PipelineBody }> {
  const r = await postJson(`${srv.url}/v3/pipeline`, { baton, requests });
  return { status: r.status, text: r.text, body: r.body as PipelineBody };
}

async function ok(requests: unknown[], baton: string | null = null): Promise<PipelineBody> {
  const r = await pipe(requests, baton);
  expect(r.status, r.text).toBe(200);
  return r.body;
}

function rows(r: StreamResult | undefined): unknown[][] | undefined {
  expect(r?.type, JSON.stringify(r)).toBe('ok');
  return r?.response?.result?.rows;
}

describe('a pipeline that has to wait part way', () => {
  it('a write waiting for the lock: what follows runs after it, in order; a protocol error after the wait still aborts the request', async () => {
    await ok([exec('CREATE TABLE wait_t (x)'), CLOSE]);
    const holder = await ok([exec('BEGIN IMMEDIATE'), exec('INSERT INTO wait_t VALUES (1)')]);
    // Its read runs at once, its INSERT waits for the holder's lock, the rest after it.
    const waiting = pipe([exec('SELECT count(*) FROM wait_t'), exec('INSERT INTO wait_t VALUES (2)'), exec('SELECT count(*) FROM wait_t'), { type: 'no_such_request' }]);
    // The holder's stream is idle between its requests: the one busy stream is the waiting pipeline.
    await expect.poll(() => srv.server.context.httpStreams.diagnostics().filter((d) => d === 'acquired').length).toBe(1);
    const committed = await ok([exec('COMMIT'), CLOSE], holder.baton);
    expect(committed.results.map((r) => r.type)).toEqual(['ok', 'ok']);
    const aborted = await waiting;
    expect([aborted.status, aborted.text]).toEqual([400, expect.stringMatching(/Unknown request type/)]);
    // The INSERT before the protocol error ran (in autocommit); the stream was destroyed.
    expect(srv.server.context.httpStreams.size).toBe(0);
    const after = await ok([exec('SELECT x FROM wait_t ORDER BY x'), CLOSE]);
    expect(rows(after.results[0])).toEqual([[int(1)], [int(2)]]);
  });

  it('a transaction in one pipeline: every result in order, the stream closed at the end', async () => {
    await ok([exec('CREATE TABLE order_t (x)'), exec('INSERT INTO order_t VALUES (1)'), CLOSE]);
    const body = await ok([exec('SELECT count(*) FROM order_t'), exec('BEGIN IMMEDIATE'), exec('INSERT INTO order_t VALUES (2)'), exec('ROLLBACK'), exec('SELECT count(*) FROM order_t'), CLOSE]);
    expect(body.results.map((r) => r.type)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect([rows(body.results[0]), rows(body.results[4])]).toEqual([[[int(1)]], [[int(1)]]]);
    expect(body.baton).toBeNull();
  });
});
