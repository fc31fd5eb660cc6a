import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * sqld answers every origin, method and header (its user port sits behind a permissive CORS layer):
 * browsers running `@libsql/client` must be able to call it. Called from the user app's `onRequest`
 * hook: adds the headers, and answers a preflight request itself (returns true when it did).
 */
export function answerCors(request: FastifyRequest, reply: FastifyReply): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  void reply.header('access-control-allow-origin', '*');
  void reply.header('vary', 'origin, access-control-request-method, access-control-request-headers');
  if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] === undefined) return false;
  const headers = request.headers['access-control-request-headers'];
  void reply
    .header('access-control-allow-methods', '*')
    .header('access-control-allow-headers', headers ?? '*')
    .header('access-control-max-age', '86400')
    .code(200)
    .send();
  return true;
}
