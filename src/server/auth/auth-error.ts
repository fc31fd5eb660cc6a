import { LibsqlctlError } from '../../errors.js';

/**
 * Authentication failure codes, identical to sqld's `AuthError::code()` strings. Two variants
 * (malformed auth string, non-ASCII header) deliberately share `AUTH_HEADER_MALFORMED`.
 */
export type AuthErrorCode =
  | 'AUTH_HTTP_HEADER_MISSING'
  | 'AUTH_HTTP_HEADER_INVALID'
  | 'AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME'
  | 'AUTH_BASIC_NOT_ALLOWED'
  | 'AUTH_BASIC_REJECTED'
  | 'AUTH_JWT_MISSING'
  | 'AUTH_JWT_NOT_ALLOWED'
  | 'AUTH_JWT_INVALID'
  | 'AUTH_JWT_EXPIRED'
  | 'AUTH_JWT_IMMATURE'
  | 'AUTH_HEADER_MALFORMED'
  | 'AUTH_HEADER_NOT_FOUND'
  | 'AUTH_FAILED';

/** Stable user-visible messages (sqld's wording, including its backticks). */
export const AUTH_MESSAGES = {
  headerMissing: 'The `Authorization` HTTP header is required but was not specified',
  headerInvalid: 'The `Authorization` HTTP header has invalid value',
  unsupportedScheme: 'The authentication scheme in the `Authorization` HTTP header is not supported',
  basicNotAllowed: 'The `Basic` HTTP authentication scheme is not allowed',
  basicRejected: 'The `Basic` HTTP authentication credentials were rejected',
  jwtMissing: 'Authentication is required but no JWT was specified',
  jwtNotAllowed: 'Authentication using a JWT is not allowed',
  jwtInvalid: 'The JWT is invalid',
  jwtExpired: 'The JWT has expired',
  jwtImmature: 'The JWT is immature (not valid yet)',
  authStringMalformed: "Auth string does not conform to '<scheme> <token>' form",
  headerNotFound: 'Expected authorization header but none given',
  headerNonAscii: 'Non-ASCII auth header',
  other: 'Authentication failed',
} as const;

/**
 * A credential was missing, malformed or rejected. Boundaries render it as
 * HTTP `401 {"error":"Unauthorized: `<message>`"}` or a Hrana `hello_error`
 * `{"message":"Authentication failed: <message>","code":"<code>"}`.
 */
export class AuthError extends LibsqlctlError {
  declare readonly code: AuthErrorCode;

  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }

  static headerMissing(): AuthError {
    return new AuthError('AUTH_HTTP_HEADER_MISSING', AUTH_MESSAGES.headerMissing);
  }

  static headerInvalid(): AuthError {
    return new AuthError('AUTH_HTTP_HEADER_INVALID', AUTH_MESSAGES.headerInvalid);
  }

  static unsupportedScheme(): AuthError {
    return new AuthError('AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME', AUTH_MESSAGES.unsupportedScheme);
  }

  static basicNotAllowed(): AuthError {
    return new AuthError('AUTH_BASIC_NOT_ALLOWED', AUTH_MESSAGES.basicNotAllowed);
  }

  static basicRejected(): AuthError {
    return new AuthError('AUTH_BASIC_REJECTED', AUTH_MESSAGES.basicRejected);
  }

  static jwtMissing(): AuthError {
    return new AuthError('AUTH_JWT_MISSING', AUTH_MESSAGES.jwtMissing);
  }

  static jwtNotAllowed(): AuthError {
    return new AuthError('AUTH_JWT_NOT_ALLOWED', AUTH_MESSAGES.jwtNotAllowed);
  }

  static jwtInvalid(cause?: unknown): AuthError {
    return new AuthError('AUTH_JWT_INVALID', AUTH_MESSAGES.jwtInvalid, { cause });
  }

  static jwtExpired(): AuthError {
    return new AuthError('AUTH_JWT_EXPIRED', AUTH_MESSAGES.jwtExpired);
  }

  static jwtImmature(): AuthError {
    return new AuthError('AUTH_JWT_IMMATURE', AUTH_MESSAGES.jwtImmature);
  }

  static authStringMalformed(): AuthError {
    return new AuthError('AUTH_HEADER_MALFORMED', AUTH_MESSAGES.authStringMalformed);
  }

  static headerNotFound(): AuthError {
    return new AuthError('AUTH_HEADER_NOT_FOUND', AUTH_MESSAGES.headerNotFound);
  }

  static headerNonAscii(): AuthError {
    return new AuthError('AUTH_HEADER_MALFORMED', AUTH_MESSAGES.headerNonAscii);
  }

  static other(cause?: unknown): AuthError {
    return new AuthError('AUTH_FAILED', AUTH_MESSAGES.other, { cause });
  }
}
