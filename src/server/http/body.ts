import { ProtocolError } from '../hrana/errors.js';
import { checkJsonNesting } from '../hrana/nesting.js';

/**
 * Parses a raw request body as JSON; failures, nesting beyond MAX_JSON_DEPTH included, are Hrana
 * protocol errors (400 text/plain).
 */
export function parseJsonBody(body: unknown): unknown {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : '';
  try {
    checkJsonNesting(text);
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ProtocolError(`Cannot deserialize client message from JSON: ${(err as Error).message}`);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
