import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../../context.js';
import { asStatementError, ProtocolError } from '../../hrana/errors.js';
import type { CursorEntry, HranaErrorBody } from '../../hrana/protocol.js';
import type { Session } from '../../session.js';
import { isObject, parseJsonBody } from '../body.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import type { HttpStreamEntry } from '../http-streams.js';
import { openOrTakeStream, streamContext } from './pipeline.js';

/** How a cursor body is framed: JSON lines (`/v3/cursor`) or length-delimited protobuf. */
export interface CursorFraming {
  contentType: string;
  /** Whether to end with sqld's `replication_index` entry (see HranaStream.cursor). */
  trailingReplicationIndex: boolean;
  head(head: { baton: string | null; base_url: string | null }): string | Buffer;
  entry(entry: CursorEntry): string | Buffer;
}

const jsonLines: CursorFraming = {
  contentType: 'text/plain',
  // `/v3/cursor` is what the libsql crate's remote connections use; they know sqld's entry.
  trailingReplicationIndex: true,
  head: (head) => `${JSON.stringify(head)}\n`,
  entry: (entry) => `${JSON.stringify(entry)}\n`,
};

function entryError(err: unknown): HranaErrorBody {
  return asStatementError(err) ?? { message: err instanceof Error ? err.message : String(err), code: 'INTERNAL' };
}

async function* cursorChunks(ctx: ServerContext, entry: HttpStreamEntry, framing: CursorFraming, head: string | Buffer, first: IteratorResult<CursorEntry>, entries: AsyncGenerator<CursorEntry>): AsyncGenerator<string | Buffer> {
  try {
    yield head;
    let next = first;
    while (!next.done) {
      yield framing.entry(next.value);
      try {
        next = await entries.next();
      } catch (err) {
        yield framing.entry({ type: 'error', error: entryError(err) });
        break;
      }
    }
  } finally {
    await entries.return(undefined);
    ctx.httpStreams.finish(entry);
  }
}

/**
 * Runs a cursor request (spec §4.5) after the body was decoded: the head carries the baton (handed
 * out before the batch ends), then one CursorEntry per frame.
 */
export async function serveCursor(ctx: ServerContext, reply: FastifyReply, session: Session, baton: unknown, batch: unknown, framing: CursorFraming): Promise<FastifyReply> {
  const entry = await openOrTakeStream(ctx, session, baton, reply.request.socket.remoteAddress ?? '');
  const entries = entry.stream.cursor(batch, streamContext(ctx, session, 3), { trailingReplicationIndex: framing.trailingReplicationIndex });
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
  const head = framing.head({ baton: ctx.httpStreams.peekNextBaton(entry), base_url: ctx.config.httpSelfUrl });
  return reply.type(framing.contentType).send(Readable.from(cursorChunks(ctx, entry, framing, head, first, entries)));
}

/** `POST /v3/cursor`: JSON lines in a `text/plain` body, like sqld's. */
export function cursorRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v3/cursor', authenticateFirst(ctx), async (request, reply) => {
    const session = sessionOf(request);
    const body = parseJsonBody(request.body);
    if (!isObject(body) || !isObject(body.batch)) throw new ProtocolError('Cannot deserialize client message from JSON: expected an object with `batch`');
    return serveCursor(ctx, reply, session, body.baton, body.batch, jsonLines);
  });
}
