import type { IncomingHttpHeaders } from 'node:http';
import { LibsqlctlError, NotFoundError } from '../errors.js';
import { DEFAULT_NAMESPACE } from '../engine/namespaces.js';
import type { ClientConnection } from '../engine/client-connection.js';
import type { NamespaceDb } from '../engine/namespace-db.js';
import type { Principal } from './auth/permissions.js';
import type { ServerContext } from './context.js';

/** Who a request runs as: what a replica forwards to its primary with a write (spec §6.7). */
export interface CallerAuth {
  principal: Principal;
  /** The credential the caller presented (`authorization` value, or `Bearer <jwt>` from a WebSocket hello). */
  credential: string | undefined;
}

/** A request's target database and rights, resolved from its headers (spec §2, §3). */
export interface Session {
  namespace: string;
  db: NamespaceDb;
  allowWrite: boolean;
  auth: CallerAuth;
  /** Opens a connection for this caller (on a replica, one that forwards writes). */
  connect(): ClientConnection;
}

/** Bad namespace headers: 400. */
export class InvalidNamespaceError extends LibsqlctlError {}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Picks the namespace from `x-namespace-bin`, `x-namespace` or the Host's first label. */
export function namespaceFromHeaders(ctx: ServerContext, headers: IncomingHttpHeaders): string {
  if (!ctx.config.namespaces.enabled) return DEFAULT_NAMESPACE;
  const bin = header(headers, 'x-namespace-bin');
  if (bin !== undefined) {
    if (!/^[A-Za-z0-9+/]*$/.test(bin) || bin.length % 4 === 1) {
      throw new InvalidNamespaceError('INVALID_NAMESPACE_BYTES', 'Invalid namespace bytes: `invalid base64`');
    }
    let name: string;
    try {
      name = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(bin, 'base64'));
    } catch {
      throw new InvalidNamespaceError('INVALID_NAMESPACE_BYTES', 'Invalid namespace bytes: `invalid utf-8`');
    }
    if (name === '') throw new InvalidNamespaceError('INVALID_NAMESPACE', 'Invalid namespace');
    return name;
  }
  const raw = header(headers, 'x-namespace');
  if (raw !== undefined) {
    if (raw === '') throw new InvalidNamespaceError('INVALID_NAMESPACE', 'Invalid namespace');
    return raw;
  }
  const host = header(headers, 'host');
  if (host === undefined) {
    if (ctx.config.namespaces.defaultDisabled) throw new InvalidNamespaceError('INVALID_HOST', 'Invalid host header: `missing host header`');
    return DEFAULT_NAMESPACE;
  }
  const dot = host.indexOf('.');
  if (dot < 0) {
    if (ctx.config.namespaces.defaultDisabled) {
      throw new InvalidNamespaceError('INVALID_HOST', 'Invalid host header: `host header should be in the format <namespace>.<...>`');
    }
    return DEFAULT_NAMESPACE;
  }
  return host.slice(0, dot);
}

/** Credentials of an HTTP request: `authorization`, else `x-authorization`. */
export function authHeader(headers: IncomingHttpHeaders): string | undefined {
  return header(headers, 'authorization') ?? header(headers, 'x-authorization');
}

/**
 * Whether a namespace exists, without opening its database when that can be told from what is
 * already known (open, `default`, or registered). Otherwise a primary answers 404 at once and a
 * replica asks its primary (which opens the namespace on yes, as sqld's lazy replica does).
 */
export async function checkNamespaceExists(ctx: ServerContext, namespace: string): Promise<void> {
  if (ctx.namespaces.peek(namespace) !== undefined) return;
  if (namespace === DEFAULT_NAMESPACE || ctx.namespaces.registry.has(namespace)) return;
  await ctx.namespaces.get(namespace);
}

/**
 * Namespace first (a missing one is 404 before any credential check), then authentication; a
 * principal that may not read the namespace gets the same 404 (its existence stays hidden). The
 * database is opened only for an authenticated caller.
 */
export async function resolveSession(ctx: ServerContext, headers: IncomingHttpHeaders, credential = authHeader(headers)): Promise<Session> {
  const namespace = namespaceFromHeaders(ctx, headers);
  await checkNamespaceExists(ctx, namespace);
  const { strategy } = await ctx.auth.forNamespace(namespace);
  const principal = await strategy.authenticateHttp(credential);
  assertCanRead(principal, namespace);
  return makeSession(ctx, namespace, await ctx.namespaces.get(namespace), principal, credential);
}

/**
 * `resolveSession` without a turn of the promise queue when all it needs is at hand: the namespace
 * open, its authentication strategy built, and the credential one that strategy checks at once (any
 * but a JWT it has not verified before). The session, the same error, or undefined: then ask
 * `resolveSession`.
 */
export function resolveSessionNow(ctx: ServerContext, headers: IncomingHttpHeaders, credential = authHeader(headers)): Session | undefined {
  const namespace = namespaceFromHeaders(ctx, headers);
  const db = ctx.namespaces.getOpen(namespace);
  if (db === undefined) return undefined;
  const principal = ctx.auth.forNamespaceNow(namespace)?.strategy.authenticateHttpNow(credential);
  if (principal === undefined) return undefined;
  assertCanRead(principal, namespace);
  return makeSession(ctx, namespace, db, principal, credential);
}

/** A principal that may not read the namespace gets the 404 of a missing one (its existence stays hidden). */
function assertCanRead(principal: Principal, namespace: string): void {
  if (!principal.canRead(namespace)) throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${namespace}\` doesn't exist`);
}

/** A class rather than an object with a closure: one is made per request. */
class ResolvedSession implements Session {
  readonly allowWrite: boolean;
  readonly auth: CallerAuth;

  constructor(
    private readonly ctx: ServerContext,
    readonly namespace: string,
    readonly db: NamespaceDb,
    principal: Principal,
    credential: string | undefined,
  ) {
    this.allowWrite = principal.canWrite(namespace);
    this.auth = { principal, credential };
  }

  connect(): ClientConnection {
    return this.ctx.connect(this.namespace, this.db, this.auth);
  }
}

function makeSession(ctx: ServerContext, namespace: string, db: NamespaceDb, principal: Principal, credential: string | undefined): Session {
  return new ResolvedSession(ctx, namespace, db, principal, credential);
}
