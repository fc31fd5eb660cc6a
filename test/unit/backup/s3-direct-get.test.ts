import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BodyReader } from '../../../src/backup/storage/body-reader.js';
import { SignedS3Reader } from '../../../src/backup/storage/s3-http.js';
import { requireOpenssl } from '../../helpers/openssl.js';

/**
 * The direct read of s3-direct-get.ts against small HTTP servers that misbehave on purpose: what it
 * reads itself, what it leaves to node:http (and that the result is the same), and how a body that
 * fails after its head ends.
 */

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

/** A reader of bucket `b` at `server` (listening on loopback), with `maxAttempts` tries per request. */
function readerOf(server: http.Server | https.Server, scheme: 'http' | 'https', maxAttempts: number): SignedS3Reader {
  return new SignedS3Reader({
    endpoint: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bucket: 'b',
    region: 'us-east-1',
    credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    maxAttempts,
    idleTimeoutMs: 10_000,
    connectTimeoutMs: 5_000,
  });
}

async function serve(handler: Handler): Promise<{ reader: SignedS3Reader; requests: () => number }> {
  let n = 0;
  const server = http.createServer((req, res) => handler(req, res, ++n));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const reader = readerOf(server, 'http', 3);
  return { reader, requests: () => n };
}

/** Everything `body` gives, read into buffers of `size` bytes, pausing between reads. */
async function readAll(body: BodyReader, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const buf = Buffer.alloc(size);
  for (;;) {
    const n = await body.read(buf);
    parts.push(Buffer.from(buf.subarray(0, n)));
    if (n < size) return Buffer.concat(parts);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Writes `bytes` in pieces of irregular size, each on its own turn of the event loop. */
function writeInPieces(res: http.ServerResponse, bytes: Buffer, end = true): void {
  let at = 0;
  const next = (): void => {
    if (at >= bytes.length) {
      if (end) res.end();
      return;
    }
    const k = 1 + ((at * 7919) % 200_000);
    res.write(bytes.subarray(at, at + k));
    at += k;
    setImmediate(next);
  };
  next();
}

describe('direct GET over plain HTTP', () => {
  it('reads a Content-Length body in odd pieces into buffers of any size, head and metadata included', async () => {
    const bytes = randomBytes(5 * 1024 * 1024 + 77);
    const auth: (string | undefined)[] = [];
    const { reader, requests } = await serve((req, res) => {
      auth.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': bytes.length, 'x-amz-meta-libsqlctl-sha256': 'abc', 'last-modified': 'Wed, 02 Dec 2026 21:51:39 GMT' });
      writeInPieces(res, bytes);
    });
    for (const size of [4096, 1 << 20, 3 * 1024 * 1024 + 1]) {
      const { head, body } = await reader.getReader('db.gz', undefined);
      expect(head).toMatchObject({ key: 'db.gz', size: bytes.length, metadata: { 'libsqlctl-sha256': 'abc' }, lastModified: new Date('2026-12-02T21:51:39Z') });
      expect(sha256(await readAll(body, size))).toBe(sha256(bytes));
    }
    expect(requests()).toBe(3);
    expect(auth.every((a) => a?.startsWith('AWS4-HMAC-SHA256 '))).toBe(true);
    reader.close();
  });

  it('leaves a chunked answer and an error status to node:http, with the same result', async () => {
    const bytes = randomBytes(300_000);
    const chunked = await serve((_req, res) => {
      res.writeHead(200); // no length: chunked
      writeInPieces(res, bytes);
    });
    const { body } = await chunked.reader.getReader('k', undefined);
    expect(sha256(await readAll(body, 65_536))).toBe(sha256(bytes));
    expect(chunked.requests()).toBe(2); // the direct try, then node:http

    const flaky = await serve((_req, res, n) => {
      if (n === 1) {
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<Error><Code>SlowDown</Code></Error>');
        return;
      }
      res.writeHead(200, { 'content-length': bytes.length });
      res.end(bytes);
    });
    const again = await flaky.reader.getReader('k', undefined);
    expect(sha256(await readAll(again.body, 100_000))).toBe(sha256(bytes));
    expect(flaky.requests()).toBe(2);

    const missing = await serve((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<Error><Code>NoSuchKey</Code></Error>');
    });
    await expect(missing.reader.getReader('k', undefined)).rejects.toMatchObject({ code: 'NoSuchKey', status: 404 });
  });

  it('a body cut short rejects the read; destroy and close stop a read that waits', async () => {
    const cut = await serve((req, res) => {
      res.writeHead(200, { 'content-length': 100_000 });
      res.write(randomBytes(40_000), () => req.socket.destroy());
    });
    const { body } = await cut.reader.getReader('k', undefined);
    await expect(readAll(body, 16_384)).rejects.toThrow(/ended early|ECONNRESET|socket/i);

    let sent!: () => void;
    const headSent = new Promise<void>((resolve) => (sent = resolve));
    const stalled = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 100_000 });
      res.write(Buffer.alloc(10), () => sent()); // and nothing more
    });
    const first = await stalled.reader.getReader('k', undefined);
    await headSent;
    const waiting = first.body.read(Buffer.alloc(1000));
    first.body.destroy();
    await expect(waiting).rejects.toThrow(/stopped/);

    const second = await stalled.reader.getReader('k', undefined);
    const pending = second.body.read(Buffer.alloc(1000));
    stalled.reader.close();
    await expect(pending).rejects.toThrow(/aborted/);
  });

  it('a range: a 206 answer read straight into the buffers; a store that ignores Range is refused', async () => {
    const bytes = randomBytes(300_000);
    const { reader } = await serve((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (m === null || req.url?.includes('ignores') === true) {
        res.writeHead(200, { 'content-length': bytes.length });
        res.end(bytes);
        return;
      }
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), bytes.length - 1)];
      res.writeHead(206, { 'content-length': end + 1 - start, 'content-range': `bytes ${start}-${end}/${bytes.length}`, etag: '"abc"' });
      writeInPieces(res, bytes.subarray(start, end + 1));
    });
    const { head, body } = await reader.getReader('k', undefined, { start: 1000, end: 250_999 });
    expect(head).toMatchObject({ size: bytes.length, etag: '"abc"' });
    expect(sha256(await readAll(body, 65_536))).toBe(sha256(bytes.subarray(1000, 251_000)));
    await expect(reader.getReader('ignores', undefined, { start: 0, end: 99 })).rejects.toThrow(/does not do ranges/);
    reader.close();
  });

  it('an https endpoint is spoken to over TLS (node:https, loaded only for it)', async () => {
    requireOpenssl();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-get-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1'], { cwd: dir, stdio: 'ignore' });
      const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (_req, res) => res.end('x'));
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const reader = readerOf(server, 'https', 1);
      // A TLS client that does not trust the test's self-signed certificate: the handshake is refused.
      await expect(reader.get('k', undefined, undefined)).rejects.toThrow(/self[- ]signed/i);
      reader.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
