import type { FastifyInstance } from 'fastify';

/**
 * sqld answers every origin, method and header (its user port sits behind a permissive CORS layer):
 * browsers running `@libsql/client` must be able to call it. Preflight requests end here.
 */
export function permissiveCors(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    const origin = request.headers.origin;
    if (origin === undefined) {
      done();
      return;
    }
    void reply.header('access-control-allow-origin', '*');
    void reply.header('vary', 'origin, access-control-request-method, access-control-request-headers');
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      const headers = request.headers['access-control-request-headers'];
      void reply
        .header('access-control-allow-methods', '*')
        .header('access-control-allow-headers', headers ?? '*')
        .header('access-control-max-age', '86400')
        .code(200)
        .send();
      return;
    }
    done();
  });
}
