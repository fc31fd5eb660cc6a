import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../../context.js';
import { HranaError, ProtocolError } from '../../hrana/errors.js';
import { decodeCursorReqBody, decodePipelineReqBody, encodeCursorEntryDelimited, encodeCursorRespBody, encodeErrorBody, encodePipelineRespBody } from '../../hrana/protobuf/http.js';
import { ProtobufDecodeError } from '../../hrana/protobuf/wire.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import { serveCursor, type CursorFraming } from './cursor.js';
import { openOrTakeStream, runPipeline, streamContext } from './pipeline.js';

const PROTOBUF = 'application/x-protobuf';

const delimitedProtobuf: CursorFraming = {
  contentType: 'application/octet-stream',
  // hrana-client-ts (the protobuf client) rejects an entry it does not know: leave sqld's out.
  trailingReplicationIndex: false,
  head: encodeCursorRespBody,
  entry: encodeCursorEntryDelimited,
};

/** Decodes a raw body; malformed bytes are a protocol error (400 text/plain), like malformed JSON. */
function decodeBody<T>(body: unknown, decode: (data: Uint8Array) => T): T {
  const data = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  try {
    return decode(data);
  } catch (err) {
    if (err instanceof ProtobufDecodeError) throw new ProtocolError(`Cannot decode client message from Protobuf: ${err.message}`);
    throw err;
  }
}

/** Hrana-coded errors that abort a request (STREAM_EXPIRED) answer 400 with a protobuf `Error`. */
function sendHranaError(reply: FastifyReply, err: HranaError): FastifyReply {
  const body = encodeErrorBody({ message: err.message, code: err.code });
  return reply.code(400).header('content-type', PROTOBUF).send(body);
}

async function handleHranaErrors(reply: FastifyReply, run: () => Promise<FastifyReply>): Promise<FastifyReply> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof HranaError) return sendHranaError(reply, err);
    throw err;
  }
}

/**
 * Hrana 3 over HTTP with protobuf bodies (spec §4.4-4.5): `POST /v3-protobuf/pipeline` and
 * `POST /v3-protobuf/cursor`, on the same streams, batons and pipeline as the JSON routes.
 */
export function protobufRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v3-protobuf/pipeline', authenticateFirst(ctx), (request, reply) =>
    handleHranaErrors(reply, async () => {
      const session = sessionOf(request);
      const body = decodeBody(request.body, decodePipelineReqBody);
      const entry = await openOrTakeStream(ctx, session, body.baton, request.socket.remoteAddress ?? '');
      const results = await runPipeline(ctx, entry, body.requests, streamContext(ctx, session, 3));
      const baton = ctx.httpStreams.finish(entry);
      const payload = encodePipelineRespBody({ baton, base_url: ctx.config.httpSelfUrl, results });
      const release = ctx.responses.reserve(payload.length);
      reply.raw.once('close', release);
      return reply.header('content-type', PROTOBUF).send(payload);
    }),
  );

  app.post('/v3-protobuf/cursor', authenticateFirst(ctx), (request, reply) =>
    handleHranaErrors(reply, async () => {
      const session = sessionOf(request);
      const body = decodeBody(request.body, decodeCursorReqBody);
      return serveCursor(ctx, reply, session, body.baton, body.batch, delimitedProtobuf);
    }),
  );
}
