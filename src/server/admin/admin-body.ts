/**
 * JSON request bodies of the admin API, refused as sqld's JSON extractor refuses them (spec §4.10):
 * a body without `content-type: application/json` (or `+json`) → 415, malformed JSON → 400, a
 * well-formed body of the wrong shape → 422, each with a plain-text body.
 */
import type { FastifyRequest } from 'fastify';
import { LibsqlctlError } from '../../errors.js';

/** A refused request body: status and plain-text message (mapped in src/server/http/error-map.ts). */
export class RequestBodyError extends LibsqlctlError {
  constructor(
    readonly status: 400 | 415 | 422,
    message: string,
  ) {
    super(status === 415 ? 'BODY_CONTENT_TYPE' : status === 400 ? 'BODY_JSON_SYNTAX' : 'BODY_JSON_SHAPE', message);
  }
}

const JSON_TYPE = /^\s*application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i;

/** A body of the wrong shape (422), naming the field. */
export function wrongShape(detail: string): RequestBodyError {
  return new RequestBodyError(422, `Failed to deserialize the JSON body into the target type: ${detail}`);
}

function rawBody(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** The request's JSON object; `optional`: an empty body (with any content type) reads as `{}`. */
export function jsonObjectBody(req: FastifyRequest, opts: { optional?: boolean } = {}): Record<string, unknown> {
  const body = rawBody(req);
  if (opts.optional && body.length === 0) return {};
  if (!JSON_TYPE.test(req.headers['content-type'] ?? '')) {
    throw new RequestBodyError(415, 'Expected request with `Content-Type: application/json`');
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new RequestBodyError(400, `Failed to parse the request body as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw wrongShape('invalid type: expected a JSON object');
  return value as Record<string, unknown>;
}

/** Typed field readers: absent and `null` are "not given" (serde's Option), anything else must fit. */
export const field = {
  bool(obj: Record<string, unknown>, name: string, required = false): boolean | undefined {
    const v = obj[name];
    if (v === undefined || v === null) {
      if (required) throw wrongShape(`missing field \`${name}\``);
      return undefined;
    }
    if (typeof v !== 'boolean') throw wrongShape(`${name}: invalid type: expected a boolean`);
    return v;
  },
  string(obj: Record<string, unknown>, name: string): string | undefined {
    const v = obj[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw wrongShape(`${name}: invalid type: expected a string`);
    return v;
  },
  uint(obj: Record<string, unknown>, name: string): number | undefined {
    const v = obj[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw wrongShape(`${name}: invalid value: expected a non-negative integer`);
    return v;
  },
};
