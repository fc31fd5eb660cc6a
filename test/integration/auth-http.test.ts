import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createClient, LibsqlError, type Client } from '@libsql/client';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/** Authentication and authorization over HTTP (spec §3): JWT (PEM file or raw key) and HTTP Basic. */

interface KeyPair {
  privateKey: KeyObject;
  pem: string;
  /** Raw 32-byte Ed25519 public key, URL-safe base64 without padding. */
  raw: string;
}

function keyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    privateKey,
    pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    raw: der.subarray(der.length - 32).toString('base64url'),
  };
}

const KEY = keyPair();
const FOREIGN = keyPair();
const nowSec = (): number => Math.floor(Date.now() / 1000);

function token(claims: JWTPayload = {}, key: KeyPair = KEY): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key.privateKey);
}

const clients: Client[] = [];
function client(url: string, authToken?: string): Client {
  const c = createClient(authToken === undefined ? { url, intMode: 'bigint' } : { url, authToken, intMode: 'bigint' });
  clients.push(c);
  return c;
}

const exec = (sql: string): object => ({ type: 'execute', stmt: { sql } });

function pipeline(url: string, requests: object[], headers: Record<string, string> = {}): ReturnType<typeof postJson> {
  return postJson(`${url}/v2/pipeline`, { baton: null, requests: [...requests, { type: 'close' }] }, headers);
}

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

/** Asserts sqld's 401 answer: JSON `{"error": "Unauthorized: `<message>`"}`. */
function expectUnauthorized(r: Awaited<ReturnType<typeof postJson>>, message: string): void {
  expect(r.status, r.text).toBe(401);
  expect(r.type).toMatch(/^application\/json/);
  expect(r.body).toEqual({ error: `Unauthorized: \`${message}\`` });
}

const FORBIDDEN = "Authorization forbidden: Current session doesn't not have Write permission to namespace default";

function expectForbidden(r: Awaited<ReturnType<typeof postJson>>): void {
  expect(r.status, r.text).toBe(403);
  expect(r.type).toMatch(/^application\/json/);
  expect(r.body).toEqual({ error: FORBIDDEN });
}

/** The HTTP status a client call failed with (hrana-client's HttpServerError, wrapped in LibsqlError). */
async function clientFailureStatus(p: Promise<unknown>): Promise<unknown> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LibsqlError);
  expect((err as LibsqlError).code).toBe('SERVER_ERROR');
  return ((err as LibsqlError).cause as { status?: unknown } | undefined)?.status;
}

afterAll(() => {
  for (const c of clients) c.close();
});

const variants: { name: string; start: () => Promise<TestServer> }[] = [
  {
    name: 'PEM key file (--auth-jwt-key-file)',
    start: async () => {
      const dir = tempDir();
      const file = path.join(dir, 'jwt.pem');
      fs.writeFileSync(file, KEY.pem);
      try {
        return await startTestServer({ 'auth-jwt-key-file': file });
      } finally {
        // The key is read once, at start-up.
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  { name: 'raw key (SQLD_AUTH_JWT_KEY)', start: () => startTestServer({}, { SQLD_AUTH_JWT_KEY: KEY.raw }) },
];

describe.each(variants)('JWT with a $name', ({ start }) => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await start();
    const admin = client(srv.url, await token());
    await admin.execute('CREATE TABLE t (x INTEGER)');
    await admin.execute('INSERT INTO t VALUES (1)');
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('accepts a valid token (with and without exp) through @libsql/client and raw fetch', async () => {
    const c = client(srv.url, await token({ exp: nowSec() + 3600 }));
    await c.execute({ sql: 'INSERT INTO t VALUES (?)', args: [2n] });
    expect((await c.execute('SELECT count(*) FROM t')).rows[0]?.[0]).toBe(2n);
    const tx = await c.transaction('write');
    await tx.execute('DELETE FROM t WHERE x = 2');
    await tx.commit();
    const r = await pipeline(srv.url, [exec('SELECT count(*) FROM t')], bearer(await token()));
    expect(r.status, r.text).toBe(200);
    expect(r.text).toContain('{"type":"integer","value":"1"}');
    // scheme is case-insensitive; x-authorization is accepted too
    expect((await pipeline(srv.url, [exec('SELECT 1')], { authorization: `bearer ${await token()}` })).status).toBe(200);
    expect((await pipeline(srv.url, [exec('SELECT 1')], { 'x-authorization': `Bearer ${await token()}` })).status).toBe(200);
  });

  it('refuses an expired token with 401', async () => {
    const expired = await token({ exp: nowSec() - 3600 });
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')], bearer(expired)), 'The JWT has expired');
    expect(await clientFailureStatus(client(srv.url, expired).execute('SELECT 1'))).toBe(401);
  });

  it('refuses a token signed with a foreign key with 401', async () => {
    const foreign = await token({}, FOREIGN);
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')], bearer(foreign)), 'The JWT is invalid');
    expect(await clientFailureStatus(client(srv.url, foreign).execute('SELECT 1'))).toBe(401);
  });

  it('refuses a missing token, a wrong scheme and a malformed header with 401', async () => {
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')]), 'Expected authorization header but none given');
    expect(await clientFailureStatus(client(srv.url).execute('SELECT 1'))).toBe(401);
    const basic = { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` };
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')], basic), 'The authentication scheme in the `Authorization` HTTP header is not supported');
    expect((await pipeline(srv.url, [exec('SELECT 1')], { authorization: 'Bearer' })).status).toBe(401);
    expect((await pipeline(srv.url, [exec('SELECT 1')], bearer('not.a.jwt'))).status).toBe(401);
    const cursor = await postJson(`${srv.url}/v3/cursor`, { baton: null, batch: { steps: [{ stmt: { sql: 'SELECT 1' } }] } });
    expectUnauthorized(cursor, 'Expected authorization header but none given');
  });

  const readOnlyClaims: { name: string; claims: JWTPayload }[] = [
    { name: "legacy {a: 'ro'}", claims: { a: 'ro' } },
    { name: "{p: {ro: {ns: ['default']}}}", claims: { p: { ro: { ns: ['default'] } } } },
  ];

  it.each(readOnlyClaims)('a read-only token ($name) reads but may not write (403); the server keeps serving', async ({ claims }) => {
    const ro = await token(claims);
    const c = client(srv.url, ro);
    expect((await c.execute('SELECT count(*) FROM t')).rows[0]?.[0]).toBe(1n);
    const tx = await c.transaction('read');
    expect((await tx.execute('SELECT x FROM t')).rows.length).toBe(1);
    await tx.rollback();

    expectForbidden(await pipeline(srv.url, [exec('SELECT 1'), exec('INSERT INTO t VALUES (99)')], bearer(ro)));
    expectForbidden(await pipeline(srv.url, [exec('CREATE TABLE nope (y)')], bearer(ro)));
    expect(await clientFailureStatus(c.execute('INSERT INTO t VALUES (99)'))).toBe(403);
    expect(await clientFailureStatus(c.batch(['INSERT INTO t VALUES (99)'], 'write'))).toBe(403);

    // still serving, nothing was written, a read-write token still writes
    expect((await c.execute('SELECT count(*) FROM t WHERE x = 99')).rows[0]?.[0]).toBe(0n);
    const rw = client(srv.url, await token({ p: { rw: { ns: ['default'] } } }));
    await rw.execute('INSERT INTO t VALUES (3)');
    await rw.execute('DELETE FROM t WHERE x = 3');
    expect((await c.execute('SELECT count(*) FROM t')).rows[0]?.[0]).toBe(1n);
  });
});

describe('HTTP Basic', () => {
  // 13 bytes of credentials: the base64 form carries one `=` of padding
  const credential = Buffer.from('admin:secret1').toString('base64');
  let srv: TestServer;
  beforeAll(async () => {
    expect(credential.endsWith('=')).toBe(true);
    srv = await startTestServer({ 'http-auth': `basic:${credential}` });
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('accepts the configured credentials, with or without padding', async () => {
    const r = await pipeline(srv.url, [exec('CREATE TABLE b (x)'), exec('INSERT INTO b VALUES (1)')], { authorization: `Basic ${credential}` });
    expect(r.status, r.text).toBe(200);
    expect((await pipeline(srv.url, [exec('SELECT 1')], { authorization: `Basic ${credential.replace(/=+$/, '')}` })).status).toBe(200);
    expect((await pipeline(srv.url, [exec('SELECT 1')], { 'x-authorization': `Basic ${credential}` })).status).toBe(200);
  });

  it('accepts @libsql/client with the credential as its token (sqld does not check the scheme)', async () => {
    const c = client(srv.url, credential);
    expect((await c.execute('SELECT count(*) FROM b')).rows[0]?.[0]).toBe(1n);
    await c.execute('INSERT INTO b VALUES (2)');
    expect((await c.execute('SELECT sum(x) FROM b')).rows[0]?.[0]).toBe(3n);
  });

  it('refuses wrong or missing credentials with 401', async () => {
    const wrong = Buffer.from('admin:secret2').toString('base64');
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')], { authorization: `Basic ${wrong}` }), 'The `Basic` HTTP authentication credentials were rejected');
    expectUnauthorized(await pipeline(srv.url, [exec('SELECT 1')]), 'Expected authorization header but none given');
    expect(await clientFailureStatus(client(srv.url, wrong).execute('SELECT 1'))).toBe(401);
    expect(await clientFailureStatus(client(srv.url).execute('SELECT 1'))).toBe(401);
    // a JWT is not a Basic credential
    expect((await pipeline(srv.url, [exec('SELECT 1')], bearer(await token()))).status).toBe(401);
    expect((await pipeline(srv.url, [exec('SELECT 1')], { authorization: `Basic ${credential}` })).status).toBe(200);
  });
});
