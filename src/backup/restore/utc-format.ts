/**
 * Times as the bottomless commands print them, always UTC, without date-fns (time.ts parses; it
 * loads date-fns, which every restore would otherwise pay for at start-up).
 */

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function checked(date: Date): Date {
  if (Number.isNaN(date.getTime())) throw new RangeError('Invalid time value');
  return date;
}

/** `2023-11-29` (the UTC date). */
export function formatUtcDate(date: Date): string {
  const d = checked(date);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** `2023-11-29 07:34:00` (UTC). */
export function formatUtc(date: Date): string {
  const d = checked(date);
  return `${formatUtcDate(d)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
