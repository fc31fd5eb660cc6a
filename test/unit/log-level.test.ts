import { describe, expect, it } from 'vitest';
import { logLevelFromRustLog, parseLogLevelName, resolveLogLevel } from '../../src/config/log-level.js';
import { ConfigError } from '../../src/errors.js';
import { formatLogLine } from '../../src/engine/log-format.js';

describe('logLevelFromRustLog: RUST_LOG onto one level', () => {
  it.each([
    ['info', 'info'],
    ['DEBUG', 'debug'],
    [',info', 'info'],
    ['warn,error', 'error'],
    ['libsql_server=debug,h2=warn', 'debug'],
    ['error,libsql_server=trace', 'trace'],
    ['libsql_server::http=debug,info', 'debug'],
    ['sqld=warn', 'warn'],
    ['libsqlctl=error,debug', 'error'],
    ['libsql_server=warn,sqld=debug,libsqlctl=info', 'debug'],
    ['libsql_server', 'trace'],
    ['libsql_server=off,debug', 'off'],
    ['libsql_server[request{ns=a}]=debug', 'debug'],
    [' info , h2 = trace ', 'info'],
  ])('%j → %s', (value, level) => {
    expect(logLevelFromRustLog(value)).toEqual({ level, invalid: [] });
  });

  it.each([
    ['h2=debug,tower=trace', null],
    ['', null],
    [',,', null],
    // prefix match is by module path, not by characters
    ['libsql_serverx=debug,libsql=trace', null],
    ['hyper', null],
  ])('%j says nothing about us → %s', (value, level) => {
    expect(logLevelFromRustLog(value)).toEqual({ level, invalid: [] });
  });

  it('unparseable directives are reported and ignored; the rest still counts', () => {
    expect(logLevelFromRustLog('libsql_server=loud,=debug,a b,warn')).toEqual({ level: 'warn', invalid: ['libsql_server=loud', '=debug', 'a b'] });
  });
});

describe('resolveLogLevel: --log-level wins over RUST_LOG, info by default', () => {
  it('defaults to info', () => {
    expect(resolveLogLevel(undefined, undefined)).toEqual({ level: 'info', ignoredRustLog: [] });
    expect(resolveLogLevel(undefined, '  ')).toEqual({ level: 'info', ignoredRustLog: [] });
    expect(resolveLogLevel(undefined, 'h2=debug')).toEqual({ level: 'info', ignoredRustLog: [] });
  });

  it('RUST_LOG when no flag; its bad directives are passed on for a warning', () => {
    expect(resolveLogLevel(undefined, 'libsql_server=debug,h2=warn')).toEqual({ level: 'debug', ignoredRustLog: [] });
    expect(resolveLogLevel(undefined, 'nope=x')).toEqual({ level: 'info', ignoredRustLog: ['nope=x'] });
  });

  it('the flag wins, case-insensitively', () => {
    expect(resolveLogLevel('WARN', 'trace')).toEqual({ level: 'warn', ignoredRustLog: [] });
    expect(resolveLogLevel('off', undefined).level).toBe('off');
    expect(parseLogLevelName('warning')).toBe('warn');
  });

  it('an invalid flag value is a ConfigError naming it', () => {
    expect(() => resolveLogLevel('loud', 'info')).toThrow(ConfigError);
    expect(() => resolveLogLevel('loud', 'info')).toThrow(/--log-level: unknown level `loud`/);
    expect(() => resolveLogLevel('libsql_server=debug', undefined)).toThrow(ConfigError);
  });
});

describe('formatLogLine: JSON line → one line of text for a terminal', () => {
  it('time, level name, msg, then key=value for the extra fields', () => {
    const line = JSON.stringify({ level: 20, time: Date.UTC(2024, 0, 2, 3, 4, 5, 6), pid: 1, hostname: 'h', name: 'libsqlctl', method: 'POST', path: '/v2/pipeline', status: 200, durationMs: 1.5, msg: 'request' });
    expect(formatLogLine(line)).toBe('2024-01-02T03:04:05.006Z DEBUG request method=POST path=/v2/pipeline status=200 durationMs=1.5\n');
  });

  it('quotes values with spaces, shows an error by its message, arrays as JSON', () => {
    const line = JSON.stringify({ level: 50, time: 0, msg: 'shutdown failed', reason: 'idle for 1 s', err: { type: 'Error', message: 'disk full', stack: 'Error: disk full\n    at x' }, ignored: ['A', 'B'] });
    expect(formatLogLine(line)).toBe('1970-01-01T00:00:00.000Z ERROR shutdown failed reason="idle for 1 s" err="disk full" ignored=["A","B"]\n');
  });

  it('passes a line that is not JSON through', () => {
    expect(formatLogLine('not json')).toBe('not json\n');
  });
});
