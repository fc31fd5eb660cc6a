import { createClient } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let srv: TestServer;
let wsPort: number;

beforeAll(async () => {
  srv = await startTestServer({ 'hrana-listen-addr': '127.0.0.1:0' });
  wsPort = srv.server.hranaWsAddress!.port;
});
afterAll(async () => {
  await srv.close();
});

describe('--hrana-listen-addr (WebSocket-only listener)', () => {
  it('serves @libsql/client over ws:// and shares the database with the user port', async () => {
    const client = createClient({ url: `ws://127.0.0.1:${wsPort}` });
    try {
      await client.execute('CREATE TABLE w (x INTEGER)');
      await client.execute({ sql: 'INSERT INTO w VALUES (?)', args: [7] });
    } finally {
      client.close();
    }
    const http = createClient({ url: srv.url });
    try {
      expect((await http.execute('SELECT x FROM w')).rows.map((r) => r.x)).toEqual([7]);
    } finally {
      http.close();
    }
  });

  it('accepts the handshake on any path and names itself sqld-hrana-tcp', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/any/path`, ['hrana2']);
    const server = new Promise<string>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(String(res.headers.server)));
      ws.once('error', reject);
    });
    const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
    const firstMessage = new Promise<unknown>((resolve) => ws.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()))));
    expect(await server).toBe('sqld-hrana-tcp');
    await opened;
    ws.send(JSON.stringify({ type: 'hello', jwt: null }));
    const hello = await firstMessage;
    expect(hello).toEqual({ type: 'hello_ok' });
    ws.close();
  });

  it('answers plain HTTP with 404', async () => {
    expect((await fetch(`http://127.0.0.1:${wsPort}/v2/pipeline`, { method: 'POST', body: '{}' })).status).toBe(404);
  });
});
