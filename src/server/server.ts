import type { AddressInfo } from 'node:net';
import type { ServeConfig } from '../config/serve-config.js';
import { DataDirLock } from '../engine/data-dir-lock.js';
import { DataDirPaths, type NamespacePaths } from '../engine/data-dir.js';
import type { FaultInjector } from '../engine/faults.js';
import { createLogger, type Logger } from '../engine/logger.js';
import type { NamespaceDb } from '../engine/namespace-db.js';
import { Namespaces, DEFAULT_NAMESPACE, type CloseEvent } from '../engine/namespaces.js';
import { PrimaryRole } from '../engine/roles/primary-role.js';
import { Teardown } from '../engine/teardown.js';
import { StatementWatchdog } from '../engine/watchdog.js';
import { ConnectionSlots } from './admission.js';
import { adminStatsSource, startAdminListener, type AdminListener } from './admin/admin-server.js';
import { startHeartbeat } from './admin/heartbeat.js';
import { createServerMetrics } from './admin/metrics.js';
import { NamespaceAuth } from './auth/namespace-auth.js';
import type { ServerContext } from './context.js';
import { buildUserApp } from './http/app.js';
import { ConnectionGuard } from './http/connection-guard.js';
import { HttpStreams } from './http/http-streams.js';
import { ResponseBudget } from './response-budget.js';
import { checkListenAddresses, listenError, startHranaWsListener, type HranaWsListener } from './listeners.js';
import { createClusterNode, type ClusterNode } from './replication/cluster.js';
import { attachHranaWebSocket } from './ws/hrana-ws.js';

/** Checkpoint once the WAL reaches about SQLite's own auto-checkpoint size (1000 pages). */
const CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024;
/** Longest a checkpoint participant's preparation may delay a checkpoint. */
const CHECKPOINT_PREPARE_TIMEOUT_MS = 5000;
/** How often frames committed by other processes are looked for while no writer of ours runs. */
const OUTSIDE_POLL_MS = 1000;

/** Parts a caller may supply instead of the defaults (tests: a logger to read, injected faults). */
export interface ServerOverrides {
  logger?: Logger;
  faults?: FaultInjector;
  /** Called once the user port listens, before the databases open (the server answers 503 until ready). */
  onListening?: (httpAddress: { host: string; port: number }) => void;
  /** Awaited right before the databases open (tests: hold the server in its starting phase). */
  beforeOpen?: () => Promise<void>;
}

export interface RunningServer {
  /** The address the user port listens on (the real port when 0 was asked for). */
  readonly httpAddress: { host: string; port: number };
  /** The WebSocket-only Hrana listener (`--hrana-listen-addr`), if any. */
  readonly hranaWsAddress: { host: string; port: number } | null;
  /** The admin API's listener (`--admin-listen-addr`), if any. */
  readonly adminAddress: { host: string; port: number } | null;
  readonly context: ServerContext;
  /** Primary or replica: the inter-node port's address, replication status. */
  readonly cluster: ClusterNode;
  /** Resolves when the server stopped (by close(), or by itself: idle shutdown). */
  readonly stopped: Promise<void>;
  /**
   * Graceful stop: no new requests, in-flight ones finish (bounded by the shutdown timeout), databases
   * close. `why` (the signal, or a reason) goes into the "shutting down" log line.
   */
  close(why?: ShutdownCause): Promise<void>;
}

/** Why the server stops, for the log. */
export interface ShutdownCause {
  signal?: NodeJS.Signals;
  reason?: string;
}

type Addr = { host: string; port: number };

function url(scheme: string, a: Addr): string {
  return `${scheme}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/**
 * The idle-shutdown timer: `--initial-idle-shutdown-timeout-s` until the first request after start,
 * then `--idle-shutdown-timeout-s` (restarted by every request); none when neither applies.
 */
class IdleShutdown {
  private timer: NodeJS.Timeout | null = null;
  private initial: boolean;

  constructor(
    private readonly initialS: number | null,
    private readonly idleS: number | null,
    private readonly onIdle: (idleS: number) => void,
  ) {
    this.initial = initialS !== null;
    this.arm(initialS ?? idleS);
  }

  /** A request came in. */
  touch(): void {
    if (this.initial) {
      this.initial = false;
      this.stop();
      this.arm(this.idleS);
      return;
    }
    this.timer?.refresh();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(seconds: number | null): void {
    if (seconds === null) return;
    this.timer = setTimeout(() => this.onIdle(seconds), seconds * 1000);
  }
}

/**
 * The composition root of `serve`: builds every part from the resolved config, listens, and returns
 * a handle whose close() tears down in reverse order. Signals are handled by the command, not here.
 */
export async function startServer(config: ServeConfig, overrides: ServerOverrides = {}): Promise<RunningServer> {
  // nothing is created on disk before the addresses are known to be free
  await checkListenAddresses(config);
  const lock = DataDirLock.acquire(config.dbPath);
  try {
    return await start(config, lock, overrides);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function start(config: ServeConfig, lock: DataDirLock, overrides: ServerOverrides): Promise<RunningServer> {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  if (config.ignoredRustLog.length > 0) {
    logger.warn({ ignored: config.ignoredRustLog }, `RUST_LOG: ignoring directives that cannot be parsed: ${config.ignoredRustLog.join(', ')}`);
  }
  if (config.ignoredEnv.length > 0) {
    logger.warn({ ignored: config.ignoredEnv }, `ignoring environment variables libsqlctl does not read: ${config.ignoredEnv.join(', ')}`);
  }
  const dataDir = new DataDirPaths(config.dbPath);
  // Teardown runs in reverse: HTTP listeners, then streams, then databases, then the data-dir lock.
  const teardown = new Teardown();
  teardown.register('data directory lock', () => lock.release());
  let ctx: ServerContext | null = null;
  const cluster = await createClusterNode({
    config,
    logger,
    context: () => {
      if (ctx === null) throw new Error('the server is not started yet');
      return ctx;
    },
    primaryRole: () =>
      new PrimaryRole({
        compaction: { maxFrames: config.log.maxLogFrames, maxDurationMs: config.log.maxLogDurationMs, snapshotExec: config.log.snapshotExec, scriptBackupDir: dataDir.scriptBackup },
        checkpoint: {
          intervalMs: config.checkpointIntervalS === null ? null : config.checkpointIntervalS * 1000,
          walBytes: CHECKPOINT_WAL_BYTES,
          prepareTimeoutMs: CHECKPOINT_PREPARE_TIMEOUT_MS,
        },
        outsidePollMs: OUTSIDE_POLL_MS,
        snapshotAtShutdown: config.snapshotAtShutdown,
      }),
  });
  // The store is checked before anything opens: a server that cannot reach its backups must not
  // start an empty database over them.
  // Loaded only when backups are on (the uploader brings the compression codecs, zstd's wasm included).
  const backups = config.bottomless ? await (await import('./backups.js')).ServerBackups.open(config.bottomless, logger) : null;
  if (backups) teardown.register('backups', () => backups.close());
  const watchdog = config.limits.maxStatementDurationMs > 0 ? StatementWatchdog.open(config.limits.maxStatementDurationMs, logger) : null;
  if (watchdog) teardown.register('statement watchdog', () => watchdog.close());
  const namespaces = new Namespaces({
    dataDir,
    txnTimeoutMs: config.limits.txnTimeoutMs,
    logger,
    extensions: config.extensions,
    watchdog,
    ...(overrides.faults ? { faults: overrides.faults } : {}),
    role: (name) => cluster.roleFor(name),
    onOpen: async (db) => {
      cluster.onOpen(db);
      await backups?.attach(db);
    },
    ...(backups
      ? {
          prepare: (name: string, paths: NamespacePaths) => backups.prepare(name, paths),
          onClose: (db: NamespaceDb, event: CloseEvent) => backups.detach(db.name, { upload: event.why === 'unloaded' || event.keepBackup }),
          isBusy: (name: string) => backups.busy(name),
        }
      : {}),
    ...(cluster.admit ? { admit: cluster.admit } : {}),
    maxActive: config.namespaces.maxActive,
  });
  teardown.register('namespaces', () => namespaces.close());
  // Registered after the namespaces, so replication and the inter-node port stop before they close.
  teardown.register('replication', () => cluster.close());

  // prom-client is loaded only when the admin port (which serves /metrics) is on.
  const metrics = config.admin ? await createServerMetrics(() => (ctx === null ? null : adminStatsSource(ctx))) : null;
  let idle: IdleShutdown | null = null;
  let ready = false;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  ctx = {
    config,
    logger,
    namespaces,
    auth: new NamespaceAuth(config.auth, namespaces),
    slots: new ConnectionSlots({
      max: config.limits.maxConcurrentConnections,
      maxQueued: config.limits.maxConcurrentRequests,
      timeoutMs: config.limits.connectionCreationTimeoutMs,
    }),
    connectionGuard: new ConnectionGuard(config.connections, logger),
    httpStreams: new HttpStreams(config.limits.streamExpiryMs),
    responses: new ResponseBudget(config.limits.maxTotalResponseBytes),
    connect: (namespace, db, auth) => cluster.connect(namespace, db, auth),
    touch: () => idle?.touch(),
    isClosing: () => teardown.started,
    isReady: () => ready,
    backupStatus: (namespace) => backups?.status(namespace) ?? null,
    replicationStatus: (namespace) => cluster.replicationStatus(namespace),
    backupAdmin: backups,
    metrics,
  };
  teardown.register('Hrana HTTP streams', () => ctx.httpStreams.closeAll());

  const app = buildUserApp(ctx, [(a) => cluster.userRoutes(a)]);
  const ws = attachHranaWebSocket(app.server, ctx);
  let hranaWs: HranaWsListener | null = null;
  let admin: AdminListener | null = null;
  try {
    // Listen first and answer 503 while the databases open (recovery of a large log, later a
    // restore from a backup): clients and health checks see a server that is starting, not a dead port.
    await app.listen({ host: config.http.host, port: config.http.port }).catch((err: unknown) => {
      throw listenError(err, config.http, '--http-listen-addr');
    });
    teardown.register('user HTTP port', async () => {
      const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutS * 1000);
      force.unref();
      try {
        ws.close();
        await app.close();
      } finally {
        clearTimeout(force);
      }
    });
    const listening = app.server.address() as AddressInfo;
    overrides.onListening?.({ host: listening.address, port: listening.port });
    logger.debug('accepting connections; opening databases');
    await overrides.beforeOpen?.();
    if (!config.namespaces.enabled) await namespaces.get(DEFAULT_NAMESPACE);
    await cluster.listen().catch((err: unknown) => {
      throw listenError(err, config.cluster.role === 'primary' && config.cluster.grpc ? config.cluster.grpc.listen : config.http, '--grpc-listen-addr');
    });
    if (config.hranaWs) {
      const listener = await startHranaWsListener(ctx, config.hranaWs);
      hranaWs = listener;
      teardown.register('Hrana WebSocket listener', () => listener.close());
    }
    if (config.admin) admin = await startAdminListener(ctx, config.admin, teardown);
  } catch (err) {
    ws.close();
    await app.close();
    await teardown.close().catch((closeErr: unknown) => logger.error({ err: closeErr }, 'teardown after a failed start failed'));
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  ready = true;
  // Namespaces get their own heartbeat_url through the admin API: with it on, or a global URL.
  if (config.heartbeat.url !== null || config.admin !== null) {
    const heartbeat = startHeartbeat(config.heartbeat, () => adminStatsSource(ctx), logger);
    teardown.register('heartbeats', () => heartbeat.stop());
  }

  let closing: Promise<void> | null = null;
  const close = (why: ShutdownCause = {}): Promise<void> => {
    if (closing !== null) return closing;
    idle?.stop();
    logger.info(why.signal || why.reason ? { ...why } : { reason: 'stop requested' }, 'shutting down');
    closing = teardown.close().finally(() => {
      logger.info('stopped');
      resolveStopped();
    });
    return closing;
  };

  idle = new IdleShutdown(config.initialIdleShutdownTimeoutS, config.idleShutdownTimeoutS, (seconds) => {
    void close({ reason: `idle for ${seconds} s` }).catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
  });

  const httpAddress = { host: address.address, port: address.port };
  const hranaWsAddress = hranaWs?.address ?? null;
  const adminAddress = admin?.address ?? null;
  const grpc = cluster.grpcAddress;
  logger.info(
    {
      http: url('http', httpAddress),
      ...(hranaWsAddress ? { hranaWs: url('ws', hranaWsAddress) } : {}),
      ...(adminAddress ? { admin: url('http', adminAddress) } : {}),
      ...(grpc ? { grpc: url(config.cluster.role === 'primary' && config.cluster.grpc?.tls ? 'https' : 'http', grpc) } : {}),
      ...(config.cluster.role === 'replica' ? { primary: config.cluster.primary.url } : {}),
    },
    'listening',
  );
  if (config.jwtKeyIgnored) logger.info('auth: basic (a JWT key is also configured; as in sqld, basic auth is used)');

  return { httpAddress, hranaWsAddress, adminAddress, context: ctx, cluster, stopped, close };
}
