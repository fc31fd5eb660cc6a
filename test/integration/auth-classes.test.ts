/**
 * sqld's authorisation classes (spec §3.7, §4.7) where they differ from SQLite's read-only flag: a
 * read-only principal may BEGIN IMMEDIATE (it runs deferred and read-only, without the write lock),
 * and may not run the pragmas sqld classes as writes (`foreign_keys = OFF`, `user_version`).
 */
import { generateKeyPairSync } from 'node:crypto';
import { createClient, type Client } from '@libsql/client';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
let server: TestServer;
let writer: Client;
let reader: Client;
let readOnlyToken: string;

interface Result {
  type: string;
  response?: { result?: { rows?: unknown[][] } };
  error?: { message: string; code?: string };
}

beforeAll(async () => {
  server = await startTestServer({}, { SQLD_AUTH_JWT_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString() });
  const sign = (claims: Record<string, unknown>): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(privateKey);
  writer = createClient({ url: server.url, authToken: await sign({}) });
  readOnlyToken = await sign({ a: 'ro' });
  reader = createClient({ url: server.url, authToken: readOnlyToken });
  await writer.execute('CREATE TABLE t (x INTEGER)');
  await writer.execute('INSERT INTO t VALUES (1)');
});

afterAll(async () => {
  reader.close();
  writer.close();
  await server.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `${e.code ?? ''} ${e.message ?? String(err)}`;
  }
}

describe('authorisation classes', () => {
  it('a read-only BEGIN IMMEDIATE reads and holds no write lock (a writer commits meanwhile)', async () => {
    const pipeline = async (baton: string | null, sqls: string[], close: boolean): Promise<{ baton: string | null; results: Result[] }> => {
      const requests: object[] = sqls.map((sql) => ({ type: 'execute', stmt: { sql } }));
      if (close) requests.push({ type: 'close' });
      const res = await fetch(`${server.url}/v2/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${readOnlyToken}` }, body: JSON.stringify({ baton, requests }) });
      expect(res.status).toBe(200);
      return (await res.json()) as { baton: string | null; results: Result[] };
    };
    const opened = await pipeline(null, ['BEGIN IMMEDIATE', 'SELECT count(*) FROM t'], false);
    expect(opened.results.map((r) => r.type)).toEqual(['ok', 'ok']);
    // The transaction is open on the reader's stream; a writer is not kept waiting for it.
    await writer.execute('INSERT INTO t VALUES (2)');
    const inside = await pipeline(opened.baton, ['SELECT count(*) FROM t', 'COMMIT'], true);
    expect(inside.results.map((r) => r.type)).toEqual(['ok', 'ok', 'ok']);
    // Its snapshot began with its first read, before the writer's insert: a deferred read transaction.
    expect(inside.results[0]?.response?.result?.rows?.[0]?.[0]).toEqual({ type: 'integer', value: '1' });
    expect((await writer.execute('SELECT count(*) AS n FROM t')).rows[0]?.n).toBe(2);
  });

  it('a read-only principal may not run the pragmas sqld classes as writes, but may read the schema', async () => {
    expect(await codeOf(reader.execute('PRAGMA foreign_keys = OFF'))).toMatch(/FORBIDDEN|403/);
    expect(await codeOf(reader.execute('PRAGMA user_version'))).toMatch(/FORBIDDEN|403/);
    expect(await codeOf(reader.execute('PRAGMA integrity_check'))).toMatch(/FORBIDDEN|403/);
    expect((await reader.execute('PRAGMA table_list')).rows.length).toBeGreaterThan(0);
    expect((await reader.execute('PRAGMA schema_version')).rows.length).toBe(1);
    expect(await codeOf(reader.execute('INSERT INTO t VALUES (3)'))).toMatch(/FORBIDDEN|403/);
    // The full-access principal runs all of them.
    expect(await codeOf(writer.execute('PRAGMA user_version'))).toBe('no error');
    expect(await codeOf(writer.execute('PRAGMA foreign_keys = OFF'))).toBe('no error');
  });
});
