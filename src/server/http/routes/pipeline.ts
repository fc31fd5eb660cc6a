import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { asStatementError, ProtocolError } from '../../hrana/errors.js';
import type { HttpStreamResponse, HttpStreamResult } from '../../hrana/protobuf/shapes.js';
import type { HranaVersion } from '../../hrana/protocol.js';
import { SqlStore } from '../../hrana/sql-store.js';
import { HranaStream, type StreamContext } from '../../hrana/stream.js';
import type { Session } from '../../session.js';
import { isObject, parseJsonBody } from '../body.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import type { HttpStreamEntry } from '../http-streams.js';
import { sendJson } from '../reply.js';
import { andThen, type MaybePromise } from '../../../maybe-async.js';

/** sqld's per-stream limits for SQL texts stored over HTTP. */
const HTTP_SQL_STORE = { maxCount: 50, maxBytes: 5000 };

/**
 * Opens a new stream for `baton: null`, or takes the one the baton names. `owner` (the remote
 * address) may hold half the connection slots in idle streams; its oldest idle one expires first.
 * Synchronous unless the new stream has to wait for a connection slot.
 */
export function openOrTakeStream(ctx: ServerContext, session: Session, baton: unknown, owner: string): MaybePromise<HttpStreamEntry> {
  if (baton === null || baton === undefined) {
    // With a single slot there is nothing to share: the next stream waits for it (429 after the timeout), as in sqld.
    const share = Math.floor(ctx.config.limits.maxConcurrentConnections / 2);
    if (share >= 1 && ctx.httpStreams.makeRoom(owner, share)) ctx.logger.debug({ owner, share }, 'an idle Hrana HTTP stream expired early: its owner holds its share of idle streams');
    const free = ctx.slots.tryAcquire();
    if (free) return openStream(ctx, session, owner, free);
    return ctx.slots.acquire().then((release) => openStream(ctx, session, owner, release));
  }
  if (typeof baton !== 'string') throw new ProtocolError('Cannot deserialize client message: baton must be a string or null');
  const entry = ctx.httpStreams.take(baton);
  if (entry.namespace !== session.namespace) {
    ctx.httpStreams.finish(entry);
    throw new ProtocolError('Received an invalid baton');
  }
  return entry;
}

function openStream(ctx: ServerContext, session: Session, owner: string, release: () => void): HttpStreamEntry {
  try {
    const stream = new HranaStream(session.connect(), new SqlStore(HTTP_SQL_STORE));
    return ctx.httpStreams.add(stream, session.namespace, owner, release);
  } catch (err) {
    release();
    throw err;
  }
}

/** One request of a pipeline; synchronous where its work is (all but batches, sequences and statements that wait for the write lock). */
function handleRequest(entry: HttpStreamEntry, req: unknown, sctx: StreamContext): MaybePromise<HttpStreamResponse> {
  if (!isObject(req)) throw new ProtocolError('Cannot deserialize client message: request must be an object');
  const stream = entry.stream;
  if (stream.isClosed) throw new ProtocolError('Received a request on a closed stream');
  switch (req.type) {
    case 'close':
      stream.close();
      return { type: 'close' };
    case 'execute':
      return andThen(stream.executeNow(req.stmt, sctx), (result) => ({ type: 'execute', result }));
    case 'batch':
      return stream.batch(req.batch, sctx).then((result) => ({ type: 'batch', result }));
    case 'sequence':
      return stream.sequence(req, sctx).then(() => ({ type: 'sequence' }));
    case 'describe':
      return { type: 'describe', result: stream.describe(req) };
    case 'store_sql':
      stream.store.store(req.sql_id, req.sql);
      return { type: 'store_sql' };
    case 'close_sql':
      stream.store.close(req.sql_id);
      return { type: 'close_sql' };
    case 'get_autocommit':
      if (sctx.version < 3) throw new ProtocolError('The `get_autocommit` request is only supported in protocol version hrana3 and higher');
      return { type: 'get_autocommit', is_autocommit: stream.isAutocommit };
    default:
      throw new ProtocolError(`Unknown request type: ${JSON.stringify(req.type)}`);
  }
}

/** A statement error as the request's result; any other error aborts the pipeline. */
function errorResult(err: unknown): HttpStreamResult {
  const error = asStatementError(err);
  if (!error) throw err;
  return { type: 'error', error };
}

function settleRequest(entry: HttpStreamEntry, req: unknown, sctx: StreamContext): MaybePromise<HttpStreamResult> {
  let response: MaybePromise<HttpStreamResponse>;
  try {
    response = handleRequest(entry, req, sctx);
  } catch (err) {
    return errorResult(err);
  }
  if (response instanceof Promise) return response.then((r): HttpStreamResult => ({ type: 'ok', response: r }), errorResult);
  return { type: 'ok', response };
}

/**
 * Runs a pipeline on a stream; a non-statement error destroys the stream and aborts the request.
 * Synchronous until a request has to wait; the rest then follow it in order.
 */
export function runPipeline(ctx: ServerContext, entry: HttpStreamEntry, requests: unknown[], sctx: StreamContext): MaybePromise<HttpStreamResult[]> {
  const results: HttpStreamResult[] = [];
  try {
    for (let i = 0; i < requests.length; i++) {
      const result = settleRequest(entry, requests[i], sctx);
      if (result instanceof Promise) return finishPipeline(ctx, entry, requests.slice(i + 1), sctx, results, result);
      results.push(result);
    }
  } catch (err) {
    ctx.httpStreams.destroy(entry);
    throw err;
  }
  return results;
}

async function finishPipeline(
  ctx: ServerContext,
  entry: HttpStreamEntry,
  rest: unknown[],
  sctx: StreamContext,
  results: HttpStreamResult[],
  waiting: Promise<HttpStreamResult>,
): Promise<HttpStreamResult[]> {
  try {
    results.push(await waiting);
    for (const req of rest) results.push(await settleRequest(entry, req, sctx));
  } catch (err) {
    ctx.httpStreams.destroy(entry);
    throw err;
  }
  return results;
}

export function streamContext(ctx: ServerContext, session: Session, version: HranaVersion): StreamContext {
  return { version, allowWrite: session.allowWrite, maxResponseBytes: ctx.config.limits.maxResponseBytes, logger: ctx.logger };
}

export function pipelineRoutes(app: FastifyInstance, ctx: ServerContext): void {
  for (const version of [2, 3] as const) {
    // Not an async handler: a pipeline whose requests need not wait is answered in this turn.
    app.post(`/v${version}/pipeline`, authenticateFirst(ctx), (request, reply): undefined | Promise<undefined> => {
      const session = sessionOf(request);
      const body = parseJsonBody(request.body);
      if (!isObject(body) || !Array.isArray(body.requests)) {
        throw new ProtocolError('Cannot deserialize client message from JSON: expected an object with `requests`');
      }
      const requests = body.requests;
      const sctx = streamContext(ctx, session, version);
      const answered = andThen(openOrTakeStream(ctx, session, body.baton, request.socket.remoteAddress ?? ''), (entry) =>
        andThen(runPipeline(ctx, entry, requests, sctx), (results) => {
          const baton = ctx.httpStreams.finish(entry);
          sendJson(ctx, reply, { baton, base_url: ctx.config.httpSelfUrl, results });
          return undefined;
        }),
      );
      return answered;
    });
  }
}
