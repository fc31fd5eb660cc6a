/**
 * sqld's admin shell service on the admin port (spec §10): gRPC over h2c next to the admin API's
 * HTTP/1.1 on the same port. sqld's `admin-shell` is a Rust binary that cannot run here; our own
 * HTTP/2 client (test/helpers/admin-shell-client.ts) speaks the same protocol from our .proto.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, type AdminTestServer, createNamespace, startAdminServer } from '../helpers/admin.js';
import { openShell } from '../helpers/admin-shell-client.js';

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
  await createNamespace(srv, 'shop');
});

afterAll(async () => {
  await srv?.close();
});

describe('admin shell over h2c', () => {
  it('runs queries on the namespace in one session, typed values back, errors as text; HTTP/1.1 still answers on the port', async () => {
    const shell = await openShell(srv.adminUrl, { namespace: 'shop', auth: ADMIN_KEY });
    try {
      expect(await shell.query('CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, pic BLOB)')).toEqual({ rows: [] });
      expect(await shell.query('BEGIN')).toEqual({ rows: [] });
      await shell.query("INSERT INTO item VALUES (1, 'pen', 1.5, x'00ff'), (2, NULL, NULL, NULL)");
      expect(await shell.query('COMMIT')).toEqual({ rows: [] });
      expect(await shell.query('SELECT id, name, price, pic FROM item ORDER BY id')).toEqual({
        rows: [
          [1n, 'pen', 1.5, Buffer.from([0x00, 0xff])],
          [2n, null, null, null],
        ],
      });
      expect(await shell.query('SELECT * FROM nowhere')).toEqual({ error: expect.stringContaining('no such table') as unknown });
      // Statements that would break frame capture are refused, as for any client.
      expect(await shell.query('PRAGMA journal_mode = DELETE')).toEqual({ error: expect.any(String) as unknown });
      expect(await shell.end()).toEqual({ status: 0, message: undefined });
    } finally {
      shell.close();
    }
    // What the shell wrote went through the engine: a client of the user port reads it.
    const rows = await srv.client('shop').execute('SELECT count(*) AS n FROM item');
    expect(rows.rows[0]?.n).toBe(2);
    expect((await srv.admin('GET', '/')).text).toBe('Welcome to the sqld admin API');
  });

  it('refuses a wrong key, a missing namespace and an unknown one with gRPC statuses', async () => {
    const wrong = await openShell(srv.adminUrl, { namespace: 'shop', auth: 'not-the-key' });
    expect(await wrong.end()).toMatchObject({ status: 16 }); // UNAUTHENTICATED
    wrong.close();
    const none = await openShell(srv.adminUrl, { auth: ADMIN_KEY });
    expect(await none.end()).toEqual({ status: 3, message: 'missing namespace' }); // INVALID_ARGUMENT
    none.close();
    const unknown = await openShell(srv.adminUrl, { namespace: 'nope', auth: ADMIN_KEY });
    expect(await unknown.end()).toMatchObject({ status: 9, message: expect.stringContaining('nope') as unknown }); // FAILED_PRECONDITION
    unknown.close();
  });
});
