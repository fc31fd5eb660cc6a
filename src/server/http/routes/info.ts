import type { FastifyInstance } from 'fastify';
import { SERVER_VERSION } from '../../../version.js';

const HRANA_HELLO = 'Hello, this is HTTP API v2 (Hrana over HTTP)';

/** Routes that need neither a namespace nor credentials. */
export function infoRoutes(app: FastifyInstance): void {
  app.get('/health', (_req, reply) => reply.code(200).send());
  app.get('/version', (_req, reply) => reply.type('text/plain; charset=utf-8').send(`sqld ${SERVER_VERSION} (libsqlctl)`));
  app.get('/v1', (_req, reply) => reply.type('text/plain; charset=utf-8').send('This is sqld HTTP API v1'));
  for (const path of ['/v2', '/v3', '/v3-protobuf']) {
    app.get(path, (_req, reply) => reply.type('text/plain; charset=utf-8').send(HRANA_HELLO));
  }
}
