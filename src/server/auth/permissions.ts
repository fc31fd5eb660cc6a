import { AuthError } from './auth-error.js';

/** What an authenticated caller may do, per namespace. */
export interface Principal {
  canRead(ns: string): boolean;
  canWrite(ns: string): boolean;
  /** May the namespace be the target of `ATTACH` (attach-read)? */
  canAttach(ns: string): boolean;
  /**
   * May DDL run on a database linked to a shared schema (the `ddl` scope)? Only full access and
   * `p.ddl` grant it; a principal without this method is treated as `false`.
   */
  canDdl?(ns: string): boolean;
}

const yes = (): boolean => true;

/** Unrestricted access: authentication disabled, or accepted HTTP Basic credentials. */
export const FULL_ACCESS: Principal = Object.freeze({
  canRead: yes,
  canWrite: yes,
  canAttach: yes,
  canDdl: yes,
});

/** Legacy `a` claim values. */
export type LegacyAccess = 'ro' | 'rw' | 'roa';

const LEGACY_ACCESS: ReadonlySet<string> = new Set<LegacyAccess>(['ro', 'rw', 'roa']);

/** sqld's legacy form: one optional namespace (`id`) and one access level (`a`). */
class LegacyPrincipal implements Principal {
  constructor(
    private readonly namespace: string | undefined,
    private readonly access: LegacyAccess,
  ) {}

  private covers(ns: string): boolean {
    return this.namespace === undefined || this.namespace === ns;
  }

  canRead(ns: string): boolean {
    return this.covers(ns);
  }

  canWrite(ns: string): boolean {
    return this.access === 'rw' && this.covers(ns);
  }

  canAttach(ns: string): boolean {
    return this.access === 'roa' && this.covers(ns);
  }

  canDdl(): boolean {
    return false;
  }
}

/** A compiled `Scope`: membership by name, or by the `LIBSQL_GID` tag (name-independent). */
interface CompiledScope {
  readonly names: ReadonlySet<string>;
  readonly matchesGid: boolean;
}

function inScope(scope: CompiledScope | undefined, ns: string): boolean {
  return scope !== undefined && (scope.matchesGid || scope.names.has(ns));
}

interface ScopeSet {
  ro?: CompiledScope;
  rw?: CompiledScope;
  roa?: CompiledScope;
  rwa?: CompiledScope;
  ddl?: CompiledScope;
}

/** sqld's fine-grained form (`p` claim). */
class ScopedPrincipal implements Principal {
  constructor(private readonly scopes: ScopeSet) {}

  canWrite(ns: string): boolean {
    const s = this.scopes;
    return inScope(s.rw, ns) || inScope(s.rwa, ns) || inScope(s.ddl, ns);
  }

  canRead(ns: string): boolean {
    return this.canWrite(ns) || inScope(this.scopes.ro, ns) || inScope(this.scopes.roa, ns);
  }

  canAttach(ns: string): boolean {
    return inScope(this.scopes.roa, ns) || inScope(this.scopes.rwa, ns);
  }

  canDdl(ns: string): boolean {
    return inScope(this.scopes.ddl, ns);
  }
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON `null` and a missing member both mean "absent" (serde `Option`). */
function absent(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

function invalid(): AuthError {
  return AuthError.jwtInvalid();
}

/** A namespace name in a claim: a non-empty string. */
function namespaceName(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid();
  return value;
}

function stringSet(value: unknown, item: (v: unknown) => string): Set<string> | undefined {
  if (absent(value)) return undefined;
  if (!Array.isArray(value)) throw invalid();
  return new Set(value.map(item));
}

function anyString(value: unknown): string {
  if (typeof value !== 'string') throw invalid();
  return value;
}

function compileScope(value: unknown, gid: string | undefined): CompiledScope | undefined {
  if (absent(value)) return undefined;
  if (!isObject(value)) throw invalid();
  const names = stringSet(value['ns'], namespaceName) ?? new Set<string>();
  const tags = stringSet(value['tags'], anyString);
  return { names, matchesGid: gid !== undefined && tags !== undefined && tags.has(gid) };
}

function compilePermissions(p: unknown, gid: string | undefined): ScopeSet {
  if (!isObject(p)) throw invalid();
  const scopes: ScopeSet = {};
  for (const level of ['ro', 'rw', 'roa', 'rwa', 'ddl'] as const) {
    const scope = compileScope(p[level], gid);
    if (scope !== undefined) scopes[level] = scope;
  }
  return scopes;
}

export interface ClaimsOptions {
  /** Value of `LIBSQL_GID` (the config layer reads the environment); matches `tags` in scopes. */
  gid?: string;
}

/**
 * Turns a verified JWT payload into a Principal, following sqld: `p` (if present and not null)
 * wins over `id`/`a`; otherwise `id` restricts to one namespace and `a` (`ro`|`rw`|`roa`,
 * default `rw`) sets the level. All three claims are type-checked even when unused; a claim of
 * the wrong JSON type throws `AUTH_JWT_INVALID`. Note that a token with none of them grants
 * read+write on every namespace but not attach (sqld's legacy default), so it is not FULL_ACCESS.
 */
export function principalFromClaims(claims: unknown, opts: ClaimsOptions = {}): Principal {
  if (!isObject(claims)) throw invalid();
  const id = claims['id'];
  const a = claims['a'];
  const p = claims['p'];
  const namespace = absent(id) ? undefined : namespaceName(id);
  let access: LegacyAccess = 'rw';
  if (!absent(a)) {
    if (typeof a !== 'string' || !LEGACY_ACCESS.has(a)) throw invalid();
    access = a as LegacyAccess;
  }
  if (!absent(p)) return new ScopedPrincipal(compilePermissions(p, opts.gid));
  return new LegacyPrincipal(namespace, access);
}

/** True if the principal may run DDL on a shared-schema database (missing `canDdl` = no). */
export function canRunSharedSchemaDdl(principal: Principal, ns: string): boolean {
  return principal.canDdl?.(ns) ?? false;
}
