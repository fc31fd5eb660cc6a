/** The connection limits' defaults and refusals (src/config/connection-limits.ts). */
import { describe, expect, it } from 'vitest';
import { connectionsForFdLimit, readOpenFileLimit, resolveConnectionLimits } from '../../src/config/connection-limits.js';
import { ConfigError } from '../../src/errors.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

describe('connection limits', () => {
  it('reads the soft open-file limit and leaves a quarter of it, less 64, to the databases', () => {
    expect(readOpenFileLimit(LIMITS)).toBe(1024);
    expect(readOpenFileLimit(LIMITS.replace('1024   ', 'unlimited'))).toBeNull();
    expect(readOpenFileLimit('nothing here')).toBeNull();
    expect(connectionsForFdLimit(1024)).toBe(704);
    expect(connectionsForFdLimit(null)).toBe(4096);
    expect(connectionsForFdLimit(40)).toBe(16);
    const l = resolveConnectionLimits({}, 1024);
    expect(l).toMatchObject({ headersTimeoutMs: 10_000, requestTimeoutMs: 120_000, keepAliveTimeoutMs: 10_000, idleTimeoutMs: 120_000, wsHelloTimeoutMs: 10_000 });
    expect(l).toMatchObject({ maxConnections: 704, maxConnectionsPerAddress: 352, maxConnectionsSource: 'fd-limit' });
  });

  it('takes fractional seconds and explicit caps; the share is never above the cap', () => {
    const l = resolveConnectionLimits({ 'http-headers-timeout-s': '0.5', 'max-connections': 100, 'max-connections-per-address': 500 }, 1024);
    expect(l).toMatchObject({ headersTimeoutMs: 500, maxConnections: 100, maxConnectionsPerAddress: 100, maxConnectionsSource: 'flag' });
  });

  it('refuses a cap the open-file limit cannot hold, a headers timeout above the request timeout, and bad numbers', () => {
    const refusal = (f: () => unknown): ConfigError => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return err as ConfigError;
      }
      throw new Error('accepted');
    };
    const a = refusal(() => resolveConnectionLimits({ 'max-connections': 2000 }, 1024));
    expect(a.message).toBe('--max-connections 2000 is more than the open-file limit (1024) leaves for sockets');
    expect(a.hint).toMatch(/ulimit -n.*960/);
    expect(refusal(() => resolveConnectionLimits({ 'http-headers-timeout-s': '30', 'http-request-timeout-s': '20' }, 1024)).code).toBe('CONFIG_TIMEOUTS');
    expect(refusal(() => resolveConnectionLimits({ 'http-idle-timeout-s': 'soon' }, 1024)).message).toMatch(/^--http-idle-timeout-s: expected a number above zero/);
  });
});
