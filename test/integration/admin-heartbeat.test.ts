/**
 * Heartbeats (spec §9): each namespace's stats POSTed to `<url>/<namespace>` every period with
 * `--heartbeat-auth`; a namespace's own `heartbeat_url` wins over `--heartbeat-url`. The receivers
 * are real HTTP servers in the test; a receiver that is down does not stop the others.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminTestServer, createNamespace, startAdminServer } from '../helpers/admin.js';

interface Beat {
  path: string;
  auth: string | undefined;
  body: Record<string, unknown>;
}

let receiver: http.Server;
let receiverUrl: string;
const beats: Beat[] = [];
const waiters: (() => void)[] = [];
let srv: AdminTestServer;

/** Resolves once a heartbeat for `path` arrived (bounded by the test's timeout). */
function beatFor(path: string): Promise<Beat> {
  return new Promise((resolve) => {
    const check = (): void => {
      const found = beats.find((b) => b.path === path);
      if (found) resolve(found);
      else waiters.push(check);
    };
    check();
  });
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      beats.push({ path: req.url ?? '', auth: req.headers.authorization, body: JSON.parse(body) as Record<string, unknown> });
      res.end();
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  srv = await startAdminServer({ 'heartbeat-url': `${receiverUrl}/all`, 'heartbeat-auth': 'Bearer beat-secret', 'heartbeat-period-s': '0.2' });
  await createNamespace(srv, 'books');
  await createNamespace(srv, 'own', { heartbeat_url: `${receiverUrl}/mine/` });
  // A namespace whose receiver is down: its posts fail, the others' go on.
  await createNamespace(srv, 'lost', { heartbeat_url: 'http://127.0.0.1:1/nowhere' });
});

afterAll(async () => {
  await srv?.close();
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
});

describe('heartbeats', () => {
  it("post each namespace's stats to <url>/<namespace> with the auth header, to its own URL when it has one", async () => {
    await srv.client('books').execute('CREATE TABLE t (x)');
    await srv.client('books').execute('INSERT INTO t VALUES (1), (2)');
    beats.length = 0;
    const books = await beatFor('/all/books');
    expect(books.auth).toBe('Bearer beat-secret');
    expect(books.body).toMatchObject({ rows_written_count: 2, query_count: expect.any(Number) as unknown, storage_bytes_used: expect.any(Number) as unknown });
    const own = await beatFor('/mine/own');
    expect(own.body).toMatchObject({ rows_written_count: 0 });
    await beatFor('/all/default');
    expect(beats.some((b) => b.path.endsWith('/own') && b.path.startsWith('/all'))).toBe(false);
    // The server answers on while one receiver is down.
    expect((await srv.client('books').execute('SELECT count(*) AS n FROM t')).rows[0]?.n).toBe(2);
  });
});
