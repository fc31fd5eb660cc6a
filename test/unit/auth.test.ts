import { generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError, LibsqlctlError } from '../../src/errors.js';
import { AuthError } from '../../src/server/auth/auth-error.js';
import { parseJwtKeys } from '../../src/server/auth/jwt-keys.js';
import { FULL_ACCESS, canRunSharedSchemaDdl, type Principal } from '../../src/server/auth/permissions.js';
import { createAuthStrategy, type AuthStrategy, type AuthStrategyOptions } from '../../src/server/auth/strategy.js';

interface Pair {
  privateKey: KeyObject;
  pem: string;
  raw: string;
}

function pair(): Pair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const raw = publicKey.export({ format: 'jwk' }).x ?? '';
  return { privateKey, pem, raw };
}

const A = pair();
const B = pair();
const C = pair();
const nowSec = (): number => Math.floor(Date.now() / 1000);

function sign(claims: JWTPayload, key: Pair = A): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(key.privateKey);
}

/** Signs arbitrary (possibly ill-typed) claims without jose's payload checks. */
function signRaw(claims: unknown, key: Pair = A, header: object = { alg: 'EdDSA' }): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc(header)}.${enc(claims)}`;
  return `${input}.${cryptoSign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
}

async function jwtStrategy(keyText: string = A.pem, opts: AuthStrategyOptions = {}): Promise<AuthStrategy> {
  return createAuthStrategy({ kind: 'jwt', keys: await parseJwtKeys(keyText) }, opts);
}

async function authCode(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  return (err as AuthError).code;
}

function rights(p: Principal, ns: string): string {
  return `${p.canRead(ns) ? 'r' : '-'}${p.canWrite(ns) ? 'w' : '-'}${p.canAttach(ns) ? 'a' : '-'}`;
}

describe('JWT strategy', () => {
  it('accepts a valid token; no claims = read/write everywhere, no attach', async () => {
    const s = await jwtStrategy();
    const p = await s.authenticateHttp(`Bearer ${await sign({})}`);
    expect(p).not.toBe(FULL_ACCESS);
    expect(rights(p, 'any')).toBe('rw-');
    expect(canRunSharedSchemaDdl(p, 'any')).toBe(false);
    expect(rights(await s.authenticateHttp(`bEaReR ${await sign({})}`), 'x')).toBe('rw-');
  });

  it('rejects tokens expired beyond the 60 s leeway, accepts within it', async () => {
    const s = await jwtStrategy();
    const expired = s.authenticateHttp(`Bearer ${await sign({ exp: nowSec() - 120 })}`);
    await expect(expired).rejects.toMatchObject({ code: 'AUTH_JWT_EXPIRED', message: 'The JWT has expired' });
    const p = await s.authenticateHttp(`Bearer ${await sign({ exp: nowSec() - 30 })}`);
    expect(p.canWrite('db')).toBe(true);
  });

  it('ignores nbf', async () => {
    const s = await jwtStrategy();
    await expect(s.authenticateHttp(`Bearer ${await sign({ nbf: nowSec() + 3600 })}`)).resolves.toBeDefined();
  });

  it('rejects a token signed by a foreign key, garbage and other algorithms', async () => {
    const s = await jwtStrategy();
    await expect(s.authenticateHttp(`Bearer ${await sign({}, B)}`)).rejects.toMatchObject({
      code: 'AUTH_JWT_INVALID',
      message: 'The JWT is invalid',
    });
    expect(await authCode(s.authenticateHttp('Bearer abc'))).toBe('AUTH_JWT_INVALID');
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));
    expect(await authCode(s.authenticateHttp(`Bearer ${hs}`))).toBe('AUTH_JWT_INVALID');
  });

  it('tries every key of a multi-block PEM file; expiry is final', async () => {
    const s = await jwtStrategy(`${A.pem}${B.pem}\n${C.pem}`);
    for (const k of [A, B, C]) {
      expect((await s.authenticateHttp(`Bearer ${await sign({ id: 'x' }, k)}`)).canRead('x')).toBe(true);
    }
    expect(await authCode(s.authenticateHttp(`Bearer ${await sign({}, pair())}`))).toBe('AUTH_JWT_INVALID');
    expect(await authCode(s.authenticateHttp(`Bearer ${await sign({ exp: 1000 }, C)}`))).toBe('AUTH_JWT_EXPIRED');
  });

  it('accepts a raw base64url key (trailing newline tolerated)', async () => {
    const s = await jwtStrategy(`${A.raw}\n`);
    await expect(s.authenticateHello(await sign({}))).resolves.toBeDefined();
    expect(await authCode(s.authenticateHello(await sign({}, B)))).toBe('AUTH_JWT_INVALID');
  });

  it('legacy a/id claims', async () => {
    const s = await jwtStrategy();
    const auth = async (c: JWTPayload): Promise<Principal> => s.authenticateHttp(`Bearer ${await sign(c)}`);
    expect(rights(await auth({ a: 'ro' }), 'db')).toBe('r--');
    expect(rights(await auth({ a: 'rw' }), 'db')).toBe('rw-');
    expect(rights(await auth({ a: 'roa' }), 'db')).toBe('r-a');
    const onlyDb1 = await auth({ id: 'db1' });
    expect(rights(onlyDb1, 'db1')).toBe('rw-');
    expect(rights(onlyDb1, 'db2')).toBe('---');
    const roDb1 = await auth({ id: 'db1', a: 'ro' });
    expect([rights(roDb1, 'db1'), rights(roDb1, 'db2')]).toEqual(['r--', '---']);
  });

  it('p claim scopes take precedence over id/a', async () => {
    const s = await jwtStrategy();
    const p = await s.authenticateHttp(
      `Bearer ${await sign({
        id: 'zzz',
        a: 'ro',
        p: { ro: { ns: ['r'] }, rw: { ns: ['w'] }, roa: { ns: ['ra'] }, rwa: { ns: ['wa'] }, ddl: { ns: ['d'] } },
      })}`,
    );
    expect(['r', 'w', 'ra', 'wa', 'd', 'zzz'].map((ns) => rights(p, ns))).toEqual([
      'r--',
      'rw-',
      'r-a',
      'rwa',
      'rw-',
      '---',
    ]);
    expect(canRunSharedSchemaDdl(p, 'd')).toBe(true);
    expect(canRunSharedSchemaDdl(p, 'w')).toBe(false);
    const empty = await s.authenticateHttp(`Bearer ${await sign({ p: {} })}`);
    expect(rights(empty, 'any')).toBe('---');
  });

  it('p scopes match tags against the gid option', async () => {
    const token = `Bearer ${await sign({ p: { ro: { tags: ['g1'] }, rw: { ns: ['mine'], tags: ['other'] } } })}`;
    const withGid = await (await jwtStrategy(A.pem, { gid: 'g1' })).authenticateHttp(token);
    expect([rights(withGid, 'anything'), rights(withGid, 'mine')]).toEqual(['r--', 'rw-']);
    const noGid = await (await jwtStrategy()).authenticateHttp(token);
    expect([rights(noGid, 'anything'), rights(noGid, 'mine')]).toEqual(['---', 'rw-']);
    const otherGid = await (await jwtStrategy(A.pem, { gid: 'other' })).authenticateHttp(token);
    expect(rights(otherGid, 'anything')).toBe('rw-');
  });

  it('rejects a token with an aud claim as AUTH_FAILED', async () => {
    const s = await jwtStrategy();
    await expect(s.authenticateHttp(`Bearer ${await sign({ aud: 'someone' })}`)).rejects.toMatchObject({
      code: 'AUTH_FAILED',
      message: 'Authentication failed',
    });
    expect(await authCode(s.authenticateHttp(`Bearer ${await sign({ aud: ['a', 'b'] })}`))).toBe('AUTH_FAILED');
  });

  it('claims of the wrong JSON type make the token invalid', async () => {
    const s = await jwtStrategy();
    const bad: unknown[] = [
      { exp: String(nowSec() + 60) },
      { exp: nowSec() + 0.5 },
      { id: 5 },
      { id: '' },
      { a: 'admin' },
      { a: 1 },
      { p: 'x' },
      { p: [] },
      { p: { ro: [] } },
      { p: { ro: { ns: 'x' } } },
      { p: { ro: { ns: [1] } } },
      { p: { ro: { tags: [1] } } },
      { p: { rw: { ns: ['x'] } }, a: 'bogus' },
      [1, 2],
    ];
    for (const claims of bad) {
      expect(await authCode(s.authenticateHttp(`Bearer ${signRaw(claims)}`)), JSON.stringify(claims)).toBe(
        'AUTH_JWT_INVALID',
      );
    }
    const nulls = await s.authenticateHttp(`Bearer ${signRaw({ id: null, a: null, p: null, exp: null, aud: null })}`);
    expect(rights(nulls, 'x')).toBe('rw-');
  });

  it('header errors: scheme, malformed, missing, non-ASCII', async () => {
    const s = await jwtStrategy();
    const token = await sign({});
    await expect(s.authenticateHttp(`Basic ${token}`)).rejects.toMatchObject({
      code: 'AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME',
      message: 'The authentication scheme in the `Authorization` HTTP header is not supported',
    });
    await expect(s.authenticateHttp(`Bearer${token}`)).rejects.toMatchObject({
      code: 'AUTH_HEADER_MALFORMED',
      message: "Auth string does not conform to '<scheme> <token>' form",
    });
    await expect(s.authenticateHttp(undefined)).rejects.toMatchObject({
      code: 'AUTH_HEADER_NOT_FOUND',
      message: 'Expected authorization header but none given',
    });
    await expect(s.authenticateHttp('Bearer \u00e9')).rejects.toMatchObject({
      code: 'AUTH_HEADER_MALFORMED',
      message: 'Non-ASCII auth header',
    });
  });

  it('hello: null jwt means no credentials; a jwt is treated as a bearer token', async () => {
    const s = await jwtStrategy();
    expect(await authCode(s.authenticateHello(null))).toBe('AUTH_HEADER_NOT_FOUND');
    expect(rights(await s.authenticateHello(await sign({ a: 'ro' })), 'db')).toBe('r--');
    expect(await authCode(s.authenticateHello('nope'))).toBe('AUTH_JWT_INVALID');
  });

  it('caches verified tokens but still re-checks exp', async () => {
    let clock = Date.now();
    const s = await jwtStrategy(A.pem, { now: () => clock });
    const header = `Bearer ${await sign({ exp: Math.floor(clock / 1000) + 10 })}`;
    const first = await s.authenticateHttp(header);
    expect(await s.authenticateHttp(header)).toBe(first);
    clock += 50_000; // exp passed, still within leeway
    expect(await s.authenticateHttp(header)).toBe(first);
    clock += 30_000; // beyond leeway
    expect(await authCode(s.authenticateHttp(header))).toBe('AUTH_JWT_EXPIRED');
    const tiny = await jwtStrategy(A.pem, { cacheSize: 1 });
    const [t1, t2] = [`Bearer ${await sign({ id: 'a' })}`, `Bearer ${await sign({ id: 'b' })}`];
    for (const t of [t1, t2, t1, t2]) expect((await tiny.authenticateHttp(t)).canRead('a')).toBe(t === t1);
  });
});

describe('HTTP Basic strategy', () => {
  const basic = createAuthStrategy({ kind: 'basic', credential: 'dXNlcjpwYXNzd29yZA==' });

  it('accepts the configured credential with full access', async () => {
    expect(await basic.authenticateHttp('Basic dXNlcjpwYXNzd29yZA==')).toBe(FULL_ACCESS);
  });

  it('strips trailing = and matches as a substring, ignoring the scheme word', async () => {
    expect(await basic.authenticateHttp('Basic dXNlcjpwYXNzd29yZA')).toBe(FULL_ACCESS);
    expect(await basic.authenticateHttp('Whatever xxdXNlcjpwYXNzd29yZAyy')).toBe(FULL_ACCESS);
    expect(await basic.authenticateHello('dXNlcjpwYXNzd29yZA')).toBe(FULL_ACCESS);
  });

  it('refuses other credentials and malformed headers', async () => {
    await expect(basic.authenticateHttp('Basic d3Jvbmc6cGFzcw==')).rejects.toMatchObject({
      code: 'AUTH_BASIC_REJECTED',
      message: 'The `Basic` HTTP authentication credentials were rejected',
    });
    expect(await authCode(basic.authenticateHttp('Basic dXNlcjpwYXNzd29y'))).toBe('AUTH_BASIC_REJECTED');
    expect(await authCode(basic.authenticateHttp('dXNlcjpwYXNzd29yZA=='))).toBe('AUTH_HEADER_MALFORMED');
    expect(await authCode(basic.authenticateHttp(undefined))).toBe('AUTH_HEADER_NOT_FOUND');
    expect(await authCode(basic.authenticateHello(null))).toBe('AUTH_HEADER_NOT_FOUND');
    expect(await authCode(basic.authenticateHello('wrong'))).toBe('AUTH_BASIC_REJECTED');
  });
});

describe('disabled strategy', () => {
  it('grants full access without credentials', async () => {
    const s = createAuthStrategy({ kind: 'disabled' });
    expect(await s.authenticateHttp(undefined)).toBe(FULL_ACCESS);
    expect(await s.authenticateHello(null)).toBe(FULL_ACCESS);
    expect(rights(FULL_ACCESS, 'x')).toBe('rwa');
    expect(canRunSharedSchemaDdl(FULL_ACCESS, 'x')).toBe(true);
  });
});

describe('parseJwtKeys errors', () => {
  async function keyError(text: string): Promise<string> {
    const err = await parseJwtKeys(text).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_JWT_KEY');
    return (err as ConfigError).message;
  }

  it('reports sqld texts', async () => {
    const priv = A.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(await keyError(priv)).toBe('Received a private key, but a public key is expected');
    expect(await keyError(`${A.pem}${priv}`)).toBe('Received a private key, but a public key is expected');
    expect(await keyError('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toBe(
      'Key is in unsupported PEM format',
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    expect(await keyError(rsa.toString())).toBe('Could not decode Ed25519 public key from PEM');
    expect(await keyError('-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----')).toBe(
      'Could not parse many certificates from PEM',
    );
    for (const raw of [`${A.raw}=`, 'not base64!', Buffer.alloc(16).toString('base64url'), '']) {
      expect(await keyError(raw)).toMatch(/^Could not decode Ed25519 public key from base64: /);
    }
  });

  it('AuthError is a LibsqlctlError with stable codes', () => {
    const e = AuthError.jwtExpired();
    expect(e).toBeInstanceOf(LibsqlctlError);
    expect([e.name, e.code]).toEqual(['AuthError', 'AUTH_JWT_EXPIRED']);
    expect(AuthError.headerNonAscii().code).toBe('AUTH_HEADER_MALFORMED');
  });
});

/** What `authenticateHttpNow` gave: the principal, undefined, or the code it threw. */
function nowOutcome(s: AuthStrategy, header: string | undefined): Principal | string | undefined {
  try {
    return s.authenticateHttpNow(header);
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    return (err as AuthError).code;
  }
}

describe('authenticateHttpNow: the synchronous answer agrees with authenticateHttp', () => {
  it('basic and disabled answer at once, with the same principal or the same error', async () => {
    const basic = createAuthStrategy({ kind: 'basic', credential: 'dXNlcjpwYXNzd29yZA==' });
    for (const header of ['Basic dXNlcjpwYXNzd29yZA==', 'Basic d3Jvbmc6cGFzcw==', 'dXNlcjpwYXNzd29yZA==', undefined, 'Basic \u00e9']) {
      const async = await basic.authenticateHttp(header).then(
        (p) => p,
        (err: unknown) => (err as AuthError).code,
      );
      expect(nowOutcome(basic, header)).toBe(async);
    }
    expect(nowOutcome(createAuthStrategy({ kind: 'disabled' }), undefined)).toBe(FULL_ACCESS);
  });

  it('JWT: undefined for a token not verified yet, the cached principal after, expiry and header errors at once', async () => {
    let clock = Date.now();
    const s = await jwtStrategy(A.pem, { now: () => clock });
    const header = `Bearer ${await sign({ exp: Math.floor(clock / 1000) + 10, a: 'ro' })}`;
    expect(nowOutcome(s, header)).toBeUndefined();
    const verified = await s.authenticateHttp(header);
    expect(nowOutcome(s, header)).toBe(verified);
    expect(rights(verified, 'db')).toBe('r--');
    // A forged token is never answered from the cache: only authenticateHttp can refuse it.
    expect(nowOutcome(s, `Bearer ${signRaw({}, B)}`)).toBeUndefined();
    expect(nowOutcome(s, `Basic ${header.slice(7)}`)).toBe('AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME');
    expect(nowOutcome(s, undefined)).toBe('AUTH_HEADER_NOT_FOUND');
    clock += 80_000; // beyond exp and the leeway
    expect(nowOutcome(s, header)).toBe('AUTH_JWT_EXPIRED');
  });
});
