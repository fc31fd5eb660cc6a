/**
 * `proxy.Value.data`: a SQL value in bincode 1.x's default encoding (spec sqld-wire.md §6.7): the
 * variant index as u32 LE, then Integer as i64 LE, Real as f64 LE, Text and Blob as a u64 LE byte
 * length and the bytes. Null has no payload.
 */
import type { SqlValue } from '../engine/values.js';

const NULL = 0;
const INTEGER = 1;
const REAL = 2;
const TEXT = 3;
const BLOB = 4;

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** Bytes that are not a bincode SQL value. */
export class BincodeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'BincodeError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function withLength(variant: number, bytes: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(12 + bytes.length);
  out.writeUInt32LE(variant, 0);
  out.writeBigUInt64LE(BigInt(bytes.length), 4);
  out.set(bytes, 12);
  return out;
}

export function encodeSqlValue(v: SqlValue): Uint8Array {
  if (v === null) return Buffer.alloc(4);
  if (typeof v === 'bigint') {
    if (v < I64_MIN || v > I64_MAX) throw new RangeError(`integer ${v} does not fit in 64 bits`);
    const out = Buffer.allocUnsafe(12);
    out.writeUInt32LE(INTEGER, 0);
    out.writeBigInt64LE(v, 4);
    return out;
  }
  if (typeof v === 'number') {
    const out = Buffer.allocUnsafe(12);
    out.writeUInt32LE(REAL, 0);
    out.writeDoubleLE(v, 4);
    return out;
  }
  if (typeof v === 'string') return withLength(TEXT, Buffer.from(v, 'utf8'));
  if (v instanceof Uint8Array) return withLength(BLOB, v);
  throw new TypeError(`not a SQL value: ${typeof v}`);
}

function need(bytes: Uint8Array, n: number, what: string): void {
  if (bytes.length < n) throw new BincodeError(`bincode SQL value: ${what} needs ${n} bytes, got ${bytes.length}`);
}

function exact(bytes: Uint8Array, n: number): void {
  if (bytes.length > n) throw new BincodeError(`bincode SQL value: ${bytes.length - n} trailing bytes`);
}

export function decodeSqlValue(bytes: Uint8Array): SqlValue {
  need(bytes, 4, 'the variant index');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const variant = view.getUint32(0, true);
  switch (variant) {
    case NULL:
      exact(bytes, 4);
      return null;
    case INTEGER:
      need(bytes, 12, 'an integer');
      exact(bytes, 12);
      return view.getBigInt64(4, true);
    case REAL:
      need(bytes, 12, 'a real');
      exact(bytes, 12);
      return view.getFloat64(4, true);
    case TEXT:
    case BLOB: {
      need(bytes, 12, 'a length');
      const len = view.getBigUint64(4, true);
      const available = BigInt(bytes.length - 12);
      if (len > available) throw new BincodeError(`bincode SQL value: length ${len} exceeds the ${available} bytes left`);
      const end = 12 + Number(len);
      exact(bytes, end);
      const body = bytes.subarray(12, end);
      // A copy (a Buffer, as the engine binds blobs): the value outlives the message it came in.
      if (variant === BLOB) return Buffer.from(body);
      try {
        return utf8.decode(body);
      } catch {
        throw new BincodeError('bincode SQL value: text is not valid UTF-8');
      }
    }
    default:
      throw new BincodeError(`bincode SQL value: unknown variant ${variant}`);
  }
}
