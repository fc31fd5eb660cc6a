/**
 * The admin API listener (`--admin-listen-addr`, spec §9, docs/ADMIN.md): its own fastify app on
 * its own port (HTTP/1.1), no CORS, every route behind `--admin-auth-key` when one is set (401 with
 * an empty body otherwise). The same port serves sqld's admin shell (gRPC over h2c, admin-shell.ts):
 * h2c-sniff.ts hands HTTP/2 connections to it. `GET /metrics` is Prometheus text (metrics.ts).
 * Forks (fork.ts) and the pruning of a deleted namespace's backups reach the bottomless backups
 * through `ServerContext.backupAdmin`. Heartbeats (heartbeat.ts) are started by server.ts, not here.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AdminConfig } from '../../config/serve-config.js';
import { DataDirPaths } from '../../engine/data-dir.js';
import { atLeast, errorMessage } from '../../engine/logger.js';
import type { Teardown } from '../../engine/teardown.js';
import type { ServerContext } from '../context.js';
import { httpErrorAnswer } from '../http/error-map.js';
import { acceptH2c } from '../http/h2c-sniff.js';
import { listenError } from '../listeners.js';
import { AdminKeyCheck } from './admin-auth.js';
import { handleAdminShellStream } from './admin-shell.js';
import { namespaceRoutes } from './namespace-routes.js';
import { statsRoutes } from './stats-routes.js';
import { namespaceStatsSource, type NamespaceStatsSource } from './stats-source.js';

/** sqld's admin JSON bodies get axum's default limit. */
const BODY_LIMIT = 2 * 1024 * 1024;
/** Path parameters up to this many characters (a 128-byte name percent-encoded takes at most 384). */
const MAX_PARAM_LENGTH = 4096;

export interface AdminListener {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** What the admin routes and the metrics read about namespaces. */
export function adminStatsSource(ctx: ServerContext): NamespaceStatsSource {
  return namespaceStatsSource(ctx.namespaces, new DataDirPaths(ctx.config.dbPath), {
    backupStatus: (name) => ctx.backupStatus(name),
    replicationStatus: (name) => ctx.replicationStatus(name),
  });
}

/** Builds the admin app without listening (the routes read the running server's context). */
export function buildAdminApp(ctx: ServerContext, config: AdminConfig): FastifyInstance {
  const loggerInstance: FastifyBaseLogger = ctx.logger.child({ listener: 'admin' }, { level: atLeast(ctx.logger, 'warn') });
  const app = Fastify({
    loggerInstance,
    bodyLimit: BODY_LIMIT,
    // Long names must reach the name rules (a 400 naming the limit), not the router's 414.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    return503OnClosing: true,
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.removeAllContentTypeParsers();
  // Bodies are taken raw and parsed by the routes (admin-body.ts), so refusals use sqld's texts.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const key = config.authKey === null ? null : new AdminKeyCheck(config.authKey);
  const shell = acceptH2c(app.server, {
    onStream: (stream, headers) =>
      handleAdminShellStream(stream, headers, {
        connect: async (namespace) => (await ctx.namespaces.get(namespace)).connect(),
        authorized: (authorization) => key === null || key.allows(authorization),
        maxResponseBytes: ctx.config.limits.maxResponseBytes,
      }),
  });
  // Before the port closes (which waits for every connection): shell sessions end with the server.
  app.addHook('preClose', (done) => {
    shell.close();
    done();
  });
  app.addHook('onRequest', (req, reply, done) => {
    if (key && !key.allows(req.headers.authorization)) {
      ctx.logger.debug({ method: req.method, path: req.url.split('?', 1)[0] }, 'admin request refused: missing or wrong admin key');
      // A refused body is not read: the connection closes after the answer.
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) void reply.header('connection', 'close');
      void reply.code(401).send();
      return;
    }
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    ctx.logger.debug({ method: req.method, path: req.url.split('?', 1)[0], status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10 }, 'admin request');
    done();
  });
  app.setErrorHandler((err, req, reply) => {
    const answer = httpErrorAnswer(err);
    if (answer.status >= 500) ctx.logger.warn({ method: req.method, route: req.routeOptions.url, reason: errorMessage(err) }, 'admin request failed');
    void reply.code(answer.status).header('content-type', answer.contentType).send(Buffer.from(answer.body));
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send();
  });
  app.get('/', async (_req, reply) => reply.code(200).header('content-type', 'text/plain; charset=utf-8').send('Welcome to the sqld admin API'));
  namespaceRoutes(app, { namespaces: ctx.namespaces, isReplica: ctx.config.cluster.role === 'replica', backups: ctx.backupAdmin ?? null, logger: ctx.logger });
  statsRoutes(app, { stats: adminStatsSource(ctx), diagnostics: () => ctx.httpStreams.diagnostics() });
  app.get('/metrics', async (_req, reply) => {
    if (ctx.metrics === null) return reply.code(200).header('content-type', 'text/plain; charset=utf-8').send('');
    const { contentType, body } = await ctx.metrics.scrape();
    return reply.code(200).header('content-type', contentType).send(body);
  });
  return app;
}

/**
 * Starts the admin listener and registers its close (in-flight admin requests finish) with the
 * server's teardown, so it stops before the namespaces close.
 */
export async function startAdminListener(ctx: ServerContext, config: AdminConfig, teardown: Teardown): Promise<AdminListener> {
  const app = buildAdminApp(ctx, config);
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (err) {
    await app.close();
    throw listenError(err, config.listen, '--admin-listen-addr');
  }
  teardown.register('admin HTTP port', () => app.close());
  const { address, port } = app.server.address() as AddressInfo;
  return { address: { host: address, port }, close: () => app.close() };
}
