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

/** sqld's per-stream limits for SQL texts stored over HTTP. */
const HTTP_SQL_STORE = { maxCount: 50, maxBytes: 5000 };

/**
 * Opens a new stream for `baton: null`, or takes the one the baton names. `owner` (the remote
 * address) may hold half the connection slots in idle streams; its oldest idle one expires first.
 */
export async function openOrTakeStream(ctx: ServerContext, session: Session, baton: unknown, owner: string): Promise<HttpStreamEntry> {
  if (baton === null || baton === undefined) {
    // With a single slot there is nothing to share: the next stream waits for it (429 after the timeout), as in sqld.
    const share = Math.floor(ctx.config.limits.maxConcurrentConnections / 2);
    if (share >= 1 && ctx.httpStreams.makeRoom(owner, share)) ctx.logger.debug({ owner, share }, 'an idle Hrana HTTP stream expired early: its owner holds its share of idle streams');
    const release = await ctx.slots.acquire();
    try {
      const stream = new HranaStream(session.connect(), new SqlStore(HTTP_SQL_STORE));
      return ctx.httpStreams.add(stream, session.namespace, owner, release);
    } catch (err) {
      release();
      throw err;
    }
  }
  if (typeof baton !== 'string') throw new ProtocolError('Cannot deserialize client message: baton must be a string or null');
  const entry = ctx.httpStreams.take(baton);
  if (entry.namespace !== session.namespace) {
    ctx.httpStreams.finish(entry);
    throw new ProtocolError('Received an invalid baton');
  }
  return entry;
}

async function handleRequest(entry: HttpStreamEntry, req: unknown, sctx: StreamContext): Promise<HttpStreamResponse> {
  if (!isObject(req)) throw new ProtocolError('Cannot deserialize client message: request must be an object');
  const stream = entry.stream;
  if (stream.isClosed) throw new ProtocolError('Received a request on a closed stream');
  switch (req.type) {
    case 'close':
      stream.close();
      return { type: 'close' };
    case 'execute':
      return { type: 'execute', result: await stream.execute(req.stmt, sctx) };
    case 'batch':
      return { type: 'batch', result: await stream.batch(req.batch, sctx) };
    case 'sequence':
      await stream.sequence(req, sctx);
      return { type: 'sequence' };
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

/** Runs a pipeline on a stream; a non-statement error destroys the stream and aborts the request. */
export async function runPipeline(ctx: ServerContext, entry: HttpStreamEntry, requests: unknown[], sctx: StreamContext): Promise<HttpStreamResult[]> {
  const results: HttpStreamResult[] = [];
  try {
    for (const req of requests) {
      try {
        results.push({ type: 'ok', response: await handleRequest(entry, req, sctx) });
      } catch (err) {
        const error = asStatementError(err);
        if (!error) throw err;
        results.push({ type: 'error', error });
      }
    }
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
    app.post(`/v${version}/pipeline`, authenticateFirst(ctx), async (request, reply) => {
      const session = sessionOf(request);
      const body = parseJsonBody(request.body);
      if (!isObject(body) || !Array.isArray(body.requests)) {
        throw new ProtocolError('Cannot deserialize client message from JSON: expected an object with `requests`');
      }
      const entry = await openOrTakeStream(ctx, session, body.baton, request.socket.remoteAddress ?? '');
      const results = await runPipeline(ctx, entry, body.requests, streamContext(ctx, session, version));
      const baton = ctx.httpStreams.finish(entry);
      return sendJson(ctx, reply, { baton, base_url: ctx.config.httpSelfUrl, results });
    });
  }
}
