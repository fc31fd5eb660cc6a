import type { SqlArgs, SqlValue } from '../../../engine/values.js';
import { formatReal, JsonSyntaxError, type JsonObject, type JsonValue } from './legacy-json.js';

/**
 * Decoding of the legacy `POST /` body (spec §4.2) into queries, with the messages sqld's typed JSON
 * extractor gives: shape errors are answered 422 `Failed to deserialize the JSON body into the target
 * type: <path>: <serde message>`.
 */

export interface LegacyQuery {
  q: string;
  args: SqlArgs;
}

/** The body is valid JSON but not of the expected shape (422). */
export class BodyShapeError extends Error {}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

function isObject(v: JsonValue): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** serde's description of an unexpected value (`integer \`1\``, `map`, ...). */
function unexpected(v: JsonValue): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return `boolean \`${v}\``;
    case 'bigint':
      return `integer \`${v}\``;
    case 'number':
      return `floating point \`${formatReal(v)}\``;
    case 'string':
      return `string ${JSON.stringify(v)}`;
    default:
      return Array.isArray(v) ? 'sequence' : 'map';
  }
}

function shapeError(path: string, message: string): BodyShapeError {
  return new BodyShapeError(path === '' ? message : `${path}: ${message}`);
}

function invalidType(path: string, v: JsonValue, expected: string): BodyShapeError {
  return shapeError(path, `invalid type: ${unexpected(v)}, expected ${expected}`);
}

/** A JSON integer as SQLite gets it: u64 values above i64::MAX wrap; beyond 64 bits it is a real. */
function legacyInteger(n: bigint): SqlValue {
  if (n >= I64_MIN && n <= I64_MAX) return n;
  if (n > I64_MAX && n <= U64_MAX) return n - 2n ** 64n;
  return Number(n);
}

function decodeBlob(obj: JsonObject, path: string): Uint8Array {
  const keys = Object.keys(obj);
  const key = keys[0];
  if (key === undefined) throw shapeError(path, 'missing field `blob`');
  if (key !== 'base64') throw shapeError(path, `unknown field \`${key}\`, expected \`blob\``);
  const text = obj[key]!;
  if (typeof text !== 'string') throw invalidType(path, text, 'a borrowed string');
  // sqld's own entries end the map after one key: a second one is a JSON syntax error there
  if (keys.length > 1) throw new JsonSyntaxError(`${path}: trailing comma`);
  // standard alphabet; trailing `=` padding is tolerated (sqld itself only takes unpadded text)
  const bare = text.replace(/={1,2}$/, '');
  const bad = /[^A-Za-z0-9+/]/.exec(bare);
  if (bad !== null || bare.length % 4 === 1) {
    const reason = bad === null ? 'Invalid input length.' : `Invalid byte ${bad[0].charCodeAt(0)}, offset ${bad.index}.`;
    throw shapeError(path, `invalid value: string ${JSON.stringify(text)}, expected ${reason}`);
  }
  return Buffer.from(bare, 'base64');
}

function decodeValue(v: JsonValue, path: string): SqlValue {
  if (v === null) return null;
  switch (typeof v) {
    case 'boolean':
      return v ? 1n : 0n;
    case 'bigint':
      return legacyInteger(v);
    case 'number':
    case 'string':
      return v;
    default:
      if (Array.isArray(v)) throw invalidType(path, v, 'a valid SQLite value');
      return decodeBlob(v, path);
  }
}

function decodeParams(v: JsonValue, path: string): SqlArgs {
  if (Array.isArray(v)) return { positional: v.map((x, i) => decodeValue(x, `${path}[${i}]`)), named: new Map() };
  if (isObject(v)) {
    const named = new Map<string, SqlValue>();
    for (const [k, x] of Object.entries(v)) named.set(k, decodeValue(x, `${path}.${k}`));
    return { positional: [], named };
  }
  throw invalidType(path, v, 'an array or a map of parameters');
}

function decodeQuery(v: JsonValue, path: string): LegacyQuery {
  if (typeof v === 'string') return { q: v, args: { positional: [], named: new Map() } };
  if (!isObject(v)) throw invalidType(path, v, 'a string or an object');
  let q: string | undefined;
  let args: SqlArgs = { positional: [], named: new Map() };
  for (const [k, x] of Object.entries(v)) {
    if (k === 'q') {
      if (typeof x !== 'string') throw invalidType(`${path}.q`, x, 'a string');
      q = x;
    } else if (k === 'params') {
      args = decodeParams(x, `${path}.params`);
    } else {
      throw shapeError(path, `unknown field \`${k}\`, expected \`q\` or \`params\``);
    }
  }
  if (q === undefined) throw shapeError(path, 'missing field `q`');
  return { q, args };
}

function checkU64(v: JsonValue, path: string): void {
  if (typeof v !== 'bigint') throw invalidType(path, v, 'u64');
  if (v < 0n) throw shapeError(path, `invalid value: integer \`${v}\`, expected u64`);
}

/**
 * `{"statements": [Query, ...], "replication_index"?: u64}` (or, as serde also takes for a struct,
 * `[statements, replication_index]`). Unknown top-level keys are ignored.
 */
export function decodeLegacyBody(root: JsonValue): LegacyQuery[] {
  let statements: JsonValue | undefined;
  let replicationIndex: JsonValue | undefined;
  if (Array.isArray(root)) {
    if (root.length > 2) throw shapeError('', `invalid length ${root.length}, expected fewer elements in array`);
    [statements, replicationIndex] = root;
    if (statements === undefined) throw shapeError('', 'invalid length 0, expected struct HttpQuery with 2 elements');
  } else if (isObject(root)) {
    statements = root.statements;
    replicationIndex = root.replication_index;
    if (statements === undefined) throw shapeError('', 'missing field `statements`');
  } else {
    throw invalidType('', root, 'struct HttpQuery');
  }
  if (!Array.isArray(statements)) throw invalidType('statements', statements, 'a sequence');
  const queries = statements.map((q, i) => decodeQuery(q, `statements[${i}]`));
  if (replicationIndex !== undefined && replicationIndex !== null) checkU64(replicationIndex, 'replication_index');
  return queries;
}
