/**
 * Who a gRPC call is and which namespace it is for (spec §6.2, §6.5, §6.7); the one place where
 * namespace and authentication failures of gRPC calls become gRPC statuses.
 *
 * - User port (embedded replicas): every call authenticates with the user strategy
 *   (`authorization`, else `x-authorization`), like the HTTP API.
 * - Inter-node port, ReplicationLog: calls carrying `libsql-proxied` authenticate like the user port
 *   (a replica relaying an embedded replica's call); others are replicas following the log.
 * - Inter-node port, Proxy: the replica's `x-proxy-authorization` principal is trusted only from a
 *   peer that proved it is a node of the cluster (mTLS client certificate, or the node secret);
 *   from anyone else the forwarded user credential is validated again. sqld trusts the header from
 *   anyone who reaches the port (documented deviation, docs/REPLICATION.md).
 */
import { NotFoundError } from '../../errors.js';
import { DEFAULT_NAMESPACE } from '../../engine/namespaces.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { GrpcError, GrpcStatus, type CallContext, type CallMetadata } from '../../rpc/service.js';
import { AuthError } from '../auth/auth-error.js';
import type { Principal } from '../auth/permissions.js';
import { principalFromProxyJson } from '../auth/proxy-principal.js';
import type { ServerContext } from '../context.js';
import { checkNamespaceExists } from '../session.js';

export interface GrpcCallTarget {
  namespace: string;
  db: NamespaceDb;
  allowWrite: boolean;
}

/** The namespace of a call: `x-namespace-bin` when namespaces are enabled, else `default`. */
export function namespaceOfCall(ctx: ServerContext, meta: CallMetadata): string {
  if (!ctx.config.namespaces.enabled) return DEFAULT_NAMESPACE;
  const raw = meta.getBinary('x-namespace-bin');
  if (raw === undefined) return DEFAULT_NAMESPACE;
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'Invalid namespace bytes');
  }
  if (name === '') throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'Invalid namespace');
  return name;
}

async function openNamespace(ctx: ServerContext, namespace: string): Promise<NamespaceDb> {
  try {
    return await ctx.namespaces.get(namespace);
  } catch (err) {
    if (err instanceof NotFoundError) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'NAMESPACE_DOESNT_EXIST', { cause: err });
    throw new GrpcError(GrpcStatus.UNAVAILABLE, `Unable to open namespace ${namespace}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function authenticate(ctx: ServerContext, namespace: string, meta: CallMetadata): Promise<Principal> {
  const { strategy } = await ctx.auth.forNamespace(namespace);
  try {
    return await strategy.authenticateHttp(meta.get('authorization') ?? meta.get('x-authorization'));
  } catch (err) {
    if (err instanceof AuthError) {
      // sqld: a call without credentials fails while parsing the metadata, before authentication
      if (err.code === 'AUTH_HEADER_NOT_FOUND') throw new GrpcError(GrpcStatus.INTERNAL, `Error parsing auth header: ${err.message}`, { cause: err });
      throw new GrpcError(GrpcStatus.UNAUTHENTICATED, `AuthError: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

function requireRead(principal: Principal, namespace: string): void {
  if (!principal.canRead(namespace)) throw new GrpcError(GrpcStatus.PERMISSION_DENIED, `Authorization forbidden: Current session doesn't have Read permission to namespace ${namespace}`);
}

/** ReplicationLog calls. */
export async function resolveLogCall(ctx: ServerContext, call: CallContext): Promise<GrpcCallTarget> {
  const namespace = namespaceOfCall(ctx, call.metadata);
  const db = await openNamespace(ctx, namespace);
  if (call.transport === 'user' || call.metadata.get('libsql-proxied') !== undefined) {
    requireRead(await authenticate(ctx, namespace, call.metadata), namespace);
  }
  return { namespace, db, allowWrite: false };
}

/** Proxy calls. */
export async function resolveProxyCall(ctx: ServerContext, call: CallContext): Promise<GrpcCallTarget> {
  const namespace = namespaceOfCall(ctx, call.metadata);
  const db = await openNamespace(ctx, namespace);
  let principal: Principal;
  if (call.transport === 'user') {
    principal = await authenticate(ctx, namespace, call.metadata);
  } else {
    const forwarded = call.metadata.get('x-proxy-authorization');
    if (forwarded === undefined) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'x-proxy-authorization not set');
    if (call.trustedPeer) {
      try {
        principal = principalFromProxyJson(forwarded);
      } catch (err) {
        throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'invalid x-proxy-authorization', { cause: err });
      }
    } else {
      principal = await authenticate(ctx, namespace, call.metadata);
    }
  }
  requireRead(principal, namespace);
  return { namespace, db, allowWrite: principal.canWrite(namespace) };
}

/**
 * gRPC-web calls on the user port, before their body is read: the namespace exists and the caller
 * may read it (the handler's own check, with the body, decides the rest).
 */
export async function preAuthorizeUserCall(ctx: ServerContext, meta: CallMetadata): Promise<void> {
  const namespace = namespaceOfCall(ctx, meta);
  try {
    await checkNamespaceExists(ctx, namespace);
  } catch (err) {
    if (err instanceof NotFoundError) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'NAMESPACE_DOESNT_EXIST', { cause: err });
    throw err;
  }
  requireRead(await authenticate(ctx, namespace, meta), namespace);
}
