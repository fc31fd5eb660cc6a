import { createClient, type Client } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer();
  client = createClient({ url: server.url });
  await client.execute('CREATE TABLE t (x INTEGER)');
});

afterAll(async () => {
  client.close();
  await server.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

describe('statements that would undermine the engine are refused, as sqld refuses them', () => {
  it('refuses switching the journal mode and keeps capturing frames', async () => {
    expect(await codeOf(client.execute('PRAGMA journal_mode = DELETE'))).toBe('SQL_PARSE_ERROR');
    expect((await client.execute('PRAGMA journal_mode')).rows[0]?.[0]).toBe('wal');
    const before = (await server.server.context.namespaces.get('default')).replicationIndex();
    await client.execute('INSERT INTO t VALUES (1)');
    const after = (await server.server.context.namespaces.get('default')).replicationIndex();
    expect(after).not.toBeNull();
    expect(after! > (before ?? -1n)).toBe(true);
  });

  it('refuses checkpoints, auto-checkpoint changes, VACUUM INTO and temp tables', async () => {
    expect(await codeOf(client.execute('PRAGMA wal_checkpoint(TRUNCATE)'))).toBe('SQL_PARSE_ERROR');
    expect(await codeOf(client.execute('PRAGMA wal_autocheckpoint = 1'))).toBe('SQL_PARSE_ERROR');
    expect(await codeOf(client.execute("VACUUM INTO '/tmp/should-not-exist.db'"))).toBe('SQL_PARSE_ERROR');
    expect(await codeOf(client.execute('CREATE TEMP TABLE tt (a)'))).toBe('SQL_PARSE_ERROR');
  });

  it('answers ATTACH with 403 like a namespace that does not allow attach', async () => {
    const res = await fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: "ATTACH '/tmp/x.db' AS x" } }, { type: 'close' }] }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "Authorization forbidden: Namespace `/tmp/x.db` doesn't allow attach" });
    expect((await client.execute('SELECT count(*) FROM t')).rows.length).toBe(1);
  });
});
