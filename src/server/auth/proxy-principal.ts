/**
 * `x-proxy-authorization` (spec §6.7): the principal a replica authenticated, as sqld serializes it —
 * `"FullAccess"`, `"Anonymous"`, `{"Legacy":{"namespace":…,"perm":…}}` or `{"Authorized":{ro,rw,roa,rwa,ddl}}`.
 * We write the rights the principal has on the namespace of the call (what the primary checks);
 * rights on other namespaces (ATTACH targets) are not carried.
 */
import { AuthError } from './auth-error.js';
import { FULL_ACCESS, principalFromClaims, type Principal } from './permissions.js';

const NOBODY: Principal = Object.freeze({
  canRead: () => false,
  canWrite: () => false,
  canAttach: () => false,
  canDdl: () => false,
});

export function principalToProxyJson(principal: Principal, namespace: string): string {
  if (principal === FULL_ACCESS) return JSON.stringify('FullAccess');
  const scope = (yes: boolean): { ns: string[]; tags: null } | null => (yes ? { ns: [namespace], tags: null } : null);
  return JSON.stringify({
    Authorized: {
      ro: scope(principal.canRead(namespace)),
      rw: scope(principal.canWrite(namespace)),
      roa: scope(principal.canAttach(namespace)),
      rwa: null,
      ddl: scope(principal.canDdl?.(namespace) ?? false),
    },
  });
}

/** Parses a forwarded principal; anything else is AUTH_JWT_INVALID-like garbage (AuthError). */
export function principalFromProxyJson(text: string, opts: { gid?: string } = {}): Principal {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw AuthError.jwtInvalid();
  }
  if (value === 'FullAccess') return FULL_ACCESS;
  if (value === 'Anonymous') return NOBODY;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const legacy = obj['Legacy'];
    if (typeof legacy === 'object' && legacy !== null) {
      const l = legacy as Record<string, unknown>;
      return principalFromClaims({ id: l['namespace'] ?? null, a: l['perm'] ?? null }, opts);
    }
    if (obj['Authorized'] !== undefined) return principalFromClaims({ p: obj['Authorized'] }, opts);
  }
  throw AuthError.jwtInvalid();
}
