import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServeConfig } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { LEVEL, LogCapture } from '../helpers/log-capture.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/**
 * Namespace and credentials are checked before a request body is read (spec §3.6): malformed
 * bodies of unauthenticated requests get 401, not 400, and a refused upload costs the server
 * neither the time to receive it nor the memory to hold it.
 */

function keyPair(): { privateKey: KeyObject; raw: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { privateKey, raw: der.subarray(der.length - 32).toString('base64url') };
}

const KEY = keyPair();
const FOREIGN = keyPair();
const BASIC = Buffer.from('user:secret').toString('base64');

const token = (key = KEY): Promise<string> => new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key.privateKey);

const BAD_JSON = '{bad json';
/** Field 1, length 5, but one byte follows: not a protobuf message. */
const BAD_PROTOBUF = Buffer.from([0x0a, 0x05, 0x01]);

interface BodyRoute {
  path: string;
  malformed: string | Buffer;
  /** The start of the 400 text an authenticated caller gets for `malformed`. */
  decodeError: string;
}

const JSON_ERROR = 'Cannot deserialize client message from JSON: ';
const ROUTES: BodyRoute[] = [
  { path: '/v2/pipeline', malformed: BAD_JSON, decodeError: JSON_ERROR },
  { path: '/v3/pipeline', malformed: BAD_JSON, decodeError: JSON_ERROR },
  { path: '/v3/cursor', malformed: BAD_JSON, decodeError: JSON_ERROR },
  { path: '/v3-protobuf/pipeline', malformed: BAD_PROTOBUF, decodeError: 'Cannot decode client message from Protobuf: ' },
  { path: '/v3-protobuf/cursor', malformed: BAD_PROTOBUF, decodeError: 'Cannot decode client message from Protobuf: ' },
  { path: '/', malformed: BAD_JSON, decodeError: 'Failed to parse the request body as JSON: ' },
  { path: '/v1/execute', malformed: BAD_JSON, decodeError: JSON_ERROR },
  { path: '/v1/batch', malformed: BAD_JSON, decodeError: JSON_ERROR },
];

const unauthorized = (message: string): unknown => ({ error: `Unauthorized: \`${message}\`` });
const NO_HEADER = 'Expected authorization header but none given';

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; type: string; connection: string | null; text: string }> {
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', connection: res.headers.get('connection'), text };
}

function expect401(r: Awaited<ReturnType<typeof post>>, message: string): void {
  expect(r.status, r.text).toBe(401);
  expect(r.type).toMatch(/^application\/json/);
  expect(JSON.parse(r.text)).toEqual(unauthorized(message));
  expect(r.connection).toBe('close');
}

async function selectOne(url: string, headers: Record<string, string>): Promise<void> {
  const body = JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] });
  const r = await post(`${url}/v2/pipeline`, body, headers);
  expect(r.status, r.text).toBe(200);
  expect(r.text).toContain('{"type":"integer","value":"1"}');
}

// ---- a raw HTTP/1.1 upload over node:net ------------------------------------------------------

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The first complete response in `data` (a content-length body), or null while it is incomplete. */
function parseResponse(data: Buffer): RawResponse | null {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (data.length < end + 4 + length) return null;
  return { status: Number(statusLine.split(' ')[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString('utf8') };
}

interface UploadOutcome {
  response: RawResponse | null;
  /** Body bytes handed to the socket when the response was complete (or in all, without one). */
  sentAtResponse: number;
  /** Whether the server ended the connection (FIN or reset) before the deadline. */
  serverClosed: boolean;
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const DECLARED = 60_000_000;

/**
 * Announces a DECLARED-byte body, then sends `sendUpTo` bytes of it (respecting backpressure) until
 * a response is complete; then waits for the server to close the connection. Everything stops at
 * `deadlineMs`.
 */
async function upload(port: number, urlPath: string, sendUpTo: number, deadlineMs: number, headers: Record<string, string> = {}): Promise<UploadOutcome> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let received = Buffer.alloc(0);
  let response: RawResponse | null = null;
  let sent = 0;
  let sentAtResponse = -1;
  let serverClosed = false;
  let wake: () => void = () => {};
  const wakeUp = (): void => wake();
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    if (response === null) {
      response = parseResponse(received);
      if (response !== null) sentAtResponse = sent;
    }
    wakeUp();
  });
  socket.on('end', () => (serverClosed = true));
  socket.on('error', () => (serverClosed = true)); // reset by the server after its answer
  socket.on('close', wakeUp);
  socket.on('drain', wakeUp);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    wakeUp();
  }, deadlineMs);
  const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));
  try {
    if (!socket.destroyed && socket.connecting) {
      const connected = next();
      socket.once('connect', wakeUp);
      await connected;
    }
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`POST ${urlPath} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${DECLARED}\r\n${extra}\r\n`);
    while (response === null && !timedOut && !socket.destroyed && sent < sendUpTo) {
      const piece = CHUNK.subarray(0, Math.min(CHUNK.length, sendUpTo - sent));
      sent += piece.length;
      if (!socket.write(piece)) {
        const woken = next();
        if (socket.writableNeedDrain) await woken;
      }
    }
    while (response === null && !timedOut && !socket.destroyed) await next();
    if (sentAtResponse < 0) sentAtResponse = sent;
    while (!serverClosed && !timedOut && !socket.destroyed) await next();
    return { response, sentAtResponse, serverClosed };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

// ---- tests ------------------------------------------------------------------------------------

describe('JWT: authentication before the body', () => {
  let srv: TestServer;
  let port: number;
  let bearer: Record<string, string>;

  beforeAll(async () => {
    srv = await startTestServer({}, { SQLD_AUTH_JWT_KEY: KEY.raw });
    port = Number(new URL(srv.url).port);
    bearer = { authorization: `Bearer ${await token()}` };
  });
  afterAll(async () => {
    await srv?.close();
  });

  it.each(ROUTES)('$path: 401 for malformed bodies without or with a wrong token, 400 with a good one', async ({ path: p, malformed, decodeError }) => {
    expect401(await post(`${srv.url}${p}`, malformed), NO_HEADER);
    expect401(await post(`${srv.url}${p}`, malformed, { authorization: `Bearer ${await token(FOREIGN)}` }), 'The JWT is invalid');
    expect401(await post(`${srv.url}${p}`, malformed, { authorization: 'Basic dXNlcjpzZWNyZXQ=' }), 'The authentication scheme in the `Authorization` HTTP header is not supported');
    const ok = await post(`${srv.url}${p}`, malformed, bearer);
    expect(ok.status, ok.text).toBe(400);
    expect(ok.type).toMatch(/^text\/plain/);
    expect(ok.text.startsWith(decodeError), ok.text).toBe(true);
  });

  it('GET /dump is refused before the database is read', async () => {
    const r = await fetch(`${srv.url}/dump`, { signal: AbortSignal.timeout(10_000) });
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual(unauthorized(NO_HEADER));
  });

  it.each(['/v2/pipeline', '/v3-protobuf/pipeline', '/'])('%s: answers 401 to an announced 60 MB body after a few KB and closes', async (p) => {
    const outcome = await upload(port, p, 4096, 5000);
    expect(outcome.response?.status).toBe(401);
    expect(JSON.parse(outcome.response?.body ?? 'null')).toEqual(unauthorized(NO_HEADER));
    expect(outcome.response?.headers['connection']).toBe('close');
    expect(outcome.sentAtResponse).toBeLessThan(1024 * 1024);
    expect(outcome.serverClosed).toBe(true);
  });

  it('gRPC-web (embedded replicas): an unauthenticated 60 MB call is answered before its body is read and closed', async () => {
    const outcome = await upload(port, '/proxy.Proxy/Execute', 4096, 5000, { 'content-type': 'application/grpc-web+proto' });
    expect(outcome.response?.status).toBe(200);
    expect(outcome.response?.headers['connection']).toBe('close');
    expect(outcome.sentAtResponse).toBeLessThan(1024 * 1024);
    expect(outcome.serverClosed).toBe(true);
    // A trailers-only answer: sqld's status for a call without credentials (spec §3.3).
    const withBearer = await fetch(`${srv.url}/wal_log.ReplicationLog/Hello`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', authorization: `Bearer ${await token(FOREIGN)}` },
      body: Buffer.from([0, 0, 0, 0, 0]),
    });
    const frames = Buffer.from(await withBearer.arrayBuffer()).toString('latin1');
    expect(frames).toContain('grpc-status:16');
    expect(frames).toContain('The JWT is invalid');
  });

  it('answers 404 to an upload to an unknown route without reading it', async () => {
    const outcome = await upload(port, '/no/such/route', 4096, 5000);
    expect(outcome.response?.status).toBe(404);
    expect(outcome.response?.headers['connection']).toBe('close');
    expect(outcome.serverClosed).toBe(true);
  });

  it('8 concurrent unauthenticated 60 MB uploads leave memory flat and the server serving', async () => {
    await upload(port, '/v2/pipeline', 1024 * 1024, 5000); // warm-up: the code paths are loaded
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    let outcomes: UploadOutcome[];
    try {
      outcomes = await Promise.all(Array.from({ length: 8 }, () => upload(port, '/v2/pipeline', DECLARED, 5000)));
    } finally {
      clearInterval(sampler);
    }
    const after = process.memoryUsage().rss;
    peak = Math.max(peak, after);
    const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
    const summary = `rss before ${mb(before)}, peak ${mb(peak)}, after ${mb(after)}; sent ${outcomes.map((o) => mb(o.sentAtResponse)).join(', ')}`;
    for (const o of outcomes) {
      expect(o.response?.status, summary).toBe(401);
      expect(o.serverClosed, summary).toBe(true);
    }
    expect(peak - before, summary).toBeLessThan(50 * 2 ** 20);
    await selectOne(srv.url, bearer);
  });
});

describe('HTTP Basic: authentication before the body', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ 'http-auth': `basic:${BASIC}` });
  });
  afterAll(async () => {
    await srv?.close();
  });

  it.each(ROUTES)('$path: 401 for a malformed body with a wrong credential, 400 with the right one', async ({ path: p, malformed, decodeError }) => {
    expect401(await post(`${srv.url}${p}`, malformed), NO_HEADER);
    expect401(await post(`${srv.url}${p}`, malformed, { authorization: 'Basic d3Jvbmc6d3Jvbmc=' }), 'The `Basic` HTTP authentication credentials were rejected');
    const ok = await post(`${srv.url}${p}`, malformed, { authorization: `Basic ${BASIC}` });
    expect(ok.status, ok.text).toBe(400);
    expect(ok.text.startsWith(decodeError), ok.text).toBe(true);
    await selectOne(srv.url, { authorization: `Basic ${BASIC}` });
  });
});

describe('namespaces: 404 before the credentials, without opening a database', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ 'http-auth': `basic:${BASIC}`, 'enable-namespaces': true });
  });
  afterAll(async () => {
    await srv?.close();
  });

  it.each(ROUTES)('$path: an unknown namespace is 404 whatever the credentials and the body', async ({ path: p, malformed }) => {
    const credentials: Record<string, string>[] = [{}, { authorization: 'Basic d3Jvbmc6d3Jvbmc=' }, { authorization: `Basic ${BASIC}` }];
    for (const auth of credentials) {
      const r = await post(`${srv.url}${p}`, malformed, { 'x-namespace': 'nope', ...auth });
      expect(r.status, r.text).toBe(404);
      expect(JSON.parse(r.text)).toEqual({ error: "Namespace `nope` doesn't exist" });
    }
    expect(fs.existsSync(path.join(srv.dbPath, 'dbs', 'nope'))).toBe(false);
    expect401(await post(`${srv.url}${p}`, malformed, { 'x-namespace': 'default' }), NO_HEADER);
  });
});

describe('refusals are logged at debug level', () => {
  let server: RunningServer;
  let dir: string;
  const logs = new LogCapture('debug');

  beforeAll(async () => {
    dir = tempDir();
    const flags = { ...serveFlagDefaults(), 'http-listen-addr': '127.0.0.1:0', 'no-welcome': true, 'db-path': path.join(dir, 'data.sqld') };
    server = await startServer(await resolveServeConfig(flags, { SQLD_AUTH_JWT_KEY: KEY.raw }), { logger: logs.logger });
  });
  afterAll(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('names the route, the status and the reason, never the credential', async () => {
    const wrong = await token(FOREIGN);
    const url = `http://127.0.0.1:${server.httpAddress.port}`;
    expect401(await post(`${url}/v3/pipeline`, BAD_JSON, { authorization: `Bearer ${wrong}` }), 'The JWT is invalid');
    const lines = logs.find(/refused/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: LEVEL.debug, route: '/v3/pipeline', status: 401, reason: 'AUTH_JWT_INVALID' });
    expect(JSON.stringify(logs.lines)).not.toContain(wrong.split('.')[2]);
  });

  it('a read-only write (403) and a malformed body (400) each get one line with the status and the reason', async () => {
    const url = `http://127.0.0.1:${server.httpAddress.port}`;
    const ro = await new SignJWT({ a: 'ro' }).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(KEY.privateKey);
    const write = await post(`${url}/v2/pipeline`, JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'CREATE TABLE x (a)' } }] }), { authorization: `Bearer ${ro}` });
    expect(write.status).toBe(403);
    const bad = await post(`${url}/v2/pipeline`, BAD_JSON, { authorization: `Bearer ${await token()}` });
    expect(bad.status).toBe(400);
    const lines = logs.find(/^request refused$/);
    expect(lines.map((l) => (l as { status?: number }).status)).toEqual([403, 400]);
    expect(lines[0]).toMatchObject({ level: LEVEL.debug, route: '/v2/pipeline', code: 'FORBIDDEN' });
    expect(String((lines[0] as { reason?: unknown }).reason)).toMatch(/Write permission/);
    expect(JSON.stringify(logs.lines)).not.toContain(ro.split('.')[2]);
  });
});
