import { AuthError } from '../auth/auth-error.js';
import { JWT_EXP_LEEWAY_SECONDS, type AuthConfig } from '../auth/strategy.js';
import type { HranaErrorBody } from '../hrana/protocol.js';

/**
 * sqld checks a WebSocket session's JWT only in `hello`, so a session outlives its token. We check
 * `exp` again for every request, with the leeway of the HTTP path; the client may send a new
 * `hello` with a fresh token (Hrana 2+) to go on.
 */

/**
 * The `exp` claim (seconds) of a token the JWT strategy accepted in `hello`, or null: no claim, or
 * the server does not authenticate with JWTs (a basic credential is not a token).
 */
export function tokenExpiry(auth: AuthConfig, jwt: string | null): number | null {
  if (auth.kind !== 'jwt' || jwt === null) return null;
  try {
    // The token was verified in `hello`: only its payload's `exp` is read here (without jose,
    // which is loaded only when a JWT is checked).
    const payload = jwt.split('.')[1];
    if (payload === undefined) return null;
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isSafeInteger(exp) ? exp : null;
  } catch {
    return null; // cannot happen for a verified token; treat it as having no expiry
  }
}

/** The HTTP path's rule: expired once `exp` lies more than the leeway in the past. */
export function isExpired(exp: number | null, nowMs: number): boolean {
  return exp !== null && exp < Math.floor(nowMs / 1000) - JWT_EXP_LEEWAY_SECONDS;
}

/** The answer to a request of an expired session: the body `hello` would fail with. */
export function expiredError(): HranaErrorBody {
  const err = AuthError.jwtExpired();
  return { message: `Authentication failed: ${err.message}`, code: err.code };
}
