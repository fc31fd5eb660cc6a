/**
 * What an S3 failure means, whichever client met it (the AWS SDK, or the signed reads of
 * s3-http.ts): its code and status, whether it is "not found", whether a retry may help, and the
 * one StorageError (with a hint) it becomes at the storage boundary. Imports no SDK: errors are
 * read by their shape.
 */
import { LibsqlctlError } from '../../errors.js';
import { StorageError } from './storage.js';

export interface S3ErrorShape {
  code: string;
  status: number | undefined;
  message: string;
}

/** An S3 error answer (or a network failure) met by the signed reads, shaped as the SDK's are read. */
export class S3RequestError extends Error {
  constructor(
    readonly code: string,
    readonly status: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = code;
  }
}

export function errorShape(err: unknown): S3ErrorShape {
  if (err instanceof S3RequestError) return { code: err.code, status: err.status, message: err.message };
  if (err instanceof Error) {
    // The SDK's service exceptions carry the HTTP status in `$metadata`.
    const meta = (err as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
    if (meta !== undefined && typeof meta === 'object') {
      const status = typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
      return { code: err.name, status, message: err.message };
    }
    const code = 'code' in err && typeof err.code === 'string' ? err.code : err.name;
    return { code, status: undefined, message: err.message };
  }
  return { code: 'Error', status: undefined, message: String(err) };
}

export function isNotFound(err: unknown): boolean {
  const { code, status } = errorShape(err);
  return code === 'NoSuchKey' || code === 'NotFound' || (status === 404 && code !== 'NoSuchBucket');
}

export const CREDENTIAL_CODES: ReadonlySet<string> = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'CredentialsProviderError',
  'Forbidden',
]);
export const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'ETIMEDOUT',
  'TimeoutError',
  'EHOSTUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);

export function hintFor({ code, status, message }: S3ErrorShape): string | undefined {
  if (CREDENTIAL_CODES.has(code) || status === 403) {
    return 'check the credentials (LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID, LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY, or the AWS default chain) and their permissions on the bucket';
  }
  if (NETWORK_CODES.has(code)) return 'check LIBSQL_BOTTOMLESS_ENDPOINT and that the store is reachable';
  if (code === 'NoSuchBucket') return 'check LIBSQL_BOTTOMLESS_BUCKET (the server creates the bucket on start)';
  const wrongRegion = code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301;
  if (wrongRegion || /region/i.test(message)) return "set LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION (or AWS_REGION) to the bucket's region";
  return undefined;
}

/** The StorageError an S3 operation's failure becomes (our own errors pass through). */
export function s3Failure(err: unknown, op: string, bucket: string, key: string | null): LibsqlctlError {
  if (err instanceof LibsqlctlError) return err;
  const shape = errorShape(err);
  const status = shape.status === undefined ? '' : `, HTTP ${shape.status}`;
  const where = key === null ? `s3://${bucket}` : `s3://${bucket}/${key}`;
  return new StorageError(`S3 ${op} of ${where} failed: ${shape.code}${status}: ${shape.message}`, { cause: err, hint: hintFor(shape) });
}
