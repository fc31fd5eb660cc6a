import type { BackupStatus } from '../backup/uploader/options.js';
import type { ServeConfig } from '../config/serve-config.js';
import type { ClientConnection } from '../engine/client-connection.js';
import type { Logger } from '../engine/logger.js';
import type { NamespaceDb } from '../engine/namespace-db.js';
import type { Namespaces } from '../engine/namespaces.js';
import type { ServerMetrics } from './admin/metrics.js';
import type { ConnectionSlots } from './admission.js';
import type { ConnectionGuard } from './http/connection-guard.js';
import type { NamespaceAuth } from './auth/namespace-auth.js';
import type { HttpStreams } from './http/http-streams.js';
import type { ResponseBudget } from './response-budget.js';
import type { CallerAuth } from './session.js';

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
  /** Prometheus metrics, served on the admin port; null without `--admin-listen-addr`. */
  metrics: ServerMetrics | null;
}
