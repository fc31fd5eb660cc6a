/**
 * `bottomless restore` without oclif, for start-up: loading oclif and its configuration costs
 * about 0.1 s before a restore can send its first request, and a restore is often run where that
 * matters (a replacement server waiting for its database). Only a plain command line takes this
 * path — each flag of the command at most once, as `--name value`, `--name=value` or `-c value`,
 * values that do not start with `-`, and no flag combination oclif refuses; anything else (help,
 * version, unknown or repeated flags, positional words) returns false and goes through oclif as
 * before, with its messages. Output and errors are what the oclif command prints: the same
 * runRestore (restore-run.ts), the same `Error:`/`Try:` lines and exit codes as base-command.ts.
 */
import { ConfigError, LibsqlctlError } from '../errors.js';
import type { RestoreFlagValues } from './restore-run.js';

type StringFlag = 'endpoint' | 'bucket' | 'database' | 'namespace' | 'db-name' | 'generation' | 'utc-time' | 'output';
type BooleanFlag = 'json' | 'force' | 'allow-gaps';

const STRING_FLAGS: readonly StringFlag[] = ['endpoint', 'bucket', 'database', 'namespace', 'db-name', 'generation', 'utc-time', 'output'];
const BOOLEAN_FLAGS: readonly BooleanFlag[] = ['json', 'force', 'allow-gaps'];
const CHARS: Readonly<Record<string, StringFlag>> = { e: 'endpoint', b: 'bucket', d: 'database', n: 'namespace', g: 'generation', u: 'utc-time', o: 'output' };
/** Pairs the command declares exclusive (oclif reports them). */
const EXCLUSIVE: readonly [StringFlag, StringFlag][] = [
  ['namespace', 'db-name'],
  ['generation', 'utc-time'],
];

function isString(name: string): name is StringFlag {
  return (STRING_FLAGS as readonly string[]).includes(name);
}

function isBoolean(name: string): name is BooleanFlag {
  return (BOOLEAN_FLAGS as readonly string[]).includes(name);
}

/**
 * The flags of a plain `bottomless restore` command line (the words after `bottomless restore`),
 * as oclif would parse them; null when oclif should decide. `dbPathEnv`: SQLD_DB_PATH, the
 * default of `--database` (as oclif reads it: when not empty), else `data.sqld`.
 */
export function parsePlainRestoreArgs(args: readonly string[], dbPathEnv: string | undefined): RestoreFlagValues | null {
  const strings: Partial<Record<StringFlag, string>> = {};
  const booleans = new Set<BooleanFlag>();
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let name: string;
    let value: string | undefined;
    if (/^--[a-z][a-z-]*(=|$)/.test(arg)) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) value = arg.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(arg) && CHARS[arg[1]!] !== undefined) {
      name = CHARS[arg[1]!]!;
    } else {
      return null;
    }
    if (seen.has(name)) return null;
    seen.add(name);
    if (isBoolean(name)) {
      if (value !== undefined) return null;
      booleans.add(name);
      continue;
    }
    if (!isString(name)) return null;
    if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith('-')) return null;
    }
    if (value === '' || value.startsWith('-')) return null;
    strings[name] = value;
  }
  if (EXCLUSIVE.some(([a, b]) => seen.has(a) && seen.has(b))) return null;
  return {
    ...strings,
    database: strings.database ?? (dbPathEnv !== undefined && dbPathEnv !== '' ? dbPathEnv : 'data.sqld'),
    json: booleans.has('json'),
    force: booleans.has('force'),
    'allow-gaps': booleans.has('allow-gaps'),
  };
}

/** Runs `bottomless restore <args>` without oclif when the command line is plain; false: it is not (oclif runs it). */
export async function tryPlainRestore(args: readonly string[]): Promise<boolean> {
  // eslint-disable-next-line no-restricted-properties -- the variable oclif reads for --database (bottomless-flags.ts: env SQLD_DB_PATH)
  const flags = parsePlainRestoreArgs(args, process.env.SQLD_DB_PATH);
  if (flags === null) return false;
  const { runRestore } = await import('./restore-run.js');
  try {
    await runRestore(flags, { log: (line) => process.stdout.write(`${line}\n`), logToStderr: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    if (!(err instanceof LibsqlctlError)) {
      const { handle } = await import('@oclif/core');
      await handle(err instanceof Error ? err : new Error(String(err)));
      return true;
    }
    process.stderr.write(`Error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`Try: ${err.hint}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  }
  return true;
}
