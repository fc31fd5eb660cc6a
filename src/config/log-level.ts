/**
 * The server's log level, chosen like sqld's: `--log-level` (env `LIBSQLCTL_LOG_LEVEL`) if given,
 * else `RUST_LOG`, else `info`.
 *
 * `RUST_LOG` holds comma-separated directives (`info`, `libsql_server=debug`, `h2=warn`,
 * `libsql_server::http`), as sqld's tracing filter reads them; our one logger has one level, so they
 * are mapped onto it:
 *
 * - a bare level is the default (the last one, if several);
 * - a directive whose target is one of ours (`libsql_server`, `sqld`, `libsqlctl`, or a module under
 *   one, `libsql_server::http`) overrides the default; if several, the most verbose wins. A target
 *   without a level enables everything (`trace`), as in tracing;
 * - directives for other targets (`h2=warn`, `tower`) are ignored;
 * - directives that cannot be parsed are ignored and reported (the server warns about them once).
 */
import { ConfigError } from '../errors.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'off'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

/** Targets whose directives decide our level: sqld's crate and binary, and ourselves. */
const OUR_TARGETS = ['libsql_server', 'sqld', 'libsqlctl'];

/** A Rust module path (tracing targets as RUST_LOG names them). */
const TARGET_RE = /^[A-Za-z_][A-Za-z0-9_-]*(::[A-Za-z_][A-Za-z0-9_-]*)*$/;

/** Lower is more verbose. */
const VERBOSITY: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, off: 5 };

/** A level name (case-insensitive, `warning` accepted as `warn`), or null. */
export function parseLogLevelName(value: string): LogLevel | null {
  const v = value.trim().toLowerCase();
  if (v === 'warning') return 'warn';
  return (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : null;
}

function isOurs(target: string): boolean {
  return OUR_TARGETS.some((t) => target === t || target.startsWith(`${t}::`));
}

export interface RustLogLevel {
  /** The level RUST_LOG asks for, or null when it says nothing about us (then the default applies). */
  level: LogLevel | null;
  /** Directives that could not be parsed (ignored). */
  invalid: string[];
}

/** Maps a `RUST_LOG` value onto one level (see the module comment). */
export function logLevelFromRustLog(value: string): RustLogLevel {
  let bare: LogLevel | null = null;
  let ours: LogLevel | null = null;
  const invalid: string[] = [];
  for (const raw of value.split(',')) {
    const directive = raw.trim();
    if (directive === '') continue;
    const eq = directive.lastIndexOf('=');
    if (eq < 0) {
      const level = parseLogLevelName(directive);
      if (level !== null) bare = level;
      else if (!TARGET_RE.test(directive)) invalid.push(directive);
      else if (isOurs(directive)) ours = 'trace';
      continue;
    }
    // A span filter (`target[span{field=1}]=debug`) narrows to spans we do not have: its target decides.
    const target = directive.slice(0, eq).replace(/\[.*$/, '').trim();
    const level = parseLogLevelName(directive.slice(eq + 1));
    if (level === null || !TARGET_RE.test(target)) {
      invalid.push(directive);
      continue;
    }
    if (isOurs(target) && (ours === null || VERBOSITY[level] < VERBOSITY[ours])) ours = level;
  }
  return { level: ours ?? bare, invalid };
}

export interface ResolvedLogLevel {
  level: LogLevel;
  /** RUST_LOG directives that were ignored because they cannot be parsed (warned about once). */
  ignoredRustLog: string[];
}

/** `--log-level` (an invalid value is a ConfigError) wins over `RUST_LOG`; `info` when neither is set. */
export function resolveLogLevel(flag: string | undefined, rustLog: string | undefined): ResolvedLogLevel {
  if (flag !== undefined) {
    const level = parseLogLevelName(flag);
    if (level === null) throw new ConfigError('CONFIG_LOG_LEVEL', `--log-level: unknown level \`${flag}\`; expected one of ${LOG_LEVELS.join(', ')}`);
    return { level, ignoredRustLog: [] };
  }
  if (rustLog === undefined || rustLog.trim() === '') return { level: DEFAULT_LOG_LEVEL, ignoredRustLog: [] };
  const parsed = logLevelFromRustLog(rustLog);
  return { level: parsed.level ?? DEFAULT_LOG_LEVEL, ignoredRustLog: parsed.invalid };
}
