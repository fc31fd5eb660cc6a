/**
 * Log ids are UUIDs. sqld stores them as a u128 whose value is the UUID read as a big-endian
 * number, written little-endian: on disk the 16 bytes are the UUID's bytes in reverse order.
 */
import { randomUUID } from 'node:crypto';

export const LOG_ID_SIZE = 16;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A fresh random (v4) log id. */
export function newLogId(): string {
  return randomUUID();
}

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/** The UUID's 128-bit big-endian value. */
export function uuidToU128(uuid: string): bigint {
  if (!isUuid(uuid)) throw new RangeError(`not a UUID: ${uuid}`);
  return BigInt(`0x${uuid.replaceAll('-', '')}`);
}

/** Formats a 128-bit value as a lowercase hyphenated UUID. */
export function u128ToUuid(value: bigint): string {
  if (value < 0n || value >> 128n !== 0n) throw new RangeError('log id must be a u128');
  const hex = value.toString(16).padStart(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Writes `uuid` as a little-endian u128 at `offset` of `out`. */
export function writeLogId(uuid: string, out: Buffer, offset: number): void {
  const value = uuidToU128(uuid);
  out.writeBigUInt64LE(value & 0xffff_ffff_ffff_ffffn, offset);
  out.writeBigUInt64LE(value >> 64n, offset + 8);
}

/** Reads a little-endian u128 log id at `offset` of `buf` and returns it as a UUID string. */
export function readLogId(buf: Buffer, offset: number): string {
  const lo = buf.readBigUInt64LE(offset);
  const hi = buf.readBigUInt64LE(offset + 8);
  return u128ToUuid((hi << 64n) | lo);
}
