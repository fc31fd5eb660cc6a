import { LibsqlctlError, NotFoundError } from '../../errors.js';
import { DumpLoadError } from '../../engine/dump-load.js';
import { InvalidNamespaceNameError } from '../../engine/namespace-name.js';
import { NamespaceExistsError } from '../../engine/namespaces.js';
import { ForbiddenError, SqlError } from '../../engine/sql-error.js';
import { RequestBodyError } from '../admin/admin-body.js';
import { AdminRequestError } from '../admin/config-json.js';
import { ForkError } from '../admin/fork.js';
import { ThrottledError } from '../admission.js';
import { AuthError } from '../auth/auth-error.js';
import { HranaError, ProtocolError } from '../hrana/errors.js';
import { InvalidNamespaceError } from '../session.js';

export interface HttpErrorAnswer {
  status: number;
  contentType: 'application/json' | 'text/plain; charset=utf-8';
  body: string;
}

function json(status: number, body: unknown): HttpErrorAnswer {
  return { status, contentType: 'application/json', body: JSON.stringify(body) };
}

/** Status codes of statement-level Hrana errors on the HTTP v1 API (spec §4.3). */
export function hranaV1Status(code: string): number {
  if (code === 'ARGS_BOTH_POSITIONAL_AND_NAMED') return 501;
  if (code === 'TRANSACTION_TIMEOUT' || code === 'TRANSACTION_BUSY') return 503;
  if (code.startsWith('SQLITE_')) return 500;
  return 400;
}

/**
 * The one place domain errors become HTTP answers, on the user port and the admin port (spec §4.10): sqld's status codes
 * and `{"error": ...}` bodies; Hrana protocol errors as 400 text/plain; Hrana-coded errors that abort
 * a request (STREAM_EXPIRED) as a Hrana `Error` body.
 */
export function httpErrorAnswer(err: unknown): HttpErrorAnswer {
  if (err instanceof ProtocolError) return { status: 400, contentType: 'text/plain; charset=utf-8', body: err.message };
  if (err instanceof HranaError) return json(400, { message: err.message, code: err.code });
  if (err instanceof AuthError) return json(401, { error: `Unauthorized: \`${err.message}\`` });
  if (err instanceof ForbiddenError) return json(403, { error: err.message });
  if (err instanceof NotFoundError) return json(404, { error: err.message });
  if (err instanceof InvalidNamespaceError || err instanceof InvalidNamespaceNameError) return json(400, { error: err.message });
  if (err instanceof NamespaceExistsError || err instanceof DumpLoadError || err instanceof AdminRequestError) return json(400, { error: err.message });
  if (err instanceof ForkError) return json(err.status, { error: err.message });
  if (err instanceof RequestBodyError) return { status: err.status, contentType: 'text/plain; charset=utf-8', body: err.message };
  if (err instanceof ThrottledError) return json(429, { error: err.message });
  if (err instanceof SqlError) {
    if (err.code === 'RESPONSE_TOO_LARGE') return { status: 400, contentType: 'text/plain; charset=utf-8', body: err.message };
    if (err.code === 'TRANSACTION_TIMEOUT') return json(400, { error: 'Transaction timed-out' });
    return json(500, { error: err.message });
  }
  const fastifyErr = err as { statusCode?: unknown; message?: unknown };
  if (typeof fastifyErr.statusCode === 'number' && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500) {
    return json(fastifyErr.statusCode, { error: String(fastifyErr.message) });
  }
  const message = err instanceof LibsqlctlError || err instanceof Error ? err.message : String(err);
  return json(500, { error: `Internal Error: \`${message}\`` });
}
