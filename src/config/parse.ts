import { ConfigError } from '../errors.js';

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1_000,
  m: 1_000_000,
  g: 1_000_000_000,
};

/** Parses sizes as sqld does (`10MB`, `5KB`, `1MiB`, plain bytes). */
export function parseByteSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase() || 'b'];
  if (!m || unit === undefined) {
    throw new ConfigError('CONFIG_INVALID_SIZE', `${flag}: cannot parse size \`${text}\``, { hint: 'Use a number with an optional unit, e.g. 10MB or 512KiB.' });
  }
  return Math.floor(Number(m[1]) * unit);
}

export interface ListenAddr {
  host: string;
  port: number;
}

/** Parses `host:port` (or `[v6]:port`). */
export function parseListenAddr(text: string, flag: string): ListenAddr {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError('CONFIG_INVALID_ADDR', `${flag}: expected <host>:<port>, got \`${text}\``, { hint: 'For example 127.0.0.1:8080.' });
  }
  return { host: (m[1] ?? m[2])!, port };
}

export function parsePositive(text: string | number | undefined, flag: string, opts: { integer?: boolean; allowZero?: boolean } = {}): number | null {
  if (text === undefined || text === '') return null;
  const n = typeof text === 'number' ? text : Number(text);
  const ok = Number.isFinite(n) && (opts.allowZero ? n >= 0 : n > 0) && (!opts.integer || Number.isInteger(n));
  if (!ok) throw new ConfigError('CONFIG_INVALID_NUMBER', `${flag}: expected a ${opts.integer ? 'whole ' : ''}number above zero, got \`${String(text)}\``);
  return n;
}
