import type { AddressInfo } from 'node:net';
import type { ServeConfig } from '../config/serve-config.js';
import { DataDirLock } from '../engine/data-dir-lock.js';
import { Namespaces, DEFAULT_NAMESPACE } from '../engine/namespaces.js';
import { ConnectionSlots } from './admission.js';
import { createAuthStrategy } from './auth/strategy.js';
import type { ServerContext } from './context.js';
import { buildUserApp } from './http/app.js';
import { HttpStreams } from './http/http-streams.js';
import { ResponseBudget } from './response-budget.js';
import { listenError, startHranaWsListener, type HranaWsListener } from './listeners.js';
import { attachHranaWebSocket } from './ws/hrana-ws.js';

/** Checkpoint once the WAL reaches about SQLite's own auto-checkpoint size (1000 pages). */
const CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024;

export interface RunningServer {
  /** The address the user port listens on (the real port when 0 was asked for). */
  readonly httpAddress: { host: string; port: number };
  /** The WebSocket-only Hrana listener (`--hrana-listen-addr`), if any. */
  readonly hranaWsAddress: { host: string; port: number } | null;
  readonly context: ServerContext;
  /** Resolves when the server stopped by itself (idle shutdown). */
  readonly stopped: Promise<void>;
  /** Graceful stop: no new requests, in-flight ones finish (bounded by the shutdown timeout), databases close. */
  close(): Promise<void>;
}

/**
 * The composition root of `serve`: builds every part from the resolved config, listens, and returns
 * a handle whose close() tears down in reverse order. Signals are handled by the command, not here.
 */
export async function startServer(config: ServeConfig): Promise<RunningServer> {
  const lock = DataDirLock.acquire(config.dbPath);
  try {
    return await start(config, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function start(config: ServeConfig, lock: DataDirLock): Promise<RunningServer> {
  const namespaces = new Namespaces({
    dbPath: config.dbPath,
    txnTimeoutMs: config.limits.txnTimeoutMs,
    capture: {
      checkpointIntervalS: config.checkpointIntervalS,
      checkpointWalBytes: CHECKPOINT_WAL_BYTES,
      compaction: { maxFrames: config.log.maxLogFrames, maxDurationMs: config.log.maxLogDurationMs, snapshotExec: config.log.snapshotExec, dbPath: config.dbPath },
    },
  });
  if (!config.namespaces.enabled) namespaces.get(DEFAULT_NAMESPACE);

  let idleTimer: NodeJS.Timeout | null = null;
  let closing: Promise<void> | null = null;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const ctx: ServerContext = {
    config,
    namespaces,
    auth: createAuthStrategy(config.auth),
    slots: new ConnectionSlots({
      max: config.limits.maxConcurrentConnections,
      maxQueued: config.limits.maxConcurrentRequests,
      timeoutMs: config.limits.connectionCreationTimeoutMs,
    }),
    httpStreams: new HttpStreams(config.limits.streamExpiryMs),
    responses: new ResponseBudget(config.limits.maxTotalResponseBytes),
    touch: () => idleTimer?.refresh(),
    isClosing: () => closing !== null,
  };

  const app = buildUserApp(ctx);
  const ws = attachHranaWebSocket(app.server, ctx);
  let hranaWs: HranaWsListener | null = null;
  try {
    await app.listen({ host: config.http.host, port: config.http.port }).catch((err: unknown) => {
      throw listenError(err, config.http, '--http-listen-addr');
    });
    if (config.hranaWs) hranaWs = await startHranaWsListener(ctx, config.hranaWs);
  } catch (err) {
    ws.close();
    await app.close();
    ctx.httpStreams.closeAll();
    namespaces.close();
    throw err;
  }
  const address = app.server.address() as AddressInfo;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (idleTimer) clearTimeout(idleTimer);
      const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutS * 1000);
      force.unref();
      try {
        ws.close();
        await Promise.all([app.close(), hranaWs?.close()]);
      } finally {
        clearTimeout(force);
        try {
          ctx.httpStreams.closeAll();
        } finally {
          try {
            namespaces.close();
          } finally {
            lock.release();
            resolveStopped();
          }
        }
      }
    })();
    return closing;
  };

  if (config.idleShutdownTimeoutS !== null) {
    idleTimer = setTimeout(() => void close(), config.idleShutdownTimeoutS * 1000);
  }

  return { httpAddress: { host: address.address, port: address.port }, hranaWsAddress: hranaWs?.address ?? null, context: ctx, stopped, close };
}
