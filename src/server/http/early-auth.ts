import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify';
import { LibsqlctlError } from '../../errors.js';
import type { ServerContext } from '../context.js';
import { resolveSession, resolveSessionNow, type Session } from '../session.js';
import { httpErrorAnswer } from './error-map.js';

/**
 * Namespace and credentials are checked in `onRequest`, before fastify reads the body (spec §3.6:
 * sqld resolves and authenticates first). A refused request is answered while its body may still
 * be on the way: nothing reads it (the request stream stays paused, so at most its small internal
 * buffer fills), the answer says `connection: close`, and once it is written Node drops the rest
 * and closes the socket. Handlers take the session the hook resolved with `sessionOf`.
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** The session `authenticateFirst` resolved (null on routes without it): read it with `sessionOf`. */
    hranaSession: Session | null;
  }
}

/**
 * Gives every request of `app` its session slot: a decoration rather than a WeakMap, so requests
 * keep one shape and no ephemeron table grows and shrinks per request.
 */
export function decorateSessions(app: FastifyInstance): void {
  app.decorateRequest('hranaSession', null);
}
/** Requests whose refusal was logged here already (the error handler logs the others). */
const refusalLogged = new WeakSet<FastifyRequest>();

export function refusalWasLogged(request: FastifyRequest): boolean {
  return refusalLogged.has(request);
}

/** Whether the request announces a body (a length above zero, or a chunked one). */
export function announcesBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * Marks an answer given before the body was read: the connection closes after it, so the unread
 * rest of the body is dropped instead of read through to find the next request.
 */
export function closeAfterAnswer(request: FastifyRequest, reply: FastifyReply): void {
  if (announcesBody(request.headers)) void reply.header('connection', 'close');
}

/** The session the route's `onRequest` hook resolved. */
export function sessionOf(request: FastifyRequest): Session {
  const session = request.hranaSession;
  if (session === null) throw new Error(`route ${request.routeOptions.url ?? request.url} has no authentication hook`);
  return session;
}

function refusalReason(err: unknown): { reason: string; detail: string } {
  if (err instanceof LibsqlctlError) return { reason: err.code, detail: err.message };
  return { reason: 'INTERNAL', detail: err instanceof Error ? err.message : String(err) };
}

/**
 * Route options for a user route: its `onRequest` hook resolves the session or refuses the request
 * (the error goes on to the route's error handler, which answers exactly as before). A session whose
 * parts are all at hand is resolved at once (`resolveSessionNow`); any other through the promises.
 */
export function authenticateFirst(ctx: ServerContext): { onRequest: onRequestHookHandler } {
  const refuse = (request: FastifyRequest, reply: FastifyReply, err: unknown, done: HookHandlerDoneFunction): void => {
    closeAfterAnswer(request, reply);
    if (ctx.logger.isLevelEnabled('debug')) {
      // Never the credential: codes and messages of these errors do not contain it.
      const route = request.routeOptions.url ?? request.url.split('?', 1)[0];
      ctx.logger.debug({ method: request.method, route, status: httpErrorAnswer(err).status, ...refusalReason(err) }, 'request refused before its body was read');
      refusalLogged.add(request);
    }
    done(err instanceof Error ? err : new Error(String(err)));
  };
  return {
    onRequest: (request, reply, done) => {
      let session: Session | undefined;
      try {
        session = resolveSessionNow(ctx, request.headers);
      } catch (err) {
        refuse(request, reply, err, done);
        return;
      }
      if (session !== undefined) {
        request.hranaSession = session;
        done();
        return;
      }
      resolveSession(ctx, request.headers).then(
        (resolved) => {
          request.hranaSession = resolved;
          done();
        },
        (err: unknown) => refuse(request, reply, err, done),
      );
    },
  };
}
