import type { FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';

/** Passes a serialised body through: with a serializer set, fastify leaves the content type as given. */
const AS_IS = (payload: unknown): string => payload as string;

/**
 * JSON of a result (bigints never reach here: Hrana encodes integers as strings), with the content
 * type exactly as given (hrana-client-ts compares it whole; fastify would append a charset to a
 * string body without a serializer of its own). A string body leaves in one write with the headers.
 *
 * The body's bytes count against `--max-total-response-size` until the socket took them: at once
 * when the kernel accepted them all (the common case), else when the response closes.
 */
export function sendJson(ctx: ServerContext, reply: FastifyReply, body: unknown, contentType = 'application/json'): FastifyReply {
  const payload = JSON.stringify(body);
  const length = Buffer.byteLength(payload);
  const release = ctx.responses.reserve(length);
  // With the length given, fastify does not measure the body a second time.
  void reply.header('content-type', contentType).header('content-length', length).serializer(AS_IS).send(payload);
  const raw = reply.raw;
  if (raw.writableEnded && raw.writableLength === 0) release();
  else raw.once('close', release);
  return reply;
}
