/** Start-up mistakes as a new user makes them: one clear Error line and a Try: hint, exit 2, no stack trace. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliScratch, spawnCli, within } from '../helpers/child-server.js';

const scratch = cliScratch('libsqlctl-startup-errors-');

describe('start-up errors', () => {
  it('--db-path naming a regular file (or a path below one)', async () => {
    const file = path.join(scratch, 'a-file');
    fs.writeFileSync(file, 'not a directory');
    const runs = [file, path.join(file, 'below')].map((dbPath) => ({ dbPath, child: spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', '--db-path', dbPath], { cwd: scratch }) }));
    for (const { dbPath, child } of runs) {
      const exit = await within(child.exited, 10_000, `exit of serve --db-path ${dbPath}`);
      expect(exit, child.stderr()).toEqual({ code: 2, signal: null });
      const lines = child.stderr().split('\n').filter((l) => l.trim() !== '');
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^Error: --db-path ${dbPath}: .*(file, not a directory)`)), expect.stringMatching(/^Try: /)]);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('not a directory');
  });

  it('an address in use is reported before anything is created on disk', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const dbPath = path.join(scratch, 'never-created');
      const child = spawnCli(['serve', '--http-listen-addr', `127.0.0.1:${port}`, '--db-path', dbPath], { cwd: scratch });
      const exit = await within(child.exited, 10_000, 'exit of serve on a taken port');
      expect(exit.code, child.stderr()).toBe(1);
      const lines = child.stderr().split('\n').filter((l) => l.trim() !== '');
      expect(lines).toEqual([`Error: cannot listen on 127.0.0.1:${port}: address already in use`, expect.stringMatching(/^Try: .*--http-listen-addr/)]);
      expect(fs.existsSync(dbPath), 'the data directory was not created').toBe(false);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
