import { LibsqlctlError } from '../../errors.js';
import { checkJsonNesting } from '../hrana/nesting.js';

/**
 * A client message that is not valid JSON or does not have the shape of a Hrana `ClientMsg`
 * (sqld's serde deserialization failure). The connection closes with 1007 (invalid payload).
 */
export class WsDecodeError extends LibsqlctlError {
  constructor(
    readonly detail: string,
    encoding: 'JSON' | 'Protobuf' = 'JSON',
  ) {
    super('WS_DECODE_ERROR', `Cannot deserialize client message from ${encoding}: ${detail}`);
  }
}

type Obj = Record<string, unknown>;

export type WsRequest =
  | { type: 'open_stream' | 'close_stream' | 'get_autocommit'; stream_id: number }
  | { type: 'execute'; stream_id: number; stmt: Obj }
  | { type: 'batch'; stream_id: number; batch: Obj }
  | { type: 'sequence' | 'describe'; stream_id: number; sql: string | null; sql_id: number | null }
  | { type: 'store_sql'; sql_id: number; sql: string }
  | { type: 'close_sql'; sql_id: number }
  | { type: 'open_cursor'; stream_id: number; cursor_id: number; batch: Obj }
  | { type: 'close_cursor'; cursor_id: number }
  | { type: 'fetch_cursor'; cursor_id: number; max_count: number };

export type ClientMsg =
  | { type: 'hello'; jwt: string | null }
  | { type: 'request'; request_id: number; request: WsRequest };

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;
const U32_MAX = 2 ** 32 - 1;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function absent(v: unknown): v is null | undefined {
  return v === undefined || v === null;
}

function int(obj: Obj, key: string, min: number, max: number): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new WsDecodeError(absent(v) ? `missing field \`${key}\`` : `invalid value for \`${key}\`: expected an integer in [${min}, ${max}]`);
  }
  return v;
}

function i32(obj: Obj, key: string): number {
  return int(obj, key, I32_MIN, I32_MAX);
}

function optI32(obj: Obj, key: string): number | null {
  return absent(obj[key]) ? null : i32(obj, key);
}

function optString(obj: Obj, key: string): string | null {
  const v = obj[key];
  if (absent(v)) return null;
  if (typeof v !== 'string') throw new WsDecodeError(`invalid value for \`${key}\`: expected a string`);
  return v;
}

function object(obj: Obj, key: string): Obj {
  const v = obj[key];
  if (!isObject(v)) throw new WsDecodeError(absent(v) ? `missing field \`${key}\`` : `invalid value for \`${key}\`: expected an object`);
  return v;
}

/** sqld's `replication_index` extension: a u64 as a JSON number or a decimal string (ignored on a primary). */
function checkReplicationIndex(obj: Obj): void {
  const v = obj.replication_index;
  if (absent(v)) return;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return;
  if (typeof v === 'string' && /^\d+$/.test(v) && BigInt(v) < 2n ** 64n) return;
  throw new WsDecodeError('invalid value for `replication_index`: expected an unsigned 64-bit integer');
}

function decodeRequest(req: Obj): WsRequest {
  const type = req.type;
  switch (type) {
    case 'open_stream':
    case 'close_stream':
    case 'get_autocommit':
      return { type, stream_id: i32(req, 'stream_id') };
    case 'execute':
      checkReplicationIndex(req);
      return { type, stream_id: i32(req, 'stream_id'), stmt: object(req, 'stmt') };
    case 'batch':
      return { type, stream_id: i32(req, 'stream_id'), batch: object(req, 'batch') };
    case 'sequence':
    case 'describe':
      checkReplicationIndex(req);
      return { type, stream_id: i32(req, 'stream_id'), sql: optString(req, 'sql'), sql_id: optI32(req, 'sql_id') };
    case 'store_sql': {
      const sql = optString(req, 'sql');
      if (sql === null) throw new WsDecodeError('missing field `sql`');
      return { type, sql_id: i32(req, 'sql_id'), sql };
    }
    case 'close_sql':
      return { type, sql_id: i32(req, 'sql_id') };
    case 'open_cursor':
      return { type, stream_id: i32(req, 'stream_id'), cursor_id: i32(req, 'cursor_id'), batch: object(req, 'batch') };
    case 'close_cursor':
      return { type, cursor_id: i32(req, 'cursor_id') };
    case 'fetch_cursor':
      return { type, cursor_id: i32(req, 'cursor_id'), max_count: int(req, 'max_count', 0, U32_MAX) };
    default:
      throw new WsDecodeError(`unknown request type ${JSON.stringify(type) ?? 'undefined'}`);
  }
}

/**
 * Parses and checks one JSON text frame (nesting beyond MAX_JSON_DEPTH is a decode error); the Stmt
 * and Batch contents are checked by the stream.
 */
export function decodeClientMsg(text: string): ClientMsg {
  let msg: unknown;
  try {
    checkJsonNesting(text);
    msg = JSON.parse(text);
  } catch (err) {
    throw new WsDecodeError(err instanceof Error ? err.message : String(err));
  }
  return checkClientMsg(msg);
}

/** Checks a client message in JSON shape (parsed from JSON or decoded from protobuf). */
export function checkClientMsg(msg: unknown): ClientMsg {
  if (!isObject(msg)) throw new WsDecodeError('expected a JSON object');
  switch (msg.type) {
    case 'hello':
      return { type: 'hello', jwt: optString(msg, 'jwt') };
    case 'request':
      return { type: 'request', request_id: i32(msg, 'request_id'), request: decodeRequest(object(msg, 'request')) };
    default:
      throw new WsDecodeError(`unknown message type ${JSON.stringify(msg.type) ?? 'undefined'}`);
  }
}
