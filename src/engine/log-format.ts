/**
 * Human-readable log lines for a terminal: pino writes JSON lines, and when stderr is a TTY each is
 * turned into `<time> <LEVEL> <msg> key=value …` before it is written. Log shippers and tests, which
 * read stderr through a pipe, keep getting pino's JSON unchanged.
 */
import type { DestinationStream } from 'pino';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Fields every line has (shown in their own place, or not at all). */
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** A value as `key=value` shows it: bare when unambiguous, JSON-quoted otherwise. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value !== null && typeof value === 'object') {
    // pino's error serializer: the message is what a reader needs on one line.
    const err = value as { type?: unknown; message?: unknown };
    if (typeof err.type === 'string' && typeof err.message === 'string') return JSON.stringify(err.message);
    return JSON.stringify(value);
  }
  return String(value);
}

function formatTime(time: unknown): string {
  return typeof time === 'number' ? new Date(time).toISOString() : new Date().toISOString();
}

/** One pino JSON line as one line of text (a line that is not JSON is passed through). */
export function formatLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return line.endsWith('\n') ? line : `${line}\n`;
    record = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = typeof record.level === 'number' ? (LEVEL_NAMES[record.level] ?? String(record.level)) : String(record.level);
  const parts = [formatTime(record.time), level.padStart(5), typeof record.msg === 'string' ? record.msg : ''];
  for (const [key, value] of Object.entries(record)) {
    if (OMITTED.has(key) || value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return `${parts.filter((p) => p !== '').join(' ')}\n`;
}

/** A pino destination that formats each line with formatLogLine before handing it to `out`. */
export function prettyDestination(out: DestinationStream): DestinationStream {
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') out.write(formatLogLine(line));
    },
  };
}
