import type { FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';

/** JSON of a result: bigints never reach here (Hrana encodes integers as strings). */
export function sendJson(ctx: ServerContext, reply: FastifyReply, body: unknown, contentType = 'application/json'): FastifyReply {
  const payload = Buffer.from(JSON.stringify(body));
  const release = ctx.responses.reserve(payload.length);
  reply.raw.once('close', release);
  return reply.header('content-type', contentType).send(payload);
}
