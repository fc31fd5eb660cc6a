/**
 * Connection timeouts and caps on the user port (docs/LIMITS.md): silent, partial-header,
 * slow-body and idle keep-alive sockets are closed; a WebSocket session outlives them all; one
 * address beyond its share gets 503 (HTTP and upgrade); beyond --max-connections new sockets are
 * closed unanswered. After each, the server serves a normal client.
 */
import net from 'node:net';
import { createClient } from '@libsql/client';
import { afterEach, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from '../helpers/test-server.js';

let srv: TestServer | null = null;
const sockets = new Set<net.Socket>();

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await srv?.close();
  srv = null;
});

interface Probe {
  socket: net.Socket;
  /** Everything the server sent, once it closed the connection. */
  closed: Promise<string>;
}

/** A raw TCP connection that sends `data` (if any) once connected. */
async function probe(port: number, data?: string): Promise<Probe> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.add(socket);
  let got = '';
  socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(got)));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (data !== undefined) socket.write(data);
  return { socket, closed };
}

/** The server saw the closed connections go (their slots are free again) and serves a normal client. */
async function healthy(s: TestServer): Promise<void> {
  const status = (): Promise<number> => fetch(`${s.url}/health`).then((r) => r.status, () => 0);
  await expect.poll(status, { timeout: 5000 }).toBe(200);
  const client = createClient({ url: s.url });
  try {
    expect((await client.execute('SELECT 41 + 1 AS x')).rows[0]?.x).toBe(42);
  } finally {
    client.close();
  }
}

function portOf(s: TestServer): number {
  return s.server.httpAddress.port;
}

describe('connection timeouts', () => {
  it('closes silent, partial-header, slow-body and idle keep-alive connections (408 where a request began); a WebSocket session stays', async () => {
    srv = await startTestServer({ 'http-headers-timeout-s': '0.5', 'http-request-timeout-s': '1', 'http-keep-alive-timeout-s': '0.5', 'http-idle-timeout-s': '5' });
    const port = portOf(srv);
    const ws = createClient({ url: srv.wsUrl });
    try {
      expect((await ws.execute('SELECT 1 AS one')).rows[0]?.one).toBe(1);
      const [silent, partial, slowBody, keepAlive] = await Promise.all([
        probe(port),
        probe(port, 'GET /health HTTP/1.1\r\nhost: x\r\n'),
        probe(port, 'POST /v2/pipeline HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"requests'),
        probe(port, 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n'),
      ]);
      // Node answers 408 or just closes, depending on whether its parser had begun a request.
      expect(await silent.closed).toMatch(/^(HTTP\/1\.1 408 [^]*)?$/);
      expect(await partial.closed).toMatch(/^HTTP\/1\.1 408 /);
      expect(await slowBody.closed).toMatch(/^HTTP\/1\.1 408 /);
      // One answer, then the idle keep-alive connection is closed by the server.
      const ka = await keepAlive.closed;
      expect(ka).toMatch(/^HTTP\/1\.1 200 /);
      expect(ka.match(/HTTP\/1\.1/g)).toHaveLength(1);
      // The WebSocket was idle all that time, longer than every HTTP timeout: it still works.
      expect((await ws.execute('SELECT 2 AS two')).rows[0]?.two).toBe(2);
    } finally {
      ws.close();
    }
    await healthy(srv);
  });
});

describe('connection caps', () => {
  it('answers 503 to an address beyond its share, on HTTP and on the WebSocket upgrade; others keep their connections', async () => {
    srv = await startTestServer({ 'max-connections': 50, 'max-connections-per-address': 3 });
    const port = portOf(srv);
    const held = await Promise.all([probe(port), probe(port), probe(port)]);
    const refused = await probe(port, 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
    const answer = await refused.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toMatch(/retry-after: 1/i);
    expect(answer).toContain('too many connections from this address');
    const upgrade = await probe(
      port,
      'GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-protocol: hrana3\r\n\r\n',
    );
    expect(await upgrade.closed).toMatch(/^HTTP\/1\.1 503 /);
    // The three held connections were not touched: each still gets an answer.
    const first = held[0];
    first.socket.write('GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    expect(await first.closed).toMatch(/^HTTP\/1\.1 200 /);
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
    await healthy(srv);
  });

  it('beyond --max-connections closes new connections unanswered, and serves again once some close', async () => {
    srv = await startTestServer({ 'max-connections': 4, 'max-connections-per-address': 4 });
    const port = portOf(srv);
    const held = await Promise.all([probe(port), probe(port), probe(port), probe(port)]);
    const extra = await probe(port, 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(await extra.closed).toBe('');
    for (const h of held) h.socket.destroy();
    await Promise.all(held.map((h) => h.closed));
    await healthy(srv);
  });
});

describe('fair share of Hrana HTTP streams', () => {
  it('a client that abandons streams loses its oldest idle one once it holds half the slots; other clients still get slots', async () => {
    srv = await startTestServer({ 'max-concurrent-connections': 4 });
    const open = async (): Promise<string> => {
      const res = await postJson(`${srv!.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] });
      expect(res.status).toBe(200);
      const baton = (res.body as { baton?: unknown }).baton;
      expect(typeof baton).toBe('string');
      return baton as string;
    };
    // Two abandoned streams hold half of the 4 slots; a third expires the oldest rather than taking a third slot.
    const [first, second] = [await open(), await open()];
    const third = await open();
    const expired = await postJson(`${srv.url}/v2/pipeline`, { baton: first, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] });
    expect(expired.status).toBe(400);
    expect(expired.text).toContain('STREAM_EXPIRED');
    // Using a stream makes it the most recently used: the next one to expire is then `third`.
    const used = await postJson(`${srv.url}/v2/pipeline`, { baton: second, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] });
    expect(used.status).toBe(200);
    const secondAgain = (used.body as { baton: string }).baton;
    const fourth = await open();
    const lost = await postJson(`${srv.url}/v2/pipeline`, { baton: third, requests: [{ type: 'close' }] });
    expect(lost.text).toContain('STREAM_EXPIRED');
    for (const baton of [secondAgain, fourth]) {
      const res = await postJson(`${srv.url}/v2/pipeline`, { baton, requests: [{ type: 'close' }] });
      expect(res.status).toBe(200);
    }
    await healthy(srv);
  });
});
