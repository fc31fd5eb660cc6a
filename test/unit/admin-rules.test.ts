import { describe, expect, it } from 'vitest';
import { resolveServeConfig, type ServeFlags } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { ConfigError } from '../../src/errors.js';
import { namespaceNameProblem } from '../../src/engine/namespace-name.js';
import { NamespaceStats } from '../../src/engine/namespace-stats.js';
import { formatByteSize, parseByteSizeValue } from '../../src/server/admin/byte-size.js';

/** The admin API's small rules: byte sizes (sqld's bytesize), our namespace names, the stats lists. */

describe('byte sizes', () => {
  it('parse as sqld does: integers, and numbers with decimal or binary units in any case', () => {
    const cases: [unknown, number][] = [
      [4096, 4096],
      ['4096', 4096],
      ['10MB', 10_000_000],
      ['10 mb', 10_000_000],
      ['5 GiB', 5 * 1024 ** 3],
      ['1.5k', 1500],
      ['512kib', 512 * 1024],
      ['2 TB', 2e12],
      ['7', 7],
      ['3b', 3],
    ];
    for (const [input, bytes] of cases) expect(parseByteSizeValue(input), String(input)).toBe(bytes);
  });

  it('refuse what is not a size', () => {
    for (const input of ['', 'MB', '10 parsecs', '-5', -1, 1.5, true, null, {}, '1e3'] as unknown[]) {
      expect(() => parseByteSizeValue(input), JSON.stringify(input)).toThrow();
    }
  });

  it('format in decimal units with one decimal, as GET config shows them', () => {
    expect(formatByteSize(0)).toBe('0 B');
    expect(formatByteSize(999)).toBe('999 B');
    expect(formatByteSize(1000)).toBe('1.0 KB');
    expect(formatByteSize(10_000_000)).toBe('10.0 MB');
    expect(formatByteSize(9_998_336)).toBe('10.0 MB');
    expect(formatByteSize(4294967294 * 4096)).toBe('17.6 TB');
  });
});

describe('namespace names', () => {
  it('accept ordinary names, including -, _, :, . and non-ASCII', () => {
    for (const name of ['default', 'my-db', 'a_b', 'ns:1', 'v1.2', 'bücher', '数据库', 'x'.repeat(128)]) expect(namespaceNameProblem(name), name).toBeNull();
  });

  it('refuse what cannot be a portable folder name', () => {
    const bad = ['', '.', '..', 'a..b', 'a/b', 'a\\b', 'nul\0', 'tab\t', 'del\x7f', 'c1\u0085', 'x'.repeat(129), 'é'.repeat(65), '\uD800', 'e\u0301'];
    for (const name of bad) expect(namespaceNameProblem(name), JSON.stringify(name)).not.toBeNull();
  });
});

describe('namespace stats', () => {
  it('keeps the ten heaviest and slowest statements, one entry per text', () => {
    const stats = new NamespaceStats();
    for (let i = 1; i <= 15; i++) stats.record(`q${i}`, i, 0, i);
    stats.record('q3', 100, 0, 100);
    stats.record('q3', 1, 0, 1);
    const s = stats.snapshot();
    expect(s.queryCount).toBe(17);
    expect(s.rowsRead).toBe(120 + 101);
    expect(s.topQueries.map((q) => q.query)).toEqual(['q3', 'q15', 'q14', 'q13', 'q12', 'q11', 'q10', 'q9', 'q8', 'q7']);
    expect(s.slowestQueries.map((q) => q.query)).toEqual(['q3', 'q15', 'q14', 'q13', 'q12', 'q11', 'q10', 'q9', 'q8', 'q7']);
    stats.resetTop();
    expect(stats.snapshot().topQueries).toEqual([]);
    expect(stats.snapshot().slowestQueries).toHaveLength(10);
  });
});

describe('admin configuration', () => {
  const resolve = (flags: Partial<ServeFlags>) => resolveServeConfig({ ...serveFlagDefaults(), 'db-path': 'unused.sqld', ...flags }, {});

  it('is off by default; --admin-auth-key alone is ignored, as in sqld', async () => {
    expect((await resolve({})).admin).toBeNull();
    expect((await resolve({ 'admin-auth-key': 'k' })).admin).toBeNull();
    expect((await resolve({ 'admin-listen-addr': '127.0.0.1:9090', 'admin-auth-key': 'k' })).admin).toEqual({ listen: { host: '127.0.0.1', port: 9090 }, authKey: 'k' });
    expect((await resolve({ 'admin-listen-addr': '[::1]:0' })).admin).toEqual({ listen: { host: '::1', port: 0 }, authKey: null });
  });

  it('refuses a bad address, an empty key and the user port’s own address', async () => {
    const cases: [Partial<ServeFlags>, RegExp][] = [
      [{ 'admin-listen-addr': 'localhost' }, /^--admin-listen-addr: expected <host>:<port>/],
      [{ 'admin-listen-addr': '127.0.0.1:9090', 'admin-auth-key': ' ' }, /^--admin-auth-key: the key is empty/],
      [{ 'admin-listen-addr': '127.0.0.1:8080' }, /is the user port's address too/],
    ];
    for (const [flags, message] of cases) {
      const err = await resolve(flags).then(() => null, (e: unknown) => e);
      expect(err, JSON.stringify(flags)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toMatch(message);
    }
  });
});
