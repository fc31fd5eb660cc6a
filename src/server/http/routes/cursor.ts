import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { asStatementError, ProtocolError } from '../../hrana/errors.js';
import type { CursorEntry, HranaErrorBody } from '../../hrana/protocol.js';
import { resolveSession } from '../../session.js';
import { isObject, parseJsonBody } from '../body.js';
import type { HttpStreamEntry } from '../http-streams.js';
import { openOrTakeStream, streamContext } from './pipeline.js';

function entryError(err: unknown): HranaErrorBody {
  return asStatementError(err) ?? { message: err instanceof Error ? err.message : String(err), code: 'INTERNAL' };
}

async function* cursorLines(ctx: ServerContext, entry: HttpStreamEntry, head: string, first: IteratorResult<CursorEntry>, entries: AsyncGenerator<CursorEntry>): AsyncGenerator<string> {
  try {
    yield head;
    let next = first;
    while (!next.done) {
      yield `${JSON.stringify(next.value)}\n`;
      try {
        next = await entries.next();
      } catch (err) {
        yield `${JSON.stringify({ type: 'error', error: entryError(err) })}\n`;
        break;
      }
    }
  } finally {
    await entries.return(undefined);
    ctx.httpStreams.finish(entry);
  }
}

/**
 * `POST /v3/cursor` (spec §4.5): the first line carries the baton (handed out before the batch ends),
 * then one CursorEntry per line; the body is `text/plain` like sqld's.
 */
export function cursorRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v3/cursor', async (request, reply) => {
    const body = parseJsonBody(request.body);
    if (!isObject(body) || !isObject(body.batch)) throw new ProtocolError('Cannot deserialize client message from JSON: expected an object with `batch`');
    const session = await resolveSession(ctx, request.headers);
    const entry = await openOrTakeStream(ctx, session, body.baton);
    const entries = entry.stream.cursor(body.batch, streamContext(ctx, session, 3));
    // The first step runs before the 200 head, so protocol errors in the batch still abort with 400.
    let first: IteratorResult<CursorEntry>;
    try {
      first = await entries.next();
    } catch (err) {
      if (!asStatementError(err)) {
        ctx.httpStreams.destroy(entry);
        throw err;
      }
      first = { done: false, value: { type: 'error', error: entryError(err) } };
    }
    const head = `${JSON.stringify({ baton: ctx.httpStreams.peekNextBaton(entry), base_url: ctx.config.httpSelfUrl })}\n`;
    return reply.type('text/plain').send(Readable.from(cursorLines(ctx, entry, head, first, entries)));
  });
}
