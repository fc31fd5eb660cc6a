import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/shell/api/admin-client.js';
import { SqlClient } from '../../src/shell/api/sql-client.js';
import { cliScratch, spawnCli, within, type CliProcess } from '../helpers/child-server.js';

/**
 * `libsqlctl admin-shell` in a real terminal: tmux runs it against a `libsqlctl serve` child (namespaces
 * on, admin API on a free loopback port behind a key); keys go in with send-keys and the screen is
 * read with capture-pane, polled until the expected text appears (bounded).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const KEY = 'e2e-key';
const run = promisify(execFile);
const scratch = cliScratch('libsqlctl-shell-e2e-');
const socket = `libsqlctl-e2e-${process.pid}`;

/** tmux on its own server (socket under the scratch dir), without the user's config; the shell's Ink must not think it runs in CI. */
function tmuxEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMUX_TMPDIR: scratch, TERM: 'xterm-256color' };
  for (const name of ['CI', 'CONTINUOUS_INTEGRATION', 'TMUX', 'TMUX_PANE']) delete env[name];
  for (const name of Object.keys(env)) if (name.startsWith('SQLD_') || name.startsWith('LIBSQL_')) delete env[name];
  return env;
}

async function tmux(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('tmux', ['-L', socket, '-f', '/dev/null', ...args], { env: tmuxEnv(), cwd: ROOT });
    return stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('tmux is not installed: this test needs it (.ci/run installs Debian\'s tmux)', { cause: err });
    throw err;
  }
}

const screen = (): Promise<string> => tmux('capture-pane', '-p', '-t', 'shell');

/** Polls the screen until `re` matches (bounded); the last screen is in the failure message. */
async function waitForScreen(re: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    last = await screen();
    if (re.test(last)) return last;
    if (Date.now() > deadline) throw new Error(`the screen did not show ${re} within ${timeoutMs} ms:\n${last}`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the poll interval, not a wait for the shell
  }
}

async function startServer(): Promise<{ child: CliProcess; http: string; admin: string }> {
  const child = spawnCli(['serve', '--db-path', path.join(scratch, 'data.sqld'), '--http-listen-addr', '127.0.0.1:0', '--enable-namespaces', '--admin-listen-addr', '127.0.0.1:0', '--admin-auth-key', KEY]);
  const http = await child.waitForStdout(/listening on\s+http:\/\/127\.0\.0\.1:(\d+)/);
  const admin = await child.waitForStdout(/admin API\s+http:\/\/127\.0\.0\.1:(\d+)/);
  return { child, http: `http://127.0.0.1:${http[1]}`, admin: `http://127.0.0.1:${admin[1]}` };
}

afterAll(async () => {
  await tmux('kill-server').catch(() => undefined);
});

const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

describe('admin-shell in tmux', () => {
  it('lists the namespaces, runs SQL in the console, follows a resize, quits with q (exit code 0)', async () => {
    const srv = await startServer();
    const admin = new AdminClient({ baseUrl: srv.admin, authKey: KEY });
    await admin.create('books');
    await admin.create('movies');
    const sql = new SqlClient({ baseUrl: srv.http });
    await sql.execute('books', 'CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT)');
    await sql.execute('books', "INSERT INTO t (title) VALUES ('Dune'), ('Emma'), ('Ulysses')");

    const argv = [process.execPath, path.join(ROOT, 'bin/run.js'), 'admin-shell', '--admin-api-url', srv.admin, '--auth', KEY, '--http-url', srv.http];
    // The shell prints the command's exit code when it ends, and the pane stays for us to read it.
    const command = `${argv.map(shellQuote).join(' ')}; echo "admin-shell exit code $?"; read _`;
    await tmux('new-session', '-d', '-x', '120', '-y', '40', '-s', 'shell', command);

    const list = await waitForScreen(/› books[\s\S]*movies/);
    expect(list).toMatch(/namespace\s+size\s+rows read\s+rows written\s+repl index\s+backup lag\s+blocked/);
    expect(list).toMatch(/default/);
    expect(list).toMatch(/connected · updated/);

    await tmux('resize-window', '-t', 'shell', '-x', '90', '-y', '30');
    await waitForScreen(/^.{0,89}namespace\s+size.*blocked\s*$/m);

    await tmux('send-keys', '-t', 'shell', 's');
    await waitForScreen(/SQL console · books/);
    await tmux('send-keys', '-t', 'shell', '-l', 'SELECT id, title FROM t ORDER BY id');
    await tmux('send-keys', '-t', 'shell', 'Enter');
    const rows = await waitForScreen(/3\s+│ Ulysses/);
    expect(rows).toMatch(/id\s+│ title/);
    expect(rows).toMatch(/1\s+│ Dune/);
    expect(rows).toMatch(/rows 1–3 of 3/);

    await tmux('send-keys', '-t', 'shell', 'Escape');
    await waitForScreen(/› books/);
    await tmux('send-keys', '-t', 'shell', 'q');
    const end = await waitForScreen(/admin-shell exit code \d+/);
    expect(end).toMatch(/admin-shell exit code 0/);
  });

  it('refuses to run without a terminal (exit code 1, a clear error)', async () => {
    const child = spawnCli(['admin-shell', '--admin-api-url', 'http://127.0.0.1:9']);
    const exit = await within(child.exited, 15_000, 'admin-shell without a terminal to exit');
    expect(exit.code).toBe(1);
    expect(child.stderr()).toMatch(/^Error: admin-shell is interactive: its input is not a terminal$/m);
    expect(child.stderr()).toMatch(/^Try: /m);
  });
});
