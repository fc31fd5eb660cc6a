/**
 * Times as the bottomless commands take and print them: always UTC. Accepted input is
 * bottomless-cli's `YYYY-MM-DDTHH:MM:SS[.fff]` (UTC), the same with a space for the `T`, ISO-8601
 * with a zone (`Z`, `+02:00`, `+0200`), and a bare date `YYYY-MM-DD` (its midnight UTC).
 */
import { isValid } from 'date-fns/isValid';
import { parseISO } from 'date-fns/parseISO';
import { ConfigError } from '../../errors.js';
import { formatUtcDate } from './utc-format.js';

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const TIME_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(Z|[+-]\d{2}:?\d{2})?$/i;

export { formatUtc, formatUtcDate } from './utc-format.js';

function bad(flag: string, text: string, accepted: string): ConfigError {
  return new ConfigError('CONFIG_BOTTOMLESS_TIME', `${flag}: not a valid time: ${JSON.stringify(text)}`, { hint: `write it as ${accepted}` });
}

/** A point in time (flag `flag` names it in errors). */
export function parseUtcTime(text: string, flag = '--utc-time'): Date {
  const accepted = 'YYYY-MM-DDTHH:MM:SS[.fff] (UTC), or ISO-8601 with a zone such as 2024-05-01T12:00:00+02:00';
  const t = text.trim();
  if (DATE_RE.test(t)) return parseUtcDate(t, flag);
  const m = TIME_RE.exec(t);
  if (m === null) throw bad(flag, text, accepted);
  const zone = m[3] === undefined ? 'Z' : m[3].toUpperCase();
  const date = parseISO(`${m[1]}T${m[2]}${zone}`);
  if (!isValid(date) || !sameCalendarDay(m[1]!, zone === 'Z' ? date : null)) throw bad(flag, text, accepted);
  return date;
}

/** A UTC date `YYYY-MM-DD`, as its midnight. */
export function parseUtcDate(text: string, flag: string): Date {
  const t = text.trim();
  const date = DATE_RE.test(t) ? parseISO(`${t}T00:00:00Z`) : new Date(Number.NaN);
  if (!isValid(date) || !sameCalendarDay(t, date)) throw bad(flag, text, 'YYYY-MM-DD (a UTC date)');
  return date;
}

/** Guards against days that roll over (2023-02-30); only checkable when the time is in UTC. */
function sameCalendarDay(ymd: string, date: Date | null): boolean {
  const [y, m, d] = ymd.split('-').map(Number) as [number, number, number];
  if (m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return false;
  return date === null || formatUtcDate(date) === ymd;
}
