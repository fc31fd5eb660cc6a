import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * How Hrana-over-HTTP answers leave (src/server/http/reply.ts): the exact content type, and the
 * `--max-total-response-size` budget each answer holds until the socket has taken its bytes.
 */

let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const exec = (sql: string): Record<string, unknown> => ({ type: 'execute', stmt: { sql } });

describe('pipeline answers', () => {
  it('are exactly application/json, and give their bytes back to the budget once sent', async () => {
    const r = await postJson(`${srv.url}/v3/pipeline`, { baton: null, requests: [exec('SELECT 1'), { type: 'close' }] });
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/json');
    expect(r.text).toContain('"rows":[[{"type":"integer","value":"1"}]]');
    expect(srv.server.context.responses.inUse).toBe(0);
  });

  it('hold a large answer in the budget until a client that does not read has taken it', async () => {
    // 8 MiB of text: more than loopback's socket buffers take while the client reads nothing.
    const body = JSON.stringify({ baton: null, requests: [exec("SELECT printf('%.*c', 8388608, 'x')"), { type: 'close' }] });
    const socket = net.connect(Number(new URL(srv.url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    socket.write(`POST /v2/pipeline HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    const budget = srv.server.context.responses;
    await vi.waitFor(() => expect(budget.inUse).toBeGreaterThan(8_000_000), { timeout: 5000, interval: 20 });
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.resume();
    await once(socket, 'close');
    expect(received).toBeGreaterThan(8_388_608);
    await vi.waitFor(() => expect(budget.inUse).toBe(0), { timeout: 5000, interval: 20 });
  });
});
