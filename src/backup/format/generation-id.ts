/**
 * Bottomless generation ids (spec §1.4): version-7 UUIDs whose 48-bit millisecond clock runs
 * backwards from 9998-12-31T23:00:00Z, so a newer generation sorts before an older one, both as a
 * string and as an S3 key. Comparisons use whole seconds; the sub-second part is approximate.
 */
import { randomBytes } from 'node:crypto';

/** The mirror point of the clock in Unix seconds (9998-12-31T23:00:00Z). */
export const GENERATION_MIRROR_SECS = 253_370_761_200;

const GENERATION_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The §1.4 pattern: lowercase hyphenated hex, version 7, RFC 4122 variant. */
export function isGenerationId(s: string): boolean {
  return GENERATION_RE.test(s);
}

/**
 * A new generation id for the time `now` (Unix milliseconds, or seconds + nanoseconds; default the
 * current time). `random(n)` supplies the n random bytes (tests make it deterministic).
 */
export function newGenerationId(
  now: number | { secs: number; nanos: number } = Date.now(),
  random: (n: number) => Buffer = randomBytes,
): string {
  let secs: number;
  let nanos: number;
  if (typeof now === 'number') {
    if (!Number.isFinite(now)) throw new RangeError(`invalid time ${now}`);
    secs = Math.floor(now / 1000);
    nanos = Math.min(999_999_999, Math.floor((now - secs * 1000) * 1_000_000));
  } else {
    ({ secs, nanos } = now);
  }
  if (!Number.isSafeInteger(secs) || secs < 0 || secs > GENERATION_MIRROR_SECS) throw new RangeError(`time out of range for a generation id: ${secs} s`);
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) throw new RangeError(`invalid nanoseconds ${nanos}`);
  const millis = (GENERATION_MIRROR_SECS - secs) * 1000 + Math.floor((999_999_999 - nanos) / 1_000_000);
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(millis, 0, 6);
  const rnd = random(10);
  if (rnd.length < 10) throw new RangeError('the random source returned fewer than 10 bytes');
  rnd.copy(bytes, 6, 0, 10);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  return formatUuid(bytes);
}

/** The mirrored millisecond clock: the first 12 hex digits. */
function mirroredMillis(id: string): number {
  if (!UUID_RE.test(id)) throw new RangeError(`not a generation id: ${id}`);
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** The creation second of a generation (Unix seconds): what restore, `rm` and tombstones compare. */
export function generationSeconds(id: string): number {
  return GENERATION_MIRROR_SECS - Math.floor(mirroredMillis(id) / 1000);
}

/** The creation time in Unix milliseconds; exact to the second, approximate below it. */
export function generationTimeMs(id: string): number {
  const millis = mirroredMillis(id);
  return (GENERATION_MIRROR_SECS - Math.floor(millis / 1000)) * 1000 + (999 - (millis % 1000));
}

/** Orders ids newest first (which is plain string order). */
export function compareGenerationIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The 16 bytes of a UUID string in RFC 4122 order (as `.dep` stores its parent). */
export function generationIdToBytes(id: string): Buffer {
  if (!UUID_RE.test(id)) throw new RangeError(`not a UUID: ${id}`);
  return Buffer.from(id.replaceAll('-', ''), 'hex');
}

/** The lowercase hyphenated string of 16 UUID bytes (any version; callers check the pattern). */
export function generationIdFromBytes(buf: Uint8Array): string {
  if (buf.length !== 16) throw new RangeError(`a UUID has 16 bytes, got ${buf.length}`);
  return formatUuid(Buffer.from(buf.buffer, buf.byteOffset, 16));
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
