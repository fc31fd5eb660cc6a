import type { SqlArgs, SqlValue } from '../../engine/values.js';
import { SqlError } from '../../engine/sql-error.js';
import { ProtocolError } from './errors.js';
import type { Stmt, Value } from './protocol.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decodes a Hrana JSON value; an unknown or missing `type` is a protocol error (as in sqld). */
export function decodeValue(v: unknown): SqlValue {
  if (!isObject(v)) throw new ProtocolError('Value type not recognized');
  switch (v.type) {
    case 'null':
      return null;
    case 'integer': {
      const raw = v.value;
      if (typeof raw !== 'string' || !/^-?\d+$/.test(raw)) {
        throw new ProtocolError('Cannot deserialize client message: integer value must be a string holding a 64-bit integer');
      }
      const n = BigInt(raw);
      if (n < I64_MIN || n > I64_MAX) throw new ProtocolError('Cannot deserialize client message: integer value out of range');
      return n;
    }
    case 'float':
      if (typeof v.value !== 'number') throw new ProtocolError('Cannot deserialize client message: float value must be a number');
      return v.value;
    case 'text':
      if (typeof v.value !== 'string') throw new ProtocolError('Cannot deserialize client message: text value must be a string');
      return v.value;
    case 'blob':
      if (typeof v.base64 !== 'string') throw new ProtocolError('Cannot deserialize client message: blob value must have base64');
      return Buffer.from(v.base64, 'base64');
    default:
      throw new ProtocolError('Value type not recognized');
  }
}

export function encodeValue(v: SqlValue): Value {
  if (v === null) return { type: 'null' };
  switch (typeof v) {
    case 'bigint':
      return { type: 'integer', value: v.toString() };
    case 'number':
      return { type: 'float', value: v };
    case 'string':
      return { type: 'text', value: v };
    default:
      return { type: 'blob', base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64').replace(/=+$/, '') };
  }
}

/** Arguments of a Hrana Stmt; both positional and named → ARGS_BOTH_POSITIONAL_AND_NAMED. */
export function decodeArgs(stmt: Stmt): SqlArgs {
  const args = stmt.args ?? [];
  const namedArgs = stmt.named_args ?? [];
  if (!Array.isArray(args) || !Array.isArray(namedArgs)) throw new ProtocolError('Cannot deserialize client message: args must be arrays');
  if (args.length > 0 && namedArgs.length > 0) {
    throw new SqlError('ARGS_BOTH_POSITIONAL_AND_NAMED', 'Arguments must not be both positional and named');
  }
  const named = new Map<string, SqlValue>();
  for (const a of namedArgs) {
    if (!isObject(a) || typeof a.name !== 'string') throw new ProtocolError('Cannot deserialize client message: named argument without a name');
    named.set(a.name, decodeValue(a.value));
  }
  return { positional: args.map(decodeValue), named };
}
