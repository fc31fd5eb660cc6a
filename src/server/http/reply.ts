import type { FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';

/** JSON of a result: bigints never reach here (Hrana encodes integers as strings). */
export function sendJson(ctx: ServerContext, reply: FastifyReply, body: unknown, contentType = 'application/json'): FastifyReply {
  const text = JSON.stringify(body);
  const release = ctx.responses.reserve(text.length);
  reply.raw.once('close', release);
  return reply.type(contentType).send(text);
}
