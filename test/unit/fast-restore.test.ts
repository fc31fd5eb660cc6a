import { describe, expect, it } from 'vitest';
import Restore from '../../src/commands/bottomless/restore.js';
import { parsePlainRestoreArgs } from '../../src/cli/fast-restore.js';

/** Which `bottomless restore` command lines skip oclif, and that they parse as oclif parses them. */

describe('parsePlainRestoreArgs', () => {
  it('parses the plain forms of every flag, with --database from SQLD_DB_PATH or data.sqld', () => {
    expect(parsePlainRestoreArgs(['-o', 'x.db', '--json'], undefined)).toEqual({ output: 'x.db', database: 'data.sqld', json: true, force: false, 'allow-gaps': false });
    expect(parsePlainRestoreArgs([], 'dir.sqld')).toEqual({ database: 'dir.sqld', json: false, force: false, 'allow-gaps': false });
    expect(parsePlainRestoreArgs(['-d', 'flag.sqld'], 'env.sqld')?.database).toBe('flag.sqld');
    expect(parsePlainRestoreArgs([], '')?.database).toBe('data.sqld');
    expect(
      parsePlainRestoreArgs(['-e', 'http://h:1', '--bucket=b', '-n', 'ns-1:a', '-g', '0190', '--output=o.db', '--force', '--allow-gaps'], undefined),
    ).toEqual({ endpoint: 'http://h:1', bucket: 'b', namespace: 'ns-1:a', generation: '0190', output: 'o.db', database: 'data.sqld', json: false, force: true, 'allow-gaps': true });
    expect(parsePlainRestoreArgs(['--db-name', 'n', '-u', '2024-01-01T00:00:00'], undefined)).toMatchObject({ 'db-name': 'n', 'utc-time': '2024-01-01T00:00:00' });
  });

  it('leaves everything else to oclif: help, version, unknown, repeated or exclusive flags, missing values, positional words', () => {
    for (const args of [
      ['-h'],
      ['--help'],
      ['-V'],
      ['--version'],
      ['--bogus'],
      ['-x', 'v'],
      ['-o', 'a', '-o', 'b'],
      ['--json', '--json'],
      ['--force=true'],
      ['-n', 'a', '--db-name', 'b'],
      ['-g', 'g', '-u', 't'],
      ['--output'],
      ['-o', '-x'],
      ['--output='],
      ['-oout.db'],
      ['word'],
      ['--'],
    ]) {
      expect(parsePlainRestoreArgs(args, undefined), args.join(' ')).toBeNull();
    }
  });

  it('knows exactly the flags of the oclif command, with their characters, kinds and exclusions', () => {
    const flags = Object.entries(Restore.flags) as [string, { type: string; char?: string; exclusive?: string[] }][];
    for (const [name, flag] of flags) {
      if (flag.type === 'boolean') {
        expect(parsePlainRestoreArgs([`--${name}`], undefined)?.[name as 'json'], name).toBe(true);
        continue;
      }
      expect(parsePlainRestoreArgs([`--${name}`, 'v'], undefined)?.[name as 'output'], name).toBe('v');
      expect(parsePlainRestoreArgs([`--${name}=v`], undefined)?.[name as 'output'], name).toBe('v');
      if (flag.char) expect(parsePlainRestoreArgs([`-${flag.char}`, 'v'], undefined)?.[name as 'output'], `-${flag.char}`).toBe('v');
      for (const other of flag.exclusive ?? []) expect(parsePlainRestoreArgs([`--${name}`, 'v', `--${other}`, 'w'], undefined), `${name} with ${other}`).toBeNull();
    }
    // a character the command does not declare is oclif's to refuse
    const chars = new Set(flags.map(([, f]) => f.char).filter((c) => c !== undefined));
    for (const c of 'abcdefghijklmnopqrstuvwxyz') if (!chars.has(c)) expect(parsePlainRestoreArgs([`-${c}`, 'v'], undefined), `-${c}`).toBeNull();
  });
});
