/**
 * Byte sizes as sqld's admin API reads and writes them (the `bytesize` crate, 1.x): a JSON integer
 * of bytes, or a string — a plain integer, or a number (decimals allowed) with a unit, optionally
 * separated by spaces, case-insensitive: `b`, `k`/`kb`, `ki`/`kib`, `m`/`mb`, `mi`/`mib`, `g`/`gb`,
 * `gi`/`gib`, `t`/`tb`, `ti`/`tib`, `p`/`pb`, `pi`/`pib` (no unit = bytes). Written back in decimal
 * units with one decimal (`10.0 MB`; below 1000: `500 B`).
 */

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
  p: 1e15,
  pb: 1e15,
  pi: 1024 ** 5,
  pib: 1024 ** 5,
};

/** Parses a byte size (JSON integer or string); throws an Error with the reason. */
export function parseByteSizeValue(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`invalid value: ${value}, expected a byte size (a whole number of bytes)`);
    return value;
  }
  if (typeof value !== 'string') throw new Error('invalid type: expected a byte size (an integer or a string such as "10MB")');
  if (/^\d+$/.test(value)) return checked(Number(value), value);
  const m = /^(\d*\.?\d*)\s*(.*)$/.exec(value);
  const number = m?.[1] ?? '';
  const unit = (m?.[2] ?? '').trim().toLowerCase();
  const amount = Number(number);
  if (number === '' || number === '.' || !Number.isFinite(amount)) throw new Error(`couldn't parse ${JSON.stringify(value)} into a byte size`);
  const factor = UNITS[unit];
  if (factor === undefined) throw new Error(`couldn't parse ${JSON.stringify(m?.[2] ?? '')} into a known unit`);
  return checked(Math.floor(amount * factor), value);
}

function checked(n: number, text: string): number {
  if (!Number.isSafeInteger(n)) throw new Error(`the byte size ${JSON.stringify(text)} is too large`);
  return n;
}

const PREFIXES = 'KMGTPE';

/** `bytes` in decimal units with one decimal, as sqld's GET config shows `max_db_size`. */
export function formatByteSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const exp = Math.max(1, Math.min(PREFIXES.length, Math.floor(Math.log(bytes) / Math.log(1000))));
  return `${(bytes / 1000 ** exp).toFixed(1)} ${PREFIXES[exp - 1]}B`;
}
