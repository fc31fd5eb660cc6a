import { AuthError } from './auth-error.js';
import { loadJose, type JwtKey } from './jwt-keys.js';
import { FULL_ACCESS, principalFromClaims, type Principal } from './permissions.js';

export type AuthConfig =
  | { kind: 'disabled' }
  | { kind: 'basic'; credential: string }
  | { kind: 'jwt'; keys: JwtKey[] };

export interface AuthStrategy {
  /** HTTP: value of the `authorization` header, else `x-authorization` (caller picks), undefined if none. */
  authenticateHttp(header: string | undefined): Promise<Principal>;
  /**
   * `authenticateHttp` without a turn of the promise queue where the answer is known at once: the
   * principal, the same error, or undefined when only `authenticateHttp` can tell (a JWT not seen yet).
   */
  authenticateHttpNow(header: string | undefined): Principal | undefined;
  /** WebSocket hello: the `jwt` field (null = no credentials); treated as `Bearer <jwt>` (basic compares it as in §3.5). */
  authenticateHello(jwt: string | null): Promise<Principal>;
}

export interface AuthStrategyOptions {
  /** Value of `LIBSQL_GID`, matched against `tags` of `p` scopes. */
  gid?: string;
  /** Clock in milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
  /** Bound of the verified-token cache (default 1000; 0 disables it). */
  cacheSize?: number;
}

/** sqld validates `exp` with jsonwebtoken's default leeway. */
export const JWT_EXP_LEEWAY_SECONDS = 60;
const DEFAULT_CACHE_SIZE = 1000;
// Visible ASCII plus space and tab: what an HTTP header value may hold for `to_str()` to succeed.
const NON_ASCII_HEADER = /[^\t\x20-\x7e]/;

/** Splits `<scheme> <token>` at the first space. */
function splitAuthString(value: string): { scheme: string; token: string } {
  const space = value.indexOf(' ');
  if (space < 0) throw AuthError.authStringMalformed();
  return { scheme: value.slice(0, space), token: value.slice(space + 1) };
}

function checkHttpHeader(header: string | undefined): string {
  if (header === undefined) throw AuthError.headerNotFound();
  if (NON_ASCII_HEADER.test(header)) throw AuthError.headerNonAscii();
  return header;
}

/** The token of a `Bearer <token>` header (any case of the scheme word). */
function bearerToken(header: string | undefined): string {
  const { scheme, token } = splitAuthString(checkHttpHeader(header));
  if (scheme.toLowerCase() !== 'bearer') throw AuthError.unsupportedScheme();
  return token;
}

/** Runs a synchronous check, turning a throw into a rejected promise. */
function settle<T>(check: () => T): Promise<T> {
  return new Promise((resolve) => resolve(check()));
}

class DisabledStrategy implements AuthStrategy {
  authenticateHttp(): Promise<Principal> {
    return Promise.resolve(FULL_ACCESS);
  }

  authenticateHttpNow(): Principal {
    return FULL_ACCESS;
  }

  authenticateHello(): Promise<Principal> {
    return Promise.resolve(FULL_ACCESS);
  }
}

/**
 * sqld's HTTP Basic: the text after the first space must *contain* the configured credential
 * with trailing `=` removed; the scheme word is not checked.
 */
class BasicStrategy implements AuthStrategy {
  private readonly expected: string;

  constructor(credential: string) {
    this.expected = credential.replace(/=+$/, '');
  }

  private check(token: string): Principal {
    if (!token.includes(this.expected)) throw AuthError.basicRejected();
    return FULL_ACCESS;
  }

  authenticateHttp(header: string | undefined): Promise<Principal> {
    return settle(() => this.authenticateHttpNow(header));
  }

  authenticateHttpNow(header: string | undefined): Principal {
    return this.check(splitAuthString(checkHttpHeader(header)).token);
  }

  authenticateHello(jwt: string | null): Promise<Principal> {
    return settle(() => {
      if (jwt === null) throw AuthError.headerNotFound();
      return this.check(jwt);
    });
  }
}

interface VerifiedToken {
  readonly principal: Principal;
  readonly exp: number | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class JwtStrategy implements AuthStrategy {
  private readonly cache = new Map<string, VerifiedToken>();
  private readonly now: () => number;
  private readonly cacheSize: number;

  constructor(
    private readonly keys: readonly JwtKey[],
    private readonly gid: string | undefined,
    opts: AuthStrategyOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.cacheSize = Math.max(0, opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  }

  async authenticateHttp(header: string | undefined): Promise<Principal> {
    return this.verify(bearerToken(header));
  }

  authenticateHttpNow(header: string | undefined): Principal | undefined {
    return this.cachedPrincipal(bearerToken(header));
  }

  async authenticateHello(jwt: string | null): Promise<Principal> {
    if (jwt === null) throw AuthError.headerNotFound();
    return this.verify(jwt);
  }

  private isExpired(exp: number | undefined): boolean {
    if (exp === undefined) return false;
    const nowSeconds = Math.floor(this.now() / 1000);
    return exp < nowSeconds - JWT_EXP_LEEWAY_SECONDS;
  }

  /** A token verified before (throws once it expired), or undefined. */
  private cachedPrincipal(token: string): Principal | undefined {
    const cached = this.cache.get(token);
    if (cached === undefined) return undefined;
    this.cache.delete(token);
    if (this.isExpired(cached.exp)) throw AuthError.jwtExpired();
    this.cache.set(token, cached); // most recently used goes last
    return cached.principal;
  }

  private async verify(token: string): Promise<Principal> {
    const cached = this.cachedPrincipal(token);
    if (cached !== undefined) return cached;
    const verified = await this.verifyUncached(token);
    this.remember(token, verified);
    return verified.principal;
  }

  private remember(token: string, verified: VerifiedToken): void {
    if (this.cacheSize === 0) return;
    while (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (oldest.done === true) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(token, verified);
  }

  /** Tries every key; signature/format failures move on, anything else is final. */
  private async verifyUncached(token: string): Promise<VerifiedToken> {
    let lastError: unknown;
    for (const { key } of this.keys) {
      let payload: Uint8Array;
      try {
        ({ payload } = await (await loadJose()).compactVerify(token, key, { algorithms: ['EdDSA'] }));
      } catch (err) {
        lastError = err;
        continue;
      }
      return this.validateClaims(payload);
    }
    throw AuthError.jwtInvalid(lastError);
  }

  /** The checks jsonwebtoken performs after the signature, in its order: exp, aud, claim types. */
  private validateClaims(payload: Uint8Array): VerifiedToken {
    let claims: unknown;
    try {
      claims = JSON.parse(utf8.decode(payload));
    } catch (err) {
      throw AuthError.jwtInvalid(err);
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw AuthError.jwtInvalid();
    const record = claims as Record<string, unknown>;
    const rawExp = record['exp'];
    const exp = typeof rawExp === 'number' && Number.isSafeInteger(rawExp) ? rawExp : undefined;
    if (this.isExpired(exp)) throw AuthError.jwtExpired();
    // No audience is configured, so any `aud` claim fails validation (jsonwebtoken's InvalidAudience).
    if (record['aud'] !== undefined && record['aud'] !== null) throw AuthError.other();
    if (rawExp !== undefined && rawExp !== null && exp === undefined) throw AuthError.jwtInvalid();
    // `nbf` is deliberately not checked, as in sqld.
    return { principal: principalFromClaims(record, { gid: this.gid }), exp };
  }
}

/** Builds the strategy for a global or per-namespace auth configuration. Keys are imported already. */
export function createAuthStrategy(cfg: AuthConfig, opts: AuthStrategyOptions = {}): AuthStrategy {
  switch (cfg.kind) {
    case 'disabled':
      return new DisabledStrategy();
    case 'basic':
      return new BasicStrategy(cfg.credential);
    case 'jwt':
      return new JwtStrategy([...cfg.keys], opts.gid, opts);
  }
}
