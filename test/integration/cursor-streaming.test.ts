/**
 * Cursors in bounded fetches (docs/LIMITS.md "Cursors"): a cursor returns more than
 * --max-response-size in all, rows are read only as fast as the client takes them (an endless
 * query can be read from and left), and a cursor nobody reads closes, giving back the read snapshot
 * that held checkpoints back.
 */
import { createClient, type Client } from '@libsql/client';
import { afterEach, describe, expect, it } from 'vitest';
import { overrideCursorLimits } from '../../src/server/hrana/cursor.js';
import { framesOf } from '../helpers/engine-log.js';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

let srv: TestServer | null = null;
let client: Client | null = null;
let restore: (() => void) | null = null;

afterEach(async () => {
  restore?.();
  restore = null;
  client?.close();
  client = null;
  await srv?.close();
  srv = null;
});

const ENDLESS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, (SELECT max(id) FROM t) FROM c';

async function start(flags: Record<string, string> = {}): Promise<TestServer> {
  srv = await startTestServer(flags);
  client = createClient({ url: srv.url });
  await client.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  return srv;
}

/** Opens `/v3/cursor` on `sql` and returns the response with its body reader. */
async function openCursor(s: TestServer, sql: string, signal?: AbortSignal): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const res = await fetch(`${s.url}/v3/cursor`, { method: 'POST', body: JSON.stringify({ baton: null, batch: { steps: [{ stmt: { sql } }] } }), ...(signal ? { signal } : {}) });
  expect(res.status).toBe(200);
  return res.body!.getReader();
}

/** Reads until `lines` complete lines arrived. */
async function readLines(reader: ReadableStreamDefaultReader<Uint8Array>, lines: number): Promise<string[]> {
  let text = '';
  const decoder = new TextDecoder();
  while (text.split('\n').length - 1 < lines) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text.split('\n').slice(0, lines);
}

describe('cursors', () => {
  it('return more than --max-response-size in all, while a pipeline with the same query is refused', async () => {
    const s = await start({ 'max-response-size': '64KB' });
    await client!.execute({ sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) INSERT INTO t (v) SELECT printf('%0100d', x) FROM c", args: [] });
    const whole = await postJson(`${s.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT v FROM t' } }, { type: 'close' }] });
    expect(whole.text).toContain('RESPONSE_TOO_LARGE');
    const reader = await openCursor(s, 'SELECT id, v FROM t ORDER BY id');
    const lines = (await readLines(reader, 1 + 1 + 3000 + 2)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[1]).toMatchObject({ type: 'step_begin', step: 0 });
    const rows = lines.filter((l) => l.type === 'row');
    expect(rows).toHaveLength(3000);
    expect(rows.at(-1)).toMatchObject({ row: [{ type: 'integer', value: '3000' }, { type: 'text' }] });
    expect(lines.at(-2)).toMatchObject({ type: 'step_end' });
    expect(lines.at(-1)).toMatchObject({ type: 'replication_index' });
  });

  it('read an endless query only as fast as the client takes it; leaving it frees the stream and the server', async () => {
    const s = await start({ 'max-response-size': '1GB' });
    const ac = new AbortController();
    const reader = await openCursor(s, ENDLESS, ac.signal);
    const lines = await readLines(reader, 2000);
    expect(JSON.parse(lines[1]!)).toMatchObject({ type: 'step_begin' });
    expect(JSON.parse(lines[1999]!)).toMatchObject({ type: 'row' });
    ac.abort();
    await reader.cancel().catch(() => undefined);
    // The server answers, writes go through and a checkpoint completes: no snapshot is left behind.
    await client!.execute("INSERT INTO t (v) VALUES ('after')");
    const ns = await s.server.context.namespaces.get('default');
    await expect.poll(() => framesOf(ns).checkpoint(), { timeout: 5000 }).toBe(true);
    expect((await client!.execute('SELECT count(*) AS n FROM t')).rows[0]?.n).toBe(1);
  });

  it('close when the client stops reading for the idle time, so checkpoints are no longer held back', async () => {
    restore = overrideCursorLimits({ idleMs: 300 });
    const s = await start({ 'max-response-size': '1GB' });
    await client!.execute("INSERT INTO t (v) VALUES ('before')");
    const reader = await openCursor(s, ENDLESS);
    await readLines(reader, 100);
    // The cursor's snapshot predates this write: until it closes, a checkpoint cannot take it in.
    await client!.execute("INSERT INTO t (v) VALUES ('while open')");
    const ns = await s.server.context.namespaces.get('default');
    await expect.poll(() => framesOf(ns).checkpoint(), { timeout: 5000 }).toBe(true);
    await reader.cancel().catch(() => undefined);
    expect((await client!.execute('SELECT count(*) AS n FROM t')).rows[0]?.n).toBe(2);
  });
});
