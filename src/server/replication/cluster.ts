/**
 * The server's place in a cluster, built from `config.cluster` (docs/REPLICATION.md):
 *
 * - primary: namespaces get PrimaryRoles; the user port serves ReplicationLog and the unary Proxy
 *   calls over gRPC-web (embedded replicas); `--grpc-listen-addr` serves both services, StreamExec
 *   included, over native gRPC to replicas.
 * - replica: namespaces get ReplicaRoles fed by a Replicator each; client connections forward
 *   writes and transactions to the primary.
 *
 * server.ts sees only this interface.
 */
import type { FastifyInstance } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { ClusterConfig } from '../../config/cluster-config.js';
import type { ServeConfig } from '../../config/serve-config.js';
import type { ClientConnection } from '../../engine/client-connection.js';
import type { Logger } from '../../engine/logger.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { crashHookAt } from '../../engine/replica/crash-points.js';
import type { DbRole } from '../../engine/roles/role.js';
import { ReplicaRole } from '../../engine/roles/replica-role.js';
import { registerGrpcWeb } from '../../rpc/grpc-web/routes.js';
import type { DatabaseConfig } from '../../rpc/messages.js';
import { createProxyService, type ProxyService } from '../../rpc/proxy/proxy-service.js';
import { GrpcError, GrpcStatus, type CallMetadata } from '../../rpc/service.js';
import type { GrpcServerHandle } from '../../rpc/transport/grpc-server.js';
import { principalToProxyJson } from '../auth/proxy-principal.js';
import type { ServerContext } from '../context.js';
import type { CallerAuth } from '../session.js';
import { preAuthorizeUserCall, resolveLogCall, resolveProxyCall } from './call-auth.js';
import { ForwardingConnection } from './forwarding-connection.js';
import { LogService } from './log-service.js';
import { NODE_SECRET_HEADER } from './node-secret.js';
import type { PrimaryClient } from './primary-client.js';
import { PrimaryStreamPool } from './primary-streams.js';
import { ReadFence } from './read-fence.js';
import { Replicator, type ReplicationStatus } from './replicator.js';
import { SessionTokens } from './session-tokens.js';

export interface ClusterNode {
  readonly role: ClusterConfig['role'];
  /** The role of a namespace database about to open. */
  roleFor(namespace: string): DbRole;
  /** Replica: a namespace unknown here exists if the primary has it (Namespaces' `admit`). */
  readonly admit: ((namespace: string) => Promise<boolean>) | undefined;
  /** A namespace database opened (a replica starts following its primary). */
  onOpen(db: NamespaceDb): void;
  /** A client connection for `auth` on `db`. */
  connect(namespace: string, db: NamespaceDb, auth: CallerAuth): ClientConnection;
  /** Routes of the user port (gRPC-web for embedded replicas on a primary). */
  userRoutes(app: FastifyInstance): void;
  /** Opens the inter-node port, if configured. */
  listen(): Promise<void>;
  readonly grpcAddress: { host: string; port: number } | null;
  /** A namespace's config changed: new session token; live log streams end (replicas say Hello again). */
  configChanged(namespace: string): void;
  /** Replica: where a namespace's replication stands (null on a primary or before it opened). */
  replicationStatus(namespace: string): ReplicationStatus | null;
  /** Resolves once a replica applied `frameNo` of the namespace (at once on a primary). */
  waitForIndex(namespace: string, frameNo: bigint, signal?: AbortSignal): Promise<void>;
  /** Stops replication and the inter-node port (before the databases close). */
  close(): Promise<void>;
}

export interface ClusterDeps {
  config: ServeConfig;
  logger: Logger;
  /** The request context (built after the node; read when calls arrive). */
  context: () => ServerContext;
  primaryRole: () => DbRole;
}

/**
 * What HelloResponse.config carries until namespaces have their own config (the admin API's
 * config routes): sqld's defaults — 1000 PB of 4 KiB pages, a 5 s transaction timeout, 5 MB rows.
 */
const DEFAULT_DATABASE_CONFIG: DatabaseConfig = {
  blockReads: false,
  blockWrites: false,
  maxDbPages: 10n ** 18n / 4096n,
  txnTimeoutS: 5n,
  allowAttach: false,
  maxRowSize: 5_000_000n,
  sharedSchema: false,
};

function secretMatches(expected: string | null, meta: CallMetadata): boolean {
  if (expected === null) return false;
  const given = meta.get(NODE_SECRET_HEADER);
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The node for `config.cluster`. @grpc/grpc-js is loaded only where native gRPC is used: by a
 * replica (its client) and by a primary with `--grpc-listen-addr` (when it listens); a primary
 * without it serves gRPC-web on the user port, which needs none of it.
 */
export async function createClusterNode(deps: ClusterDeps): Promise<ClusterNode> {
  const cluster = deps.config.cluster;
  if (cluster.role === 'primary') return new PrimaryNode(deps, cluster);
  const { PrimaryClient } = await import('./primary-client.js');
  const client = new PrimaryClient({ url: cluster.primary.url, tls: cluster.primary.tls, nodeSecret: cluster.nodeSecret, logger: deps.logger });
  return new ReplicaNode(deps, cluster, client);
}

class PrimaryNode implements ClusterNode {
  readonly role = 'primary';
  readonly admit = undefined;
  readonly #deps: ClusterDeps;
  readonly #cluster: Extract<ClusterConfig, { role: 'primary' }>;
  readonly #tokens = new SessionTokens();
  readonly #log: LogService;
  readonly #proxy: ProxyService;
  #grpc: GrpcServerHandle | null = null;

  constructor(deps: ClusterDeps, cluster: Extract<ClusterConfig, { role: 'primary' }>) {
    this.#deps = deps;
    this.#cluster = cluster;
    this.#log = new LogService({
      resolve: (call) => resolveLogCall(deps.context(), call),
      tokens: this.#tokens,
      configOf: () => DEFAULT_DATABASE_CONFIG,
      logger: deps.logger,
    });
    this.#proxy = createProxyService({
      resolve: (call) => resolveProxyCall(deps.context(), call),
      logger: deps.logger,
      maxResponseBytes: deps.config.limits.maxResponseBytes,
    });
  }

  get grpcAddress(): { host: string; port: number } | null {
    return this.#grpc?.address ?? null;
  }

  roleFor(): DbRole {
    return this.#deps.primaryRole();
  }

  onOpen(): void {}

  connect(_namespace: string, db: NamespaceDb): ClientConnection {
    return db.connect();
  }

  userRoutes(app: FastifyInstance): void {
    registerGrpcWeb(app, [this.#log.service, this.#proxy.service], { logger: this.#deps.logger, preAuthorize: (meta) => preAuthorizeUserCall(this.#deps.context(), meta) });
  }

  async listen(): Promise<void> {
    const grpc = this.#cluster.grpc;
    if (grpc === null) return;
    const secret = this.#cluster.nodeSecret;
    const { startGrpcServer } = await import('../../rpc/transport/grpc-server.js');
    this.#grpc = await startGrpcServer({
      host: grpc.listen.host,
      port: grpc.listen.port,
      services: [this.#log.service, this.#proxy.service],
      logger: this.#deps.logger,
      ...(grpc.tls ? { tls: grpc.tls } : {}),
      trustedPeer: (meta, verified) => verified || secretMatches(secret, meta),
    });
  }

  configChanged(namespace: string): void {
    this.#tokens.bump(namespace);
  }

  replicationStatus(): null {
    return null;
  }

  waitForIndex(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    try {
      await this.#grpc?.close();
    } finally {
      this.#proxy.close();
    }
  }
}

interface ReplicaNamespace {
  role: ReplicaRole;
  replicator: Replicator | null;
  streams: PrimaryStreamPool;
  fence: ReadFence;
}

class ReplicaNode implements ClusterNode {
  readonly role = 'replica';
  readonly grpcAddress = null;
  readonly #deps: ClusterDeps;
  readonly #cluster: Extract<ClusterConfig, { role: 'replica' }>;
  readonly #client: PrimaryClient;
  readonly #namespaces = new Map<string, ReplicaNamespace>();

  constructor(deps: ClusterDeps, cluster: Extract<ClusterConfig, { role: 'replica' }>, client: PrimaryClient) {
    this.#deps = deps;
    this.#cluster = cluster;
    this.#client = client;
  }

  readonly admit = async (namespace: string): Promise<boolean> => {
    try {
      await this.#client.hello(namespace);
      return true;
    } catch (err) {
      if (err instanceof GrpcError && err.status === GrpcStatus.FAILED_PRECONDITION && err.message === 'NAMESPACE_DOESNT_EXIST') return false;
      throw new Error(`cannot ask the primary whether namespace ${namespace} exists: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };

  roleFor(namespace: string): DbRole {
    const { applierCrashAt: crashAt, applyDelayMs } = this.#deps.config.testHooks;
    const role = new ReplicaRole({
      readGraceMs: this.#deps.config.replica.readGraceMs,
      ...(applyDelayMs !== null ? { applyDelayMs } : {}),
      ...(crashAt ? { crashHook: crashHookAt(crashAt, () => process.kill(process.pid, 'SIGKILL')) } : {}),
    });
    this.#namespaces.get(namespace)?.streams.close();
    this.#namespaces.set(namespace, { role, replicator: null, streams: new PrimaryStreamPool(this.#client, namespace, this.#deps.logger), fence: new ReadFence(role) });
    return role;
  }

  onOpen(db: NamespaceDb): void {
    const ns = this.#namespaces.get(db.name);
    if (!ns || ns.replicator) return;
    ns.replicator = new Replicator({ namespace: db.name, role: ns.role, paths: db.paths, client: this.#client, logger: this.#deps.logger });
    ns.replicator.start();
  }

  connect(namespace: string, db: NamespaceDb, auth: CallerAuth): ClientConnection {
    const ns = this.#namespaces.get(namespace);
    if (!ns) throw new Error(`namespace ${namespace} is not open as a replica`);
    return new ForwardingConnection({
      namespace,
      local: db.connect(),
      fence: ns.fence,
      caughtUp: () => ns.replicator?.caughtUp() ?? true,
      streams: ns.streams,
      creds: { proxyAuthorization: principalToProxyJson(auth.principal, namespace), credential: auth.credential },
      timeoutMs: this.#cluster.forwardTimeoutMs,
      logger: this.#deps.logger,
    });
  }

  userRoutes(): void {}

  listen(): Promise<void> {
    return Promise.resolve();
  }

  configChanged(): void {}

  replicationStatus(namespace: string): ReplicationStatus | null {
    return this.#namespaces.get(namespace)?.replicator?.status() ?? null;
  }

  waitForIndex(namespace: string, frameNo: bigint, signal?: AbortSignal): Promise<void> {
    const ns = this.#namespaces.get(namespace);
    if (!ns) return Promise.reject(new Error(`namespace ${namespace} is not open`));
    return ns.role.waitForIndex(frameNo, signal);
  }

  async close(): Promise<void> {
    try {
      await Promise.all([...this.#namespaces.values()].map((ns) => ns.replicator?.stop() ?? Promise.resolve()));
    } finally {
      for (const ns of this.#namespaces.values()) ns.streams.close();
      this.#client.close();
    }
  }
}
