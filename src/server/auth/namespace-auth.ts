import type { Namespaces } from '../../engine/namespaces.js';
import { parseJwtKeys } from './jwt-keys.js';
import { createAuthStrategy, type AuthConfig, type AuthStrategy, type AuthStrategyOptions } from './strategy.js';

/** The strategy a namespace's requests are authenticated with, and the configuration it came from. */
export interface NamespaceAuthStrategy {
  readonly config: AuthConfig;
  readonly strategy: AuthStrategy;
}

/** A namespace's strategy for its `jwt_key`: being built, and once built. */
interface KeyedStrategy {
  jwtKey: string;
  auth: Promise<NamespaceAuthStrategy>;
  built?: NamespaceAuthStrategy;
}

/**
 * User-API authentication per namespace (spec §3.1): a namespace whose config has a `jwt_key` is
 * authenticated with a JWT strategy on those keys *instead of* the server's strategy, on every
 * transport (HTTP, the WebSocket hello, gRPC). Strategies are built once per key and kept until the
 * key changes (the admin API validated the key when it was set).
 */
export class NamespaceAuth {
  private readonly global: NamespaceAuthStrategy;
  private readonly perNamespace = new Map<string, KeyedStrategy>();

  constructor(
    global: AuthConfig,
    private readonly namespaces: Pick<Namespaces, 'config'>,
    private readonly opts: AuthStrategyOptions = {},
  ) {
    this.global = { config: global, strategy: createAuthStrategy(global, opts) };
  }

  /** The server's own strategy (requests that belong to no namespace). */
  get server(): NamespaceAuthStrategy {
    return this.global;
  }

  /** `forNamespace` once its strategy is built (the server's, or one whose key parsed already); else undefined. */
  forNamespaceNow(namespace: string): NamespaceAuthStrategy | undefined {
    const jwtKey = this.namespaces.config(namespace).jwtKey;
    if (jwtKey === null) {
      this.perNamespace.delete(namespace);
      return this.global;
    }
    const cached = this.perNamespace.get(namespace);
    return cached?.jwtKey === jwtKey ? cached.built : undefined;
  }

  forNamespace(namespace: string): Promise<NamespaceAuthStrategy> {
    const jwtKey = this.namespaces.config(namespace).jwtKey;
    if (jwtKey === null) {
      this.perNamespace.delete(namespace);
      return Promise.resolve(this.global);
    }
    const cached = this.perNamespace.get(namespace);
    if (cached?.jwtKey === jwtKey) return cached.auth;
    const auth = parseJwtKeys(jwtKey).then((keys): NamespaceAuthStrategy => {
      const config: AuthConfig = { kind: 'jwt', keys };
      return { config, strategy: createAuthStrategy(config, this.opts) };
    });
    // A key that no longer parses is not cached: each request reports it until it is fixed.
    const entry: KeyedStrategy = { jwtKey, auth };
    this.perNamespace.set(namespace, entry);
    auth.then(
      (built) => {
        entry.built = built;
      },
      () => {
        if (this.perNamespace.get(namespace) === entry) this.perNamespace.delete(namespace);
      },
    );
    return auth;
  }
}
