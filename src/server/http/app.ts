import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { atLeast, errorMessage } from '../../engine/logger.js';
import type { ServerContext } from '../context.js';
import { namespaceFromHeaders } from '../session.js';
import { createLimitedHttpServer, isOverShare } from './connection-guard.js';
import { answerCors } from './cors.js';
import { announcesBody, closeAfterAnswer, decorateSessions, refusalWasLogged } from './early-auth.js';
import { httpErrorAnswer } from './error-map.js';
import { consoleRoutes } from './routes/console.js';
import { cursorRoutes } from './routes/cursor.js';
import { dumpRoutes } from './routes/dump.js';
import { hranaV1Routes } from './routes/hrana-v1.js';
import { infoRoutes } from './routes/info.js';
import { legacyRoutes } from './routes/legacy.js';
import { pipelineRoutes } from './routes/pipeline.js';
import { protobufRoutes } from './routes/protobuf.js';

/** Request bodies up to this size are read (Hrana routes have no limit in sqld; we keep a sane one). */
const BODY_LIMIT = 64 * 1024 * 1024;

/** What a request gets while the server is still opening its databases (ServerContext.isReady). */
const STARTING_BODY = Buffer.from(JSON.stringify({ error: 'the server is starting: its databases are not open yet' }));

/** A parseable media type (`type/subtype`, optional parameters); anything else is treated as absent. */
const MEDIA_TYPE = /^\s*[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+\s*(;.*)?$/;

/** What a request on a connection beyond its address's share gets (connection-guard.ts). */
const TOO_MANY_BODY = Buffer.from(JSON.stringify({ error: 'too many connections from this address' }));

/** Routes that belong to no namespace (routes/info.ts): their request lines name none. */
const NO_NAMESPACE_ROUTES = new Set(['/health', '/version', '/console', '/v1', '/v2', '/v3', '/v3-protobuf']);

/**
 * Builds the user-port fastify app without listening. Bodies are taken raw whatever their content
 * type (sqld ignores it) and parsed by each route, so malformed JSON gets sqld's answer.
 */
export function buildUserApp(ctx: ServerContext, extraRoutes: ((app: FastifyInstance) => void)[] = []): FastifyInstance {
  // fastify logs its own warnings and errors; its info lines (listening, requests) are replaced by ours.
  const loggerInstance: FastifyBaseLogger = ctx.logger.child({}, { level: atLeast(ctx.logger, 'warn') });
  const app = Fastify({
    serverFactory: (handler) => {
      const server = createLimitedHttpServer(ctx.config.connections, handler);
      ctx.connectionGuard.watch(server);
      return server;
    },
    loggerInstance,
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: request lines are ours (onResponse), fastify's own go to the parent.
    childLoggerFactory: (logger) => logger,
  });
  app.removeAllContentTypeParsers();
  const raw = (_req: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void): void => done(null, body);
  app.addContentTypeParser('*', { parseAs: 'buffer' }, raw);
  // The same, under the type clients send: fastify caches a parser it finds by name, while it
  // parses the header anew on every request that falls through to '*'.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, raw);
  decorateSessions(app);
  // Clients send the same Content-Type with every request: the last well-formed one needs no new test.
  let lastMediaType: string | undefined;
  // One hook for everything decided before the body is read (each hook costs every request).
  app.addHook('onRequest', (req, reply, done) => {
    // sqld ignores Content-Type; fastify would answer 415 to one it cannot parse, before any route.
    const type = req.headers['content-type'];
    if (type !== undefined && type !== lastMediaType) {
      if (MEDIA_TYPE.test(type)) lastMediaType = type;
      else req.headers['content-type'] = 'application/octet-stream';
    }
    if (isOverShare(req.socket)) {
      void reply.code(503).header('connection', 'close').header('retry-after', '1').header('content-type', 'application/json').send(TOO_MANY_BODY);
      return;
    }
    if (!ctx.isReady() && req.url !== '/version') {
      void reply.code(503).header('retry-after', '1').header('content-type', 'application/json').send(STARTING_BODY);
      return;
    }
    ctx.touch();
    if (answerCors(req, reply)) return;
    // An unknown route is answered before its body is read (fastify would read it whole first).
    if (req.is404 && announcesBody(req.headers)) {
      closeAfterAnswer(req, reply);
      void reply.code(404).send();
      return;
    }
    done();
  });
  // One line per request at debug: never bodies, query strings or headers (credentials); and the
  // request metrics when the admin port serves them. The level is fixed at start-up: without
  // either, no hook (fastify then skips its own per-response bookkeeping too).
  const debug = ctx.logger.isLevelEnabled('debug');
  const metrics = ctx.metrics;
  if (metrics || debug) {
    app.addHook('onResponse', (req, reply, done) => {
      metrics?.observeRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
      if (debug) logRequest(ctx, req, reply);
      done();
    });
  }
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (ctx.isClosing()) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.setErrorHandler((err, req, reply) => {
    const answer = httpErrorAnswer(err);
    // Every refusal at debug with its reason (codes and messages never hold a credential).
    if (ctx.logger.isLevelEnabled('debug') && !refusalWasLogged(req)) {
      const code = (err as { code?: unknown }).code;
      ctx.logger.debug({ method: req.method, route: req.routeOptions.url ?? req.url.split('?', 1)[0], status: answer.status, ...(typeof code === 'string' ? { code } : {}), reason: errorMessage(err) }, 'request refused');
    }
    // A Buffer keeps fastify from appending `; charset=utf-8`: hrana-client-ts reads error codes only
    // from a body whose content type is exactly `application/json`.
    void reply.code(answer.status).header('content-type', answer.contentType).send(Buffer.from(answer.body));
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send();
  });
  infoRoutes(app);
  consoleRoutes(app, ctx);
  pipelineRoutes(app, ctx);
  cursorRoutes(app, ctx);
  protobufRoutes(app, ctx);
  legacyRoutes(app, ctx);
  hranaV1Routes(app, ctx);
  dumpRoutes(app, ctx);
  for (const register of extraRoutes) register(app);
  return app;
}

function logRequest(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply): void {
  const route = req.routeOptions.url;
  let namespace: string | undefined;
  if (route !== undefined && !NO_NAMESPACE_ROUTES.has(route)) {
    try {
      namespace = namespaceFromHeaders(ctx, req.headers);
    } catch {
      // an invalid namespace header: the answer (400) says so, the line names none
    }
  }
  const path = req.url.split('?', 1)[0];
  ctx.logger.debug(
    { method: req.method, path, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10, ...(namespace === undefined ? {} : { namespace }) },
    'request',
  );
}
