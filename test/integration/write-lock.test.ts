import { createClient, type Client } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const TXN_TIMEOUT_MS = 300;
let server: TestServer;
let url: string;
const clients: Client[] = [];

function client(): Client {
  const c = createClient({ url });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  // sqld's transaction timeout is 5 s; a short one keeps this test fast without changing the logic.
  const started = await startTestServer({}, {}, { txnTimeoutMs: TXN_TIMEOUT_MS });
  server = started;
  url = started.url;
  await client().execute('CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)');
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server.close();
});

describe('write lock', () => {
  it('reads never wait for an open write transaction', async () => {
    const writer = await client().transaction('write');
    await writer.execute("INSERT INTO t (who) VALUES ('open-writer')");
    // If reads queued behind the writer this would never resolve (the writer is not committed yet).
    const rs = await client().execute('SELECT count(*) AS n FROM t');
    expect(Number(rs.rows[0]?.n)).toBe(0);
    await writer.commit();
    const after = await client().execute('SELECT count(*) AS n FROM t');
    expect(Number(after.rows[0]?.n)).toBe(1);
  });

  it('a holder that overstays while another writer waits is rolled back with TRANSACTION_TIMEOUT', async () => {
    const holder = await client().transaction('write');
    await holder.execute("INSERT INTO t (who) VALUES ('overstaying')");
    const started = Date.now();
    // This autocommit write has to wait for the lock; it gets it once the holder is preempted.
    await client().execute("INSERT INTO t (who) VALUES ('waiter')");
    expect(Date.now() - started).toBeGreaterThanOrEqual(TXN_TIMEOUT_MS - 50);
    let code = 'no error';
    try {
      await holder.execute('SELECT 1');
    } catch (err) {
      code = (err as { code?: string }).code ?? 'no code';
    }
    expect(code).toBe('TRANSACTION_TIMEOUT');
    holder.close();
    const rows = await client().execute("SELECT who FROM t WHERE who IN ('overstaying', 'waiter') ORDER BY id");
    expect(rows.rows.map((r) => r.who)).toEqual(['waiter']);
  });

  it('a holder nobody waits for keeps its transaction past the timeout', async () => {
    const holder = await client().transaction('write');
    await holder.execute("INSERT INTO t (who) VALUES ('patient')");
    // Wait for an event that takes longer than the timeout: a read-only round trip loop bounded by time.
    const deadline = Date.now() + TXN_TIMEOUT_MS * 2;
    const reader = client();
    while (Date.now() < deadline) await reader.execute('SELECT 1');
    await holder.commit();
    const rows = await client().execute("SELECT count(*) AS n FROM t WHERE who = 'patient'");
    expect(Number(rows.rows[0]?.n)).toBe(1);
  });
});
