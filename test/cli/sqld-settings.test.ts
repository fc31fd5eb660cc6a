/**
 * sqld settings libsqlctl does not honour: a flag is refused in one line (exit 2), a variable that
 * would change the server's role or durability stops the start, any other unread SQLD_ or LIBSQL_
 * variable is named in one warning. Nothing is created on disk when the start is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bannerUrl, cliScratch, spawnCli, STACK_FRAME_RE, within } from '../helpers/child-server.js';

const STEP_MS = 10_000;

const scratch = cliScratch('libsqlctl-sqld-settings-');

function nonEmptyLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

describe('sqld settings libsqlctl does not honour', () => {
  it('each unsupported sqld flag is refused in one line with a hint, exit 2, nothing created', async () => {
    const cases = [
      { args: ['--disable-metrics'], flag: '--disable-metrics', why: /not supported yet/ },
      { args: ['--enable-deadlock-monitor'], flag: '--enable-deadlock-monitor', why: /not supported yet/ },
      { args: ['--http-primary-url', 'http://127.0.0.1:9'], flag: '--http-primary-url', why: /--primary-grpc-url/ },
      { args: ['--encryption-key', 'secret'], flag: '--encryption-key', why: /not supported on stock SQLite/ },
    ].map((c) => {
      const cwd = fs.mkdtempSync(path.join(scratch, 'flag-'));
      return { ...c, cwd, child: spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', ...c.args], { cwd }) };
    });
    for (const { args, flag, why, cwd, child } of cases) {
      const exit = await within(child.exited, STEP_MS, `exit of serve ${args.join(' ')}`);
      const lines = nonEmptyLines(child.stderr());
      expect(exit, child.stderr()).toEqual({ code: 2, signal: null });
      expect(lines[0]).toMatch(new RegExp(`^Error: ${flag} is a sqld flag libsqlctl does not support: `));
      expect(lines[0]).toMatch(why);
      expect(lines.slice(1), 'after the error only a Try: hint').toEqual([expect.stringMatching(/^Try: /)]);
      expect(child.stderr()).not.toMatch(STACK_FRAME_RE);
      expect(fs.readdirSync(cwd), `nothing created by serve ${args.join(' ')}`).toEqual([]);
    }
  });

  it('a variable that would change what the server is stops the start: exit 2, nothing created', async () => {
    const cases = [
      { name: 'SQLD_BACKUP_META_STORE', value: 'true' },
      { name: 'SQLD_HTTP_PRIMARY_URL', value: 'http://127.0.0.1:9' },
      { name: 'SQLD_ENCRYPTION_KEY', value: 'secret' },
    ].map((c) => {
      const cwd = fs.mkdtempSync(path.join(scratch, 'env-'));
      return { ...c, cwd, child: spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0'], { cwd, env: { [c.name]: c.value } }) };
    });
    for (const { name, cwd, child } of cases) {
      const exit = await within(child.exited, STEP_MS, `exit of serve with ${name}`);
      expect(exit, child.stderr()).toEqual({ code: 2, signal: null });
      const lines = nonEmptyLines(child.stderr());
      expect(lines[0]).toMatch(new RegExp(`^Error: ${name} is set, but `));
      expect(lines[1]).toBe(`Try: unset ${name}`);
      expect(fs.readdirSync(cwd), `nothing created with ${name}`).toEqual([]);
    }
  });

  it('other unread SQLD_*/LIBSQL_* variables are named in one warning; the server runs; variables it reads are not named', async () => {
    const cwd = fs.mkdtempSync(path.join(scratch, 'warn-'));
    const env = {
      // read (heartbeats, the namespace limit): not named
      SQLD_HEARTBEAT_URL: 'http://127.0.0.1:9/heartbeat',
      SQLD_MAX_ACTIVE_NAMESPACES: '10',
      // a sqld setting libsqlctl does not honour: named
      SQLD_SOFT_HEAP_LIMIT_MB: '64',
      // read only when backups are on: named here, where they are off
      LIBSQL_BOTTOMLESS_BUCKET: 'backups',
      SQLD_ENABLE_BOTTOMLESS_REPLICATION: 'false',
      SQLD_MAX_LOG_SIZE: '300',
    };
    const child = spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0'], { cwd, env });
    const url = await bannerUrl(child);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const warnings = nonEmptyLines(child.stderr())
      .map((l) => JSON.parse(l) as { level: number; msg: string; ignored?: string[] })
      .filter((l) => l.msg.startsWith('ignoring environment variables'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.level).toBe(40);
    expect(warnings[0]?.ignored).toEqual(['LIBSQL_BOTTOMLESS_BUCKET', 'SQLD_SOFT_HEAP_LIMIT_MB']);
    expect(child.signal('SIGTERM')).toBe(true);
    expect(await within(child.exited, STEP_MS, 'exit after SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
