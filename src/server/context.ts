import type { BackupStatus } from '../backup/uploader/options.js';
import type { ServeConfig } from '../config/serve-config.js';
import type { ClientConnection } from '../engine/client-connection.js';
import type { NamespacePaths } from '../engine/data-dir.js';
import type { Logger } from '../engine/logger.js';
import type { NamespaceDb } from '../engine/namespace-db.js';
import type { Namespaces } from '../engine/namespaces.js';
import type { ServerMetrics } from './admin/metrics.js';
import type { ReplicationStatus } from './replication/replicator.js';
import type { ConnectionSlots } from './admission.js';
import type { ConnectionGuard } from './http/connection-guard.js';
import type { NamespaceAuth } from './auth/namespace-auth.js';
import type { HttpStreams } from './http/http-streams.js';
import type { ResponseBudget } from './response-budget.js';
import type { CallerAuth } from './session.js';

/** What the admin API asks of the bottomless backups (ServerBackups; docs/ADMIN.md). */
export interface BackupAdmin {
  /** Writes the backup of namespace `source` as of `time` into `paths.db` (a point-in-time fork). */
  restoreAt(source: string, time: Date, paths: NamespacePaths): Promise<void>;
  /** sqld's savepoint: resolves once everything the namespace committed is in the store (bounded; rejects otherwise). */
  savepoint(namespace: string): Promise<void>;
  /** Deletes every backup object of a deleted namespace (all generations); its uploader must be closed first. */
  prune(namespace: string): Promise<void>;
}

/** Everything request handlers share; built once by createServer. */
export interface ServerContext {
  config: ServeConfig;
  /** The server's one logger (also fastify's). */
  logger: Logger;
  namespaces: Namespaces;
  /** User-API authentication: the server's strategy, or a namespace's own `jwt_key`. */
  auth: NamespaceAuth;
  slots: ConnectionSlots;
  /** TCP connections of the user-facing listeners: timeouts and caps (connection-guard.ts). */
  connectionGuard: ConnectionGuard;
  httpStreams: HttpStreams;
  responses: ResponseBudget;
  /** Opens a client connection: the database's own on a primary, a forwarding one on a replica. */
  connect(namespace: string, db: NamespaceDb, auth: CallerAuth): ClientConnection;
  /** Called on every request (idle-shutdown timer). */
  touch(): void;
  /** True once shutdown began: responses then close their connection so keep-alive clients let go. */
  isClosing(): boolean;
  /**
   * False while the server opens (or restores) its databases after it started listening: every user
   * route but `/version` answers 503 then, `/health` included, and WebSocket upgrades are refused.
   */
  isReady(): boolean;
  /** The namespace's backup uploader (upload lag, errors); null without backups or before it is attached. */
  backupStatus(namespace: string): BackupStatus | null;
  /** A replica namespace's replication (lag, connected); null on a primary or before it opened. */
  replicationStatus(namespace: string): ReplicationStatus | null;
  /** Point-in-time forks, savepoints and pruning for the admin API; null (or absent) without backups. */
  backupAdmin?: BackupAdmin | null;
  /** Prometheus metrics, served on the admin port; null without `--admin-listen-addr`. */
  metrics: ServerMetrics | null;
}
